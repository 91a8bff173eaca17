"""Stage ``conv``: AlexNet's five convolutions at batch 256, forward and backward, ours vs cuDNN.

Ours: kernels/conv.py's ``conv_forward`` and ``conv_backward`` (what the cuda backend's conv ops run:
im2col + our SGEMM per group and chunk of images, layout move + bias, col2im).
Baseline: cuDNN FP32 through torch (TF32 off, ``cudnn.benchmark`` on so
cuDNN picks its fastest algorithm): ``F.conv2d`` forward and ``aten.convolution_backward`` for
(dx, dw, db) together, the same three outputs as our backward (Caffe's conv1 skips dx since its
bottom is the data; both sides compute it here).

A third row per layer, ``fwd+bwd kept``, times what a training iteration runs on the cuda backend:
forward and backward as a pair sharing a ``KeptColumns`` (the whole batch's columns stay from the
forward, so backward skips im2col), against cuDNN's forward + backward.

Validation first (fresh random x, w, b, dy): y, dx, dw, db against cuDNN's, relative Frobenius
error <= TOL (our dw and db accumulate with ``+=``, so they are zeroed before the validation call).
FLOPs per layer: forward 2*N*Cout*OH*OW*(Cin/g*kh*kw) (see bench/alexnet.py); backward twice that
(data and weight GEMMs; the bias sum is negligible). Rows of table ``conv_layers``: layer, pass,
ms and GFLOP/s for both, the ratio, the errors. Scalars: ``alexnet_conv_total_ms`` (the five layers,
forward + backward) and ``cudnn_alexnet_conv_total_ms``.

Run: ``python -m bench.bench_conv``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bench.alexnet import Conv, conv_layers
from bench.common import DRY, Stage, enable_kernel_cache, log, main_guard, missing, time_fn, torch_mod
from bench.devarrays import empty_pair, rand_pair, rel_err_dev, zeros_pair

TOL = 1e-3   # cuDNN may pick Winograd/FFT algorithms (fp32, ~1e-5 relative error) for some layers

REPS = dict(warmup=0, min_reps=1, max_reps=1) if DRY else dict(warmup=1, min_reps=3, max_reps=15,
                                                                target_s=0.2)


class _KernelsConv:
    """kernels/conv.py's ``conv_forward`` / ``conv_backward`` behind the backend's signatures
    (the cuda backend's conv ops are these calls with the geometry unpacked, and the backend's
    workspace cap for this device)."""

    def __init__(self, kconv):
        self.k = kconv
        try:
            from runner.backend.cuda import conv_workspace_bytes
            self.cap = conv_workspace_bytes()
        except Exception:  # noqa: BLE001 - backend absent: the kernel module's default
            self.cap = getattr(kconv, "MAX_COL_BYTES", 256 << 20)

    def conv_forward(self, x, w, b, y, c: Conv, **keep) -> None:
        self.k.conv_forward(x, w, b, y, pad=c.pad, stride=c.stride, group=c.group,
                            max_col_bytes=self.cap, **keep)

    def conv_backward(self, x, w, dy, dx, dw, db, c: Conv, **keep) -> None:
        self.k.conv_backward(x, w, dy, dx, dw, db, pad=c.pad, stride=c.stride, group=c.group,
                             max_col_bytes=self.cap, **keep)


def _zero(a) -> None:
    """Zero our device array ``a`` (its torch twin shares the memory only on a GPU)."""
    a.copy_to_device(np.zeros(a.shape, np.float32))


def _backend():
    """Our convolution (kernels/conv.py), or a reason it is missing."""
    why = missing("kernels.conv", "conv_forward", "conv_backward")
    if why:
        return None, why
    from kernels import conv as kconv
    return _KernelsConv(kconv), None


def bench_layer(st: Stage, be, c: Conv) -> dict[str, float]:
    """Validate and time one layer's forward and backward; returns {"fwd": ms, "bwd": ms, ...}."""
    torch = torch_mod()
    F = torch.nn.functional
    g = c
    x, xt = rand_pair((c.n, c.cin, c.h, c.w), 21)
    w, wt = rand_pair((c.cout, c.cin // c.group, c.k, c.k), 22, scale=0.05)
    b, bt = rand_pair((c.cout,), 23)
    y, yt = empty_pair((c.n, c.cout, c.oh, c.ow))
    dy, dyt = rand_pair((c.n, c.cout, c.oh, c.ow), 24)
    dx, _ = empty_pair((c.n, c.cin, c.h, c.w))
    dw, _ = zeros_pair(tuple(wt.shape))
    db, _ = zeros_pair((c.cout,))
    s, p = (c.stride, c.stride), (c.pad, c.pad)

    def ours_fwd():
        be.conv_forward(x, w, b, y, g)

    def ours_bwd():
        be.conv_backward(x, w, dy, dx, dw, db, g)

    def cudnn_fwd():
        return F.conv2d(xt, wt, bt, s, p, 1, c.group)

    def cudnn_bwd():
        return torch.ops.aten.convolution_backward(dyt, xt, wt, [c.cout], list(s), list(p), [1, 1], False,
                                                   [0, 0], c.group, [True, True, True])

    ref_y = cudnn_fwd()
    ref_dx, ref_dw, ref_db = cudnn_bwd()
    ours_fwd()      # JIT compile + output to validate
    ours_bwd()
    errs = {"err_y": rel_err_dev(y, ref_y), "err_dx": rel_err_dev(dx, ref_dx),
            "err_dw": rel_err_dev(dw, ref_dw), "err_db": rel_err_dev(db, ref_db)}
    # the judge is a float64 reference (torch double on the same device), not cuDNN FP32: cuDNN's
    # own algorithms (Winograd/FFT wgrad) may differ from the exact result by more than ours does.
    # Errors of both sides against it are recorded (err64_* ours, cudnn_err64_* cuDNN's).
    judge: dict[str, Any] = {}     # float64 dx, dw rounded to float32: the kept-columns row's judge
    x64, w64, b64, dy64 = xt.double(), wt.double(), bt.double(), dyt.double()
    y64 = F.conv2d(x64, w64, b64, s, p, 1, c.group)
    dx64, dw64, db64 = torch.ops.aten.convolution_backward(
        dy64, x64, w64, [c.cout], list(s), list(p), [1, 1], False, [0, 0], c.group, [True, True, True])
    for key, ours_arr, cudnn_arr, exact in (("y", y, ref_y, y64), ("dx", dx, ref_dx, dx64),
                                            ("dw", dw, ref_dw, dw64), ("db", db, ref_db, db64)):
        exact32 = exact.float()
        errs[f"err64_{key}"] = rel_err_dev(ours_arr, exact32)
        errs[f"cudnn_err64_{key}"] = rel_err_dev(cudnn_arr, exact32)
        if key in ("dx", "dw"):
            judge[key] = exact32
    del x64, w64, b64, dy64, y64, dx64, dw64, db64
    out: dict[str, float] = {}
    for pass_, ofn, tfn, flops, keys in (("fwd", ours_fwd, cudnn_fwd, c.flops, ("err_y",)),
                                         ("bwd", ours_bwd, cudnn_bwd, 2 * c.flops,
                                          ("err_dx", "err_dw", "err_db"))):
        err = max(errs[k.replace("err_", "err64_")] for k in keys)
        row: dict[str, Any] = {"layer": c.name, "pass": pass_, "M_N_K": "x".join(
            map(str, c.gemm_shapes(1)["fwd"][:3])),
            **{k2: errs[k2] for k in keys for k2 in (k, k.replace("err_", "err64_"),
                                                     k.replace("err_", "cudnn_err64_"))}}
        tt = time_fn(tfn, **REPS)
        row.update(cudnn_ms=tt["ms"], cudnn_gflops=flops / tt["ms"] / 1e6)
        if not err <= TOL:
            row["status"] = f"WRONG (rel_err {err:.2e} > {TOL})"
            st.note(f"{c.name} {pass_}: validation failed (max rel err {err:.3e}): ours not timed")
        else:
            t = time_fn(ofn, **REPS)
            row.update(ms=t["ms"], gflops=flops / t["ms"] / 1e6, speedup_vs_cudnn=tt["ms"] / t["ms"],
                       status="ok")
            out[pass_] = t["ms"]
        out[f"cudnn_{pass_}"] = tt["ms"]
        st.row("conv_layers", row)
        log(f"conv {c.name} {pass_}: ours {row.get('ms', float('nan')):.3f} ms "
            f"({row.get('gflops', float('nan')):.0f} GFLOP/s), cuDNN {tt['ms']:.3f} ms "
            f"({row['cudnn_gflops']:.0f} GFLOP/s), err {err:.1e}")
    kept_cls = getattr(getattr(be, "k", None), "KeptColumns", None)
    if kept_cls is not None:
        keep = kept_cls()

        def ours_pair():
            be.conv_forward(x, w, b, y, g, keep=keep)
            be.conv_backward(x, w, dy, dx, dw, db, g, keep=keep)

        def cudnn_pair():
            cudnn_fwd()
            return cudnn_bwd()

        ours_pair()            # the first pair fills the kept columns in backward
        _zero(dw)
        _zero(db)
        ours_pair()            # this one's backward reads the columns its forward kept
        err = max(rel_err_dev(dx, judge["dx"]), rel_err_dev(dw, judge["dw"]))
        row = {"layer": c.name, "pass": "fwd+bwd kept", "M_N_K": "x".join(
            map(str, c.gemm_shapes(1)["fwd"][:3])), "err64_dx_dw": err}
        tt = time_fn(cudnn_pair, **REPS)
        row.update(cudnn_ms=tt["ms"], cudnn_gflops=3 * c.flops / tt["ms"] / 1e6)
        if not err <= TOL:
            row["status"] = f"WRONG (rel_err {err:.2e} > {TOL})"
            st.note(f"{c.name} fwd+bwd kept: validation failed (rel err {err:.3e}): not timed")
        else:
            t = time_fn(ours_pair, **REPS)
            row.update(ms=t["ms"], gflops=3 * c.flops / t["ms"] / 1e6,
                       speedup_vs_cudnn=tt["ms"] / t["ms"], status="ok")
            out["kept"] = t["ms"]
        out["cudnn_kept"] = tt["ms"]
        st.row("conv_layers", row)
        log(f"conv {c.name} fwd+bwd kept columns: ours {row.get('ms', float('nan')):.3f} ms, cuDNN "
            f"{tt['ms']:.3f} ms, err {err:.1e}")
    return out


def body(st: Stage) -> None:
    torch = torch_mod()
    st.put("conv_kernel_cache", enable_kernel_cache())
    be, why = _backend()
    if why:
        st.note(f"ours: skipped: {why}; cuDNN alone is timed")
    ours_total, cudnn_total, complete = 0.0, 0.0, True
    kept_total, cudnn_kept_total, kept_complete = 0.0, 0.0, True
    for c in conv_layers():
        if st.time_left() < 6:
            st.note(f"{c.name}: skipped (stage time budget)")
            complete = False
            continue
        if be is None:
            res = st.guard(f"{c.name} cudnn", _cudnn_only, st, c)
        else:
            res = st.guard(c.name, bench_layer, st, be, c)
            if res is None:    # our side raised: keep the cuDNN baseline for this layer
                res = st.guard(f"{c.name} cudnn", _cudnn_only, st, c)
        if not res:
            complete = False
            continue
        for pass_ in ("fwd", "bwd"):
            if pass_ in res:
                ours_total += res[pass_]
            else:
                complete = False
            cudnn_total += res.get(f"cudnn_{pass_}", 0.0)
        if res.get("kept") is not None:
            kept_total += res["kept"]
            cudnn_kept_total += res["cudnn_kept"]
        else:
            kept_complete = False
        if not DRY:
            torch.cuda.empty_cache()
    if complete:
        st.put("alexnet_conv_total_ms", round(ours_total, 3))
        st.put("cudnn_alexnet_conv_total_ms", round(cudnn_total, 3))
    elif cudnn_total:
        st.note("alexnet_conv_total_ms not reported: not every layer/pass was measured")
    if kept_complete:    # forward + backward pairs with kept columns (the training path)
        st.put("alexnet_conv_kept_total_ms", round(kept_total, 3))
        st.put("cudnn_alexnet_conv_pair_total_ms", round(cudnn_kept_total, 3))


def _cudnn_only(st: Stage, c: Conv) -> dict[str, float]:
    """cuDNN rows when our backend is missing (the baseline is still worth having)."""
    torch = torch_mod()
    F = torch.nn.functional
    _, xt = rand_pair((c.n, c.cin, c.h, c.w), 21)
    _, wt = rand_pair((c.cout, c.cin // c.group, c.k, c.k), 22, scale=0.05)
    _, bt = rand_pair((c.cout,), 23)
    _, dyt = rand_pair((c.n, c.cout, c.oh, c.ow), 24)
    s, p = (c.stride, c.stride), (c.pad, c.pad)
    out = {}
    for pass_, fn, flops in (
            ("fwd", lambda: F.conv2d(xt, wt, bt, s, p, 1, c.group), c.flops),
            ("bwd", lambda: torch.ops.aten.convolution_backward(
                dyt, xt, wt, [c.cout], list(s), list(p), [1, 1], False, [0, 0], c.group,
                [True, True, True]), 2 * c.flops)):
        t = time_fn(fn, **REPS)
        st.row("conv_layers", {"layer": c.name, "pass": pass_, "cudnn_ms": t["ms"],
                               "cudnn_gflops": flops / t["ms"] / 1e6, "status": "ours skipped"})
        out[f"cudnn_{pass_}"] = t["ms"]
    return out


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("conv"), body))
