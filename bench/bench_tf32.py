"""Stage ``tf32``: the tensor-core path (``kernels/gemm_tc.py``, ``--precision tf32``) against
cuBLAS / cuDNN with TF32 on (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32``), measured in the same run.

1. **GEMM 4096³.** Validation first: our TF32 product and torch's are compared elementwise with
   the float64 product against the written error bound (``kernels/gemm_tc.py``'s docstring) --
   nothing is timed that breaks it. Then ``gemm_tc.gemm`` (NN, the planner's kernel), every
   tensor-core kernel at NN, the four transposes of the promoted kernel, and FP16/BF16 (ours:
   FP32 operands rounded while staged, FP32 out; cuBLAS: half operands and output) against
   ``torch.mm`` with the same operands. Keys ``tf32_gemm_4096_gflops`` and
   ``cublas_tf32_4096_gflops`` (and ``tf32_gemm_4096_vs_cublas``).
2. **AlexNet b256 iteration in tf32 mode** (``Solver(..., precision="tf32")``, synthetic inputs as
   the train stage) against PyTorch eager with TF32 on; validated first at a small batch (one
   step against float64 torch: each parameter's first update within ``TOL_TF32`` of float64 or no
   worse than 3x torch TF32's own error). Keys ``alexnet_tf32_iter_ms``,
   ``torch_tf32_alexnet_iter_ms``; per-layer times in table ``alexnet_tf32_layers``.
3. **LeNet on MNIST in tf32 mode**: Caffe's ``examples/mnist`` recipe (10,000 iterations, batch 64),
   then the 10,000 test images; passes at >= 99 %. The images come from the idx files through
   ``MemoryData`` layers in file order (what the recipe's LMDB Data layers serve; the GPU image
   has no lmdb package). Needs the MNIST files (``NBCAFFE_MNIST_DIR``, else
   ``data/mnist`` in the checkout -- carry it to the GPU machine -- else ``../shared/data/mnist``).
   Keys ``lenet_tf32_test_accuracy``, ``lenet_tf32_train_s``, ``lenet_tf32_ok``.

In the dry run (simulator): GEMM 48³, the validation of 2. on the shrunk LeNet, LeNet 2 iterations of a
shrunk copy of the prototxt on 12x12 crops (``DRY_LENET``; no accuracy claim): every code path runs,
no number means anything.

Run: ``python -m bench.bench_tf32`` (``bench/gpu_check.sh`` stage ``tf32``); ``python -m
bench.bench_tf32 --lenet-cpu tf32|fp32`` runs 3. on the cpu backend, GEMM inputs TF32-rounded or
not (no GPU; BENCHMARKS.md quotes it).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.common import (
    DRY,
    ROOT,
    Stage,
    enable_kernel_cache,
    log,
    main_guard,
    size,
    sync,
    time_fn,
    to_device,
    torch_device,
    torch_mod,
)

GEMM_N = size(4096, 48)
ALEXNET_BATCH = size(256, 2)
ALEXNET_VAL_BATCH = size(8, 2)
LENET_ITERS = size(10000, 2)
LENET_TARGET = 0.99
TOL_TF32 = 2e-2        # relative error of a first-step parameter update vs float64
# dry run: LeNet's prototxt shrunk by substitution -- batch 2, 12x12 crops, 3x3 kernels, narrow layers
DRY_LENET = (("batch_size: 64", "batch_size: 2"), ("batch_size: 100", "batch_size: 2"),
             ("kernel_size: 5", "kernel_size: 3"), ("num_output: 20", "num_output: 2"),
             ("num_output: 50", "num_output: 2"), ("num_output: 500", "num_output: 8"))
LENET_SIDE = size(28, 12)   # dry run: 12x12 centre crops
STEPS = 5


def _tf32_torch(on: bool):
    torch = torch_mod()
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    return torch


def _no_torch() -> str | None:
    """None when torch imports, else why not (the dry run may lack it; the GPU image has it)."""
    try:
        torch_mod()
    except ImportError as e:
        return f"torch missing ({e})"
    return None


def _check_bound(ours: np.ndarray, A: np.ndarray, B: np.ndarray, theirs=None) -> dict:
    """Our TF32 product (and torch's) against float64 with kernels/gemm_tc.py's bound for alpha = 1,
    beta = 0: (2u + u^2 + gamma_n) |A||B|, u = 2^-11, n = 9 (ceil(K/8) + 1) + 3 (the underflow
    terms are far below it for normal inputs). On the GPU in float64 through torch, else numpy."""
    K = A.shape[1]
    u, u32 = 2.0 ** -11, 2.0 ** -23
    n = 9 * (-(-K // 8) + 1) + 3
    c = 2 * u + u * u + n * u32 / (1 - n * u32)
    if DRY:
        a64, b64 = A.astype(np.float64), B.astype(np.float64)
        exact, bound = a64 @ b64, c * (np.abs(a64) @ np.abs(b64))
        mine = ours.astype(np.float64)
        res = {"over": int((np.abs(mine - exact) > bound).sum()),
               "worst": float(np.max(np.abs(mine - exact) / bound)),
               "rel": float(np.linalg.norm(mine - exact) / np.linalg.norm(exact))}
        if theirs is not None:
            t = np.asarray(theirs.cpu().numpy(), np.float64)
            res["worst_cublas"] = float(np.max(np.abs(t - exact) / bound))
            res["rel_cublas"] = float(np.linalg.norm(t - exact) / np.linalg.norm(exact))
        return res
    torch = torch_mod()
    a64 = torch.from_numpy(A).cuda().double()
    b64 = torch.from_numpy(B).cuda().double()
    exact, bound = a64 @ b64, c * (a64.abs() @ b64.abs())
    mine = torch.from_numpy(ours).cuda().double()
    err = (mine - exact).abs()
    res = {"over": int((err > bound).sum()), "worst": float((err / bound).max()),
           "rel": float((mine - exact).norm() / exact.norm())}
    if theirs is not None:
        t = theirs.double()
        res["worst_cublas"] = float(((t - exact).abs() / bound).max())
        res["rel_cublas"] = float((t - exact).norm() / exact.norm())
    return res


# ---------------------------------------------------------------------------------------------- GEMM
def gemm_4096(st: Stage) -> None:
    from kernels import gemm_tc as T
    n = GEMM_N
    gflop = 2.0 * n ** 3 / 1e9
    r = np.random.default_rng(0)
    A = r.standard_normal((n, n), dtype=np.float32)
    B = r.standard_normal((n, n), dtype=np.float32)
    dA, dB, dC = to_device(A), to_device(B), to_device(np.zeros((n, n), np.float32))
    why = _no_torch()
    if why:
        st.note(f"cuBLAS TF32 baseline: not measured: {why}")
    else:
        torch = _tf32_torch(True)
        dev = torch_device()
        tA, tB = torch.from_numpy(A).to(dev), torch.from_numpy(B).to(dev)
        tC = torch.empty((n, n), dtype=torch.float32, device=dev)

    # validation: elementwise against float64 with the written bound
    T.gemm(False, False, 1.0, dA, dB, 0.0, dC, "tf32")
    if not why:
        torch.mm(tA, tB, out=tC)
    sync()
    v = _check_bound(dC.copy_to_host(), A, B, None if why else tC)
    st.put("tf32_gemm_4096_rel_err", v["rel"])
    st.put("tf32_gemm_4096_worst_vs_bound", round(v["worst"], 4))
    if "rel_cublas" in v:
        st.put("cublas_tf32_4096_rel_err", v["rel_cublas"])
    nan = float("nan")
    log(f"tf32 gemm {n}^3: rel err vs float64 {v['rel']:.2e} (cuBLAS TF32 {v.get('rel_cublas', nan):.2e}); "
        f"worst |err|/bound {v['worst']:.3f} (cuBLAS {v.get('worst_cublas', nan):.3f}); {v['over']} elements "
        f"over the bound")
    if v["over"]:
        st.note(f"tf32 gemm {n}^3: {v['over']} elements over the error bound (worst {v['worst']:.2f}x): "
                f"not timed")
        return

    def ours_fn(name=None, ta=False, tb=False, precision="tf32"):
        if name is None:
            return lambda: T.gemm(ta, tb, 1.0, dA, dB, 0.0, dC, precision)
        return lambda: T.gemm_with(name, ta, tb, 1.0, dA, dB, 0.0, dC)

    reps = dict(warmup=1, min_reps=1, max_reps=1) if DRY else dict(warmup=2, min_reps=5, max_reps=30,
                                                                    target_s=0.5)
    plan = T.describe_plan(n, n, n, "tf32")
    t_ours = time_fn(ours_fn(), **reps)
    g_ours = gflop / t_ours["ms"] * 1e3
    st.put("tf32_gemm_4096_gflops", round(g_ours, 1))
    st.put("tf32_gemm_4096_kernel", plan)
    g_cub = None
    if not why:
        g_cub = gflop / time_fn(lambda: torch.mm(tA, tB, out=tC), **reps)["ms"] * 1e3
        st.put("cublas_tf32_4096_gflops", round(g_cub, 1))
        st.put("tf32_gemm_4096_vs_cublas", round(g_ours / g_cub, 3))
        st.note(f"tf32 GEMM {n}^3: {g_ours:.0f} GFLOP/s = {g_ours / g_cub:.2f}x cuBLAS TF32 ({g_cub:.0f})")
        log(f"tf32 gemm {n}^3: ours {g_ours:.0f} GFLOP/s, cuBLAS TF32 {g_cub:.0f} -> {g_ours / g_cub:.3f}x")

    def row(what: str, t: dict, base_gflops: float | None, base: str = "cublas_tf32_gflops") -> None:
        g = gflop / t["ms"] * 1e3
        st.row("tf32_gemm", {"what": what, "ms": t["ms"], "gflops": g, base: base_gflops,
                             "vs_cublas": None if base_gflops is None else g / base_gflops})

    row(f"gemm_tc.gemm NN ({plan})", t_ours, g_cub)
    # every TF32 kernel at NN, then the planner's transposes, then FP16 / BF16 inputs with FP32
    # accumulation (cuBLAS: half operands and output, FP32 accumulation)
    for name in [k for k in T.KERNELS if "_tf32_" in k and "_v2k_" not in k]:
        if st.time_left() < 40:
            st.note("tf32 kernel sweep: stopped (stage time budget)")
            break
        t = st.guard(name, time_fn, ours_fn(name), **reps)
        if t:
            row(f"{name} NN", t, g_cub)
    for ta, tb in ((False, True), (True, False), (True, True)):
        if st.time_left() < 30:
            break
        t = time_fn(ours_fn(None, ta, tb), **reps)
        g_t = None
        if not why:
            opa, opb = (tA.t() if ta else tA), (tB.t() if tb else tB)
            g_t = gflop / time_fn(lambda opa=opa, opb=opb: torch.mm(opa, opb, out=tC), **reps)["ms"] * 1e3
        row(f"gemm_tc.gemm {'T' if ta else 'N'}{'T' if tb else 'N'}", t, g_t)
    for prec in ("fp16", "bf16"):
        if st.time_left() < 30:
            st.note(f"{prec} gemm: skipped (stage time budget)")
            break
        t = st.guard(f"{prec} gemm", time_fn, ours_fn(None, precision=prec), **reps)
        if t is None:
            continue
        g_half = None
        if not why:
            tdt = torch.float16 if prec == "fp16" else torch.bfloat16
            hA, hB = tA.to(tdt), tB.to(tdt)
            hC = torch.empty((n, n), dtype=tdt, device=dev)
            g_half = gflop / time_fn(lambda hA=hA, hB=hB, hC=hC: torch.mm(hA, hB, out=hC), **reps)["ms"] * 1e3
            st.put(f"cublas_{prec}_4096_gflops", round(g_half, 1))
        row(f"gemm_tc.gemm NN {prec} ({T.describe_plan(n, n, n, prec)})", t, g_half, f"cublas_{prec}_gflops")
        st.put(f"{prec}_gemm_4096_gflops", round(gflop / t["ms"] * 1e3, 1))
    if not why:
        _tf32_torch(False)


# -------------------------------------------------------------------------------------------- AlexNet
def _solver(param, weight_decay: float | None = None):
    from bench.bench_train import WEIGHT_DECAY, _QuietLog, _solver_param
    from runner.solver.solver import Solver
    sp = _solver_param(param, WEIGHT_DECAY if weight_decay is None else weight_decay)
    return Solver(sp, device="cuda", log=_QuietLog(), precision="tf32")


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    e = float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))
    return e if np.isfinite(e) else float("inf")


def alexnet_validate(st: Stage, name: str = "alexnet") -> bool:
    """One tf32 Solver step of net ``name`` at a small batch, every parameter's update vs float64
    torch (the dry run validates the shrunk LeNet: the shrunk AlexNet takes many minutes there)."""
    from bench.bench_train import BASE_LR, MOMENTUM, _classes, _feed, _inputs, _params_host
    from bench.netprep import synthetic_param
    from bench.torch_nets import CaffeTorchNet, caffe_sgd, train_step
    torch = _tf32_torch(True)
    dev = torch_device()
    param = synthetic_param(name, ALEXNET_VAL_BATCH, dropout_ratio=0.0, shrink=DRY)
    solver = _solver(param, weight_decay=0.0)
    x, y = _inputs(solver.net.blobs["data"].shape, ALEXNET_VAL_BATCH, _classes(param), seed=11)
    _feed(solver.net, x, y)
    before = _params_host(solver.net)
    solver.step(1)
    after = _params_host(solver.net)
    models = {}
    for kind in ("tf32", "f64"):
        m = CaffeTorchNet(param).to(dev)
        m = m.double() if kind == "f64" else m
        m.load_from(before)
        opt = caffe_sgd(m, BASE_LR, MOMENTUM, 0.0)
        xt = torch.from_numpy(x).to(dev)
        train_step(m, opt, xt.double() if kind == "f64" else xt, torch.from_numpy(y).to(dev))
        models[kind] = m
    worst, worst_at, ok = 0.0, "", True
    for lname, mod in models["tf32"].params_by_layer.items():
        for i, pname in enumerate(("weight", "bias")):
            if not hasattr(mod, pname):
                continue
            b = before[lname][i]
            ref = getattr(models["f64"].params_by_layer[lname], pname)
            exact = ref.detach().cpu().numpy().reshape(b.shape) - b
            theirs = getattr(mod, pname).detach().cpu().numpy().reshape(b.shape) - b
            e, e_t = _rel(after[lname][i] - b, exact), _rel(theirs, exact)
            ok &= e <= max(TOL_TF32, 3 * e_t)
            if e > worst:
                worst, worst_at = e, f"{lname}[{i}] (torch TF32 {e_t:.1e})"
    st.put(f"{name}_tf32_val_worst_update_rel_err", worst)
    log(f"{name} tf32 validation: worst update rel err vs float64 {worst:.2e} at {worst_at} -> "
        f"{'ok' if ok else 'MISMATCH'}")
    if not ok:
        st.note(f"{name} tf32: validation MISMATCH (worst update rel err {worst:.2e} at {worst_at}); "
                f"timings below are of a net that disagrees with float64")
    return ok


def alexnet_time(st: Stage) -> None:
    from bench.bench_train import _classes, _feed, _inputs, _per_layer, time_torch
    from bench.netprep import synthetic_param
    param = synthetic_param("alexnet", ALEXNET_BATCH, shrink=DRY)
    solver = _solver(param)
    x, y = _inputs(solver.net.blobs["data"].shape, ALEXNET_BATCH, _classes(param), seed=12)
    _feed(solver.net, x, y)
    t0 = time.perf_counter()
    solver.step(1)          # JIT compile of every kernel the net uses (not timed)
    sync()
    log(f"alexnet tf32: first iteration (JIT) {time.perf_counter() - t0:.1f}s")
    t = time_fn(lambda: solver.step(STEPS), warmup=1, min_reps=3, max_reps=10, target_s=1.0,
                max_s=max(2.0, st.time_left() / 4))
    ms = t["ms"] / STEPS
    st.put("alexnet_tf32_iter_ms", round(ms, 3))
    if st.time_left() > 20:
        st.guard("alexnet tf32 per-layer times", _per_layer, st, "alexnet_tf32", solver.net)
    _tf32_torch(True)
    tt = time_torch("alexnet", ALEXNET_BATCH)
    _tf32_torch(False)
    st.put("torch_tf32_alexnet_iter_ms", round(tt["torch_iter_ms"], 3))
    st.row("alexnet_tf32", {"batch": ALEXNET_BATCH, "iter_ms": ms, "torch_tf32_iter_ms": tt["torch_iter_ms"],
                            "speedup_vs_torch_tf32": tt["torch_iter_ms"] / ms})
    st.note(f"AlexNet b{ALEXNET_BATCH} tf32: {ms:.1f} ms/iter vs PyTorch eager TF32 "
            f"{tt['torch_iter_ms']:.1f} ms ({tt['torch_iter_ms'] / ms:.2f}x)")


# ---------------------------------------------------------------------------------------------- LeNet
def _mnist_dir() -> Path | None:
    for cand in (os.environ.get("NBCAFFE_MNIST_DIR"), ROOT / "data" / "mnist",
                 ROOT.parent / "shared" / "data" / "mnist"):
        if cand and (Path(cand) / "train-images-idx3-ubyte.gz").is_file():
            return Path(cand)
    return None


def _lenet_solver_param():
    """Caffe's examples/mnist solver and net with the two LMDB ``Data`` layers replaced by
    ``MemoryData`` layers of the same batch sizes (the GPU image has no lmdb package): a Data layer
    reads its DB in key order, so serving the idx files' images in file order, scaled by 1/256 up
    front, gives the same batches. Dry run: ``DRY_LENET``'s shrunk net on 12x12 crops."""
    from google.protobuf import text_format

    from netdef.prototxt import read_solver
    from proto import caffe_pb2
    text = (ROOT / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()
    if DRY:
        for a, b in DRY_LENET:
            text = text.replace(a, b)
    net = text_format.Parse(text, caffe_pb2.NetParameter())
    for lp in net.layer:
        if lp.type == "Data":
            bs = lp.data_param.batch_size
            lp.type = "MemoryData"
            lp.ClearField("data_param")
            lp.ClearField("transform_param")
            mp = lp.memory_data_param
            mp.batch_size, mp.channels, mp.height, mp.width = bs, 1, LENET_SIDE, LENET_SIDE
    sp = read_solver(ROOT / "examples" / "mnist" / "lenet_solver.prototxt")
    sp.ClearField("net")
    sp.net_param.CopyFrom(net)
    sp.max_iter = LENET_ITERS
    sp.test_iter[0] = 1 if DRY else 100           # 100 x 100 = the 10,000 test images
    sp.test_interval = LENET_ITERS
    sp.test_initialization = False
    sp.snapshot = 0
    sp.snapshot_after_train = False
    sp.random_seed = 1
    sp.display = 0
    return sp


def _mnist_arrays(src: Path, prefix: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of an MNIST split as float32 (n, 1, side, side) / 256 (Caffe's
    ``scale: 0.00390625``; centre crops in the dry run) and their labels."""
    from runner.data.mnist import read_idx_images, read_idx_labels
    imgs = read_idx_images(src / f"{prefix}-images-idx3-ubyte.gz", n)
    labs = read_idx_labels(src / f"{prefix}-labels-idx1-ubyte.gz", n)
    off = (imgs.shape[1] - LENET_SIDE) // 2
    imgs = imgs[:, off:off + LENET_SIDE, off:off + LENET_SIDE]
    return (imgs[:, None].astype(np.float32) * np.float32(0.00390625)), labs.astype(np.float32)


def lenet_mnist(st: Stage) -> None:
    from bench.bench_train import _QuietLog
    from runner.solver.solver import Solver
    src = _mnist_dir()
    if src is None:
        st.note("lenet tf32: skipped: no MNIST (set NBCAFFE_MNIST_DIR, or copy ../shared/data/mnist to "
                "data/mnist and carry it)")
        return
    sp = _lenet_solver_param()
    train_bs = sp.net_param.layer[0].memory_data_param.batch_size
    n_train = 4 if DRY else 60000 // train_bs * train_bs     # MemoryData: a multiple of the batch
    xtr, ytr = _mnist_arrays(src, "train", n_train)
    xte, yte = _mnist_arrays(src, "t10k", 2 if DRY else 10000)
    t0 = time.perf_counter()
    s = Solver(sp, device="cuda", log=_QuietLog(), precision="tf32")
    try:
        s.net.layer_dict["mnist"].set_input_arrays(xtr, ytr)
        s.test_nets[0].layer_dict["mnist"].set_input_arrays(xte, yte)
        s.solve()
    finally:
        s.close()
    wall = time.perf_counter() - t0
    acc = float(s.test_results[-1]["accuracy"])
    st.put("lenet_tf32_test_accuracy", round(acc, 4))
    st.put("lenet_tf32_iters", LENET_ITERS)
    st.put("lenet_tf32_train_s", round(wall, 1))
    if not DRY:
        st.put("lenet_tf32_ok", acc >= LENET_TARGET)
    st.note(f"LeNet tf32, {LENET_ITERS} iterations ({n_train} training images): test accuracy {acc:.4f} "
            f"on {len(xte)} test images ({wall:.0f} s)"
            + ("" if DRY else f" -> {'>= 99 %: ok' if acc >= LENET_TARGET else 'BELOW 99 %'}"))


def _tf32_host(a) -> np.ndarray:
    """FP32 -> TF32 on the host, as ``cvt.rna.tf32.f32``: add half a TF32 ulp to finite values'
    bits, clear the low 13 bits."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = a.view(np.uint32).copy()
    fin = (b & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    b[fin] += np.uint32(0x1000)
    return (b & np.uint32(0xFFFFE000)).view(np.float32).reshape(a.shape)


def lenet_cpu(mode: str) -> None:
    """``python -m bench.bench_tf32 --lenet-cpu tf32|fp32``: the LeNet recipe of 3. on the cpu
    backend, through the same MemoryData feed; with ``tf32`` every GEMM input (``gemm``, the
    convolutions' forward and both gradients) is rounded to TF32 first -- the tensor cores'
    input rounding, with the CPU's FP32 accumulation. A GPU-free estimate of 3.'s accuracy
    (BENCHMARKS.md); prints the final test result."""
    from bench.bench_train import _QuietLog
    from runner.backend.cpu import CpuBackend
    from runner.solver.solver import Solver
    if mode == "tf32":
        g0, cf = CpuBackend.gemm, CpuBackend.conv_forward
        cbd, cbw = CpuBackend.conv_backward_data, CpuBackend.conv_backward_weight
        t = _tf32_host
        CpuBackend.gemm = lambda self, ta, tb, al, a, b, be, c: g0(self, ta, tb, al, t(a), t(b), be, c)
        CpuBackend.conv_forward = lambda self, x, w, b, y, g, cache=None: cf(self, t(x), t(w), b, y, g, cache)
        CpuBackend.conv_backward_data = lambda self, dy, w, dx, g: cbd(self, t(dy), t(w), dx, g)
        CpuBackend.conv_backward_weight = (lambda self, x, dy, dw, g, cache=None:
                                           cbw(self, t(x), t(dy), dw, g, cache))
    src = _mnist_dir()
    if src is None:
        raise SystemExit("no MNIST: set NBCAFFE_MNIST_DIR")
    sp = _lenet_solver_param()
    xtr, ytr = _mnist_arrays(src, "train", 60000 // 64 * 64)
    xte, yte = _mnist_arrays(src, "t10k", 10000)
    s = Solver(sp, device="cpu", log=_QuietLog())
    s.net.layer_dict["mnist"].set_input_arrays(xtr, ytr)
    s.test_nets[0].layer_dict["mnist"].set_input_arrays(xte, yte)
    t0 = time.perf_counter()
    s.solve()
    print(f"LeNet cpu {mode}: {s.test_results[-1]} in {time.perf_counter() - t0:.0f} s", flush=True)


def body(st: Stage) -> None:
    st.put("tf32_kernel_cache", enable_kernel_cache())
    st.guard("tf32 gemm", gemm_4096, st)
    why = _no_torch()
    if why:
        st.note(f"alexnet tf32: skipped: {why}")
    elif DRY:
        st.guard("lenet tf32 validation", alexnet_validate, st, "lenet")
        st.note("alexnet tf32: not run in the dry run (the simulator needs many minutes for the shrunk "
                "AlexNet; its validation code ran on the shrunk LeNet)")
    elif st.time_left() > 60:
        if st.guard("alexnet tf32 validation", alexnet_validate, st) is not None:
            st.guard("alexnet tf32 timing", alexnet_time, st)
    else:
        st.note("alexnet tf32: skipped (stage time budget)")
    if st.time_left() > 45 or DRY:
        st.guard("lenet tf32", lenet_mnist, st)
    else:
        st.note("lenet tf32: skipped (stage time budget)")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--lenet-cpu":
        lenet_cpu(sys.argv[2])
    else:
        raise SystemExit(main_guard(Stage("tf32"), body))
