"""CPU benchmark: GoogLeNet's convolutions on the cpu backend against the whole-batch im2col
implementation it replaced (kept here as the baseline), alternating the two in the same run so
load changes hit both, medians of ``--reps``.

    env -u OPENBLAS_CORETYPE NBCAFFE_CPU_THREADS=1 python bench/bench_cpu_conv.py --batch 10 --reps 9

For each layer: forward, and backward (dW and dx), in ms and GFLOP/s (2 x MACs; backward 2x the
forward FLOPs), for the backend (``CpuBackend.conv_forward`` / ``conv_backward``) and the baseline
(one im2col of the whole batch by KH*KW strided slice copies, one GEMM, a transposing copy into
NCHW: the code before BENCHMARKS.md's 2026-12-02 entry). Both are checked to agree first. The
load average is printed with the results.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# GoogLeNet (bvlc_googlenet) convolutions: name, C_in, H=W, C_out, kernel, stride, pad
LAYERS = [("conv1/7x7_s2", 3, 224, 64, 7, 2, 3), ("conv2/3x3", 64, 56, 192, 3, 1, 1),
          ("inception_3a/3x3", 96, 28, 128, 3, 1, 1), ("inception_3a/5x5", 16, 28, 32, 5, 1, 2),
          ("inception_4e/3x3", 160, 14, 320, 3, 1, 1), ("inception_5b/3x3", 192, 7, 384, 3, 1, 1)]


def geometry(n, c, hw, c_out, k, s, p):
    from netdef.shapes import infer
    from proto import caffe_pb2 as pb
    lp = pb.LayerParameter(name="c", type="Convolution", bottom=["x"], top=["y"])
    cp = lp.convolution_param
    cp.num_output, cp.bias_term = c_out, True
    cp.kernel_size.append(k)
    cp.stride.append(s)
    cp.pad.append(p)
    return infer(lp, [(n, c, hw, hw)]).geometry


# ---------------------------------------------------------------- baseline: the previous code
def whole_batch_im2col(x, g):
    xt = x.reshape(g.x_shape).transpose(1, 0, 2, 3)
    xp = np.zeros((g.c_in, g.n, g.h + 2 * g.pad_h, g.w + 2 * g.pad_w), dtype=x.dtype)
    xp[:, :, g.pad_h:g.pad_h + g.h, g.pad_w:g.pad_w + g.w] = xt
    col = np.empty((g.c_in, g.kernel_h, g.kernel_w, g.n, g.out_h, g.out_w), dtype=x.dtype)
    he = g.stride_h * (g.out_h - 1) + 1
    we = g.stride_w * (g.out_w - 1) + 1
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            col[:, i, j] = xp[:, :, i:i + he:g.stride_h, j:j + we:g.stride_w]
    return col.reshape(g.c_in * g.kernel_h * g.kernel_w, g.n * g.out_h * g.out_w)


def whole_batch_forward(x, w, b, y, g):
    col = whole_batch_im2col(x, g)
    out = w.reshape(g.c_out, -1) @ col
    yv = y.reshape(g.y_shape)
    yv[...] = out.reshape(g.c_out, g.n, g.out_h, g.out_w).transpose(1, 0, 2, 3)
    yv += b.reshape(1, g.c_out, 1, 1)


def whole_batch_backward(x, w, dy, dx, dw, db, g):
    from runner.backend.cpu import _col2im_nb
    db += dy.reshape(g.n, g.c_out, -1).sum(axis=(0, 2))
    col = whole_batch_im2col(x, g)
    dyc = np.ascontiguousarray(dy.reshape(g.y_shape).transpose(1, 0, 2, 3)).reshape(g.c_out, -1)
    dw.reshape(g.c_out, -1)[...] += dyc @ col.T
    colg = w.reshape(g.c_out, -1).T @ dyc
    _col2im_nb(colg, dx, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, 1, 1,
               g.out_h, g.out_w)


def bench_layer(be, layer, batch: int, reps: int, rng) -> str:
    """One table row: forward and backward of ``layer`` for the backend and the baseline."""
    name, c, hw, c_out, k, s, p = layer
    g = geometry(batch, c, hw, c_out, k, s, p)
    x = rng.standard_normal(g.x_shape, dtype=np.float32)
    w = rng.standard_normal((c_out, c, k, k), dtype=np.float32) * 0.05
    b = rng.standard_normal(c_out, dtype=np.float32)
    dy = rng.standard_normal(g.y_shape, dtype=np.float32)
    ys = {"new": np.empty(g.y_shape, np.float32), "old": np.empty(g.y_shape, np.float32)}
    grads = {key: (np.empty(g.x_shape, np.float32), np.zeros_like(w), np.zeros(c_out, np.float32))
             for key in ("new", "old")}

    def fwd(key):
        if key == "new":
            be.conv_forward(x, w, b, ys[key], g)
        else:
            whole_batch_forward(x, w, b, ys[key], g)

    def bwd(key):
        dx, dw, db = grads[key]
        dw[...] = 0
        db[...] = 0
        if key == "new":
            be.conv_backward(x, w, dy, dx, dw, db, g)
        else:
            whole_batch_backward(x, w, dy, dx, dw, db, g)
    for key in ("new", "old"):
        fwd(key)
        bwd(key)
    np.testing.assert_allclose(ys["new"], ys["old"], rtol=1e-4, atol=1e-3)
    for a, bb in zip(grads["new"], grads["old"]):
        np.testing.assert_allclose(a, bb, rtol=1e-4, atol=1e-2)
    times = {(op, key): [] for op in ("fwd", "bwd") for key in ("new", "old")}
    for _ in range(reps):
        for key in ("new", "old"):
            for op, f in (("fwd", fwd), ("bwd", bwd)):
                t0 = time.perf_counter()
                f(key)
                times[(op, key)].append(time.perf_counter() - t0)
    flops = 2 * c_out * c * k * k * g.n * g.out_h * g.out_w
    med = {kk: statistics.median(v) * 1e3 for kk, v in times.items()}
    cells = []
    for op in ("fwd", "bwd"):
        f = flops * (2 if op == "bwd" else 1)
        cells.append(" | ".join(f"{med[(op, key)]:.1f} ({f / med[(op, key)] / 1e6:.1f})"
                                for key in ("new", "old")))
    return (f"{name}\t{cells[0]}\t{cells[1]}\t{med[('fwd', 'old')] / med[('fwd', 'new')]:.2f}x\t"
            f"{med[('bwd', 'old')] / med[('bwd', 'new')]:.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    args = ap.parse_args(argv)
    from bench.bench_cpu_train import cpu_model
    from runner.backend import get_backend
    be = get_backend("cpu")
    wanted = [name for name in args.layers.split(",") if name]
    rng = np.random.default_rng(0)
    print(f"{cpu_model()}, batch {args.batch}, {args.reps} alternating reps, BLAS threads "
          f"{be.threads}, load average at start {os.getloadavg()[0]:.1f}")
    print("layer\tfwd ms (GFLOP/s) new | baseline\tbwd ms (GFLOP/s) new | baseline\tfwd ratio\tbwd ratio")
    for layer in LAYERS:
        if not wanted or layer[0] in wanted:
            print(bench_layer(be, layer, args.batch, args.reps, rng))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
