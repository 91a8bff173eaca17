"""Elementwise layers added with Caffe's remaining neuron types: Clip, Threshold, Swish and PReLU,
forward and backward, Caffe's formulas to the letter.

Math (x: bottom data, y: top data, dy: top diff, dx: bottom diff; float32, same number of elements,
flattened C order; bottom diffs written with ``=``, the PReLU slope diff accumulated with ``+=``):

    Clip       y = max(lo, min(x, hi))  with std::min/max's NaN order: a NaN x gives lo
               dx = dy * (lo <= x <= hi)
    Threshold  y = x > t ? 1 : 0        (no backward: Caffe's is NOT_IMPLEMENTED)
    Swish      s = sigmoid(beta*x) = 0.5*tanh(0.5*beta*x) + 0.5 (Caffe's SigmoidLayer form), kept;
               y = x * s;   dx = dy * (beta*y + s*(1 - beta*y))
    PReLU      x viewed as (N, C, S) (C = channels, S = count(2)); a = slope[c], or slope[0] when
               channel_shared:
               y = max(x, 0) + a*min(x, 0);   dx = dy * ((x > 0) + a*(x <= 0))
               dslope[c] += sum over (n, s) of dy * x * (x <= 0)   (all elements when shared)

Every elementwise kernel may run in place (y is x, dx is dy): each thread reads its element before
writing it.

Versions (v1 each):
- ``clip_fwd_v1``, ``clip_bwd_v1``, ``threshold_fwd_v1``, ``swish_fwd_v1``, ``swish_bwd_v1``,
  ``prelu_fwd_v1``, ``prelu_bwd_v1``: one thread per element, grid-stride (memory bound).
- ``prelu_slope_grad_v1``: one block per channel (one block when shared); each thread strides over
  the channel's N*S elements, then a shared-memory tree sums the block; thread 0 adds to dslope.

Launch geometry: elementwise kernels ``kernels._launch.grid_1d(n, THREADS)``; the slope gradient
C (or 1) blocks of SLOPE_THREADS threads.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import SIMULATOR, THREADS_PER_BLOCK, as_device, grid_1d

#: threads per block of the 1-D grid-stride launches (fewer in the simulator, which runs each
#: thread in Python; the kernels do not depend on it)
THREADS = 32 if SIMULATOR else THREADS_PER_BLOCK

SLOPE_THREADS = 8 if SIMULATOR else 256    # threads per block of the slope gradient (power of 2;
#                                             few in the simulator, which runs every thread in Python)

_ZERO = float32(0.0)
_ONE = float32(1.0)
_HALF = float32(0.5)


@cuda.jit
def clip_fwd_v1(x, y, lo, hi):
    """y = max(lo, min(x, hi)) with C++'s std::min/std::max comparisons (NaN -> lo)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        v = hi if hi < v else v
        y[i] = v if lo < v else lo


@cuda.jit
def clip_bwd_v1(x, dy, dx, lo, hi):
    """dx = dy where lo <= x <= hi, else 0 (x: the bottom data before the forward)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * float32(v >= lo and v <= hi)


@cuda.jit
def threshold_fwd_v1(x, y, t):
    """y = 1 if x > t else 0."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = _ONE if x[i] > t else _ZERO


@cuda.jit
def swish_fwd_v1(x, y, s, beta):
    """s = 0.5*tanh(0.5*beta*x) + 0.5 (kept for the backward), y = x * s."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        sg = _HALF * math.tanh(_HALF * (beta * v)) + _HALF
        s[i] = sg
        y[i] = v * sg


@cuda.jit
def swish_bwd_v1(y, s, dy, dx, beta):
    """dx = dy * (beta*y + s*(1 - beta*y)) from the top data y and the kept sigmoid s."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        by = beta * y[i]
        dx[i] = dy[i] * (by + s[i] * (_ONE - by))


@cuda.jit
def prelu_fwd_v1(x, slope, y, channels, dim, shared):
    """y = max(x, 0) + slope[c]*min(x, 0), c = (i // dim) % channels (0 when shared)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = 0 if shared != 0 else (i // dim) % channels
        v = x[i]
        y[i] = max(v, _ZERO) + slope[c] * min(v, _ZERO)


@cuda.jit
def prelu_bwd_v1(x, slope, dy, dx, channels, dim, shared):
    """dx = dy * ((x > 0) + slope[c]*(x <= 0))."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = 0 if shared != 0 else (i // dim) % channels
        v = x[i]
        dx[i] = dy[i] * (float32(v > _ZERO) + slope[c] * float32(v <= _ZERO))


@cuda.jit
def prelu_slope_grad_v1(x, dy, dslope, channels, dim, shared):
    """Block c: dslope[c] += sum over its elements of dy * x * (x <= 0) (block 0: all, shared)."""
    partial = cuda.shared.array(SLOPE_THREADS, float32)
    tid = cuda.threadIdx.x
    c = cuda.blockIdx.x
    acc = _ZERO
    if shared != 0:
        for i in range(tid, x.size, SLOPE_THREADS):
            v = x[i]
            acc += dy[i] * v * float32(v <= _ZERO)
    else:
        per = (x.size // (channels * dim)) * dim      # N * S elements of channel c
        for j in range(tid, per, SLOPE_THREADS):
            n = j // dim
            i = (n * channels + c) * dim + (j - n * dim)
            v = x[i]
            acc += dy[i] * v * float32(v <= _ZERO)
    partial[tid] = acc
    cuda.syncthreads()  # every thread's partial is stored before the tree reads its neighbours
    stride = SLOPE_THREADS // 2
    while stride > 0:
        if tid < stride:
            partial[tid] += partial[tid + stride]
        cuda.syncthreads()  # this level's sums are visible before the next level reads them
        stride //= 2
    if tid == 0:
        dslope[c] += partial[0]


_F = float32[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "clip_fwd_v1": (clip_fwd_v1, [void(_F, _F, float32, float32)]),
    "clip_bwd_v1": (clip_bwd_v1, [void(_F, _F, _F, float32, float32)]),
    "threshold_fwd_v1": (threshold_fwd_v1, [void(_F, _F, float32)]),
    "swish_fwd_v1": (swish_fwd_v1, [void(_F, _F, _F, float32)]),
    "swish_bwd_v1": (swish_bwd_v1, [void(_F, _F, _F, _F, float32)]),
    "prelu_fwd_v1": (prelu_fwd_v1, [void(_F, _F, _F, _I, _I, _I)]),
    "prelu_bwd_v1": (prelu_bwd_v1, [void(_F, _F, _F, _F, _I, _I, _I)]),
    "prelu_slope_grad_v1": (prelu_slope_grad_v1, [void(_F, _F, _F, _I, _I, _I)]),
}


# ------------------------------------------------------------------------------------- public API
def _flat(name: str, *arrays: Any) -> list:
    """1-D float32 device views of same-sized arrays."""
    out = [as_device(a) for a in arrays]
    n = out[0].size
    for a in out:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected float32 arrays, got {a.dtype}")
        if a.size != n:
            raise ValueError(f"{name}: arrays differ in size: {[tuple(b.shape) for b in out]}")
    return [a if len(a.shape) == 1 else a.reshape(n) for a in out]


def _run(kernel: Any, arrays: list, *scalars: Any) -> None:
    n = arrays[0].size
    if n:
        blocks, threads = grid_1d(n, THREADS)
        kernel[blocks, threads](*arrays, *scalars)


def clip_fwd(x: Any, y: Any, lo: float, hi: float) -> None:
    """Clip: y = max(lo, min(x, hi)) (y may be x)."""
    _run(clip_fwd_v1, _flat("clip_fwd", x, y), np.float32(lo), np.float32(hi))


def clip_bwd(x: Any, dy: Any, dx: Any, lo: float, hi: float) -> None:
    """Clip backward: dx = dy * (lo <= x <= hi) (dx may be dy)."""
    _run(clip_bwd_v1, _flat("clip_bwd", x, dy, dx), np.float32(lo), np.float32(hi))


def threshold_fwd(x: Any, y: Any, threshold: float) -> None:
    """Threshold: y = x > threshold ? 1 : 0 (y may be x)."""
    _run(threshold_fwd_v1, _flat("threshold_fwd", x, y), np.float32(threshold))


def swish_fwd(x: Any, y: Any, s: Any, beta: float) -> None:
    """Swish: s = sigmoid(beta*x) (kept), y = x*s (y may be x; s must not alias either)."""
    _run(swish_fwd_v1, _flat("swish_fwd", x, y, s), np.float32(beta))


def swish_bwd(y: Any, s: Any, dy: Any, dx: Any, beta: float) -> None:
    """Swish backward from the top data y and kept s: dx = dy*(beta*y + s*(1 - beta*y))."""
    _run(swish_bwd_v1, _flat("swish_bwd", y, s, dy, dx), np.float32(beta))


def _prelu_dims(x: Any, slope: Any, channels: int, dim: int, shared: bool) -> None:
    if x.size and x.size % (channels * dim):
        raise ValueError(f"prelu: {x.size} elements are not a multiple of channels*dim = "
                         f"{channels}*{dim}")
    want = 1 if shared else channels
    if slope.size != want:
        raise ValueError(f"prelu: slope has {slope.size} values, expected {want}")


def prelu_fwd(x: Any, slope: Any, y: Any, channels: int, dim: int, shared: bool) -> None:
    """PReLU forward on x viewed as (N, channels, dim) (y may be x)."""
    xf, yf = _flat("prelu_fwd", x, y)
    (sf,) = _flat("prelu_fwd", slope)
    _prelu_dims(xf, sf, channels, dim, shared)
    _run(prelu_fwd_v1, [xf, sf, yf], channels, dim, int(bool(shared)))


def prelu_bwd(x: Any, slope: Any, dy: Any, dx: Any | None, dslope: Any | None, channels: int,
              dim: int, shared: bool) -> None:
    """PReLU backward: dslope += sum dy*x*(x <= 0) per channel (first, so dx may be dy), then
    dx = dy*((x > 0) + a*(x <= 0)). None skips either."""
    xf, dyf = _flat("prelu_bwd", x, dy)
    (sf,) = _flat("prelu_bwd", slope)
    _prelu_dims(xf, sf, channels, dim, shared)
    if dslope is not None and xf.size:
        (dsf,) = _flat("prelu_bwd", dslope)
        if dsf.size != sf.size:
            raise ValueError(f"prelu_bwd: dslope has {dsf.size} values, slope {sf.size}")
        prelu_slope_grad_v1[sf.size, SLOPE_THREADS](xf, dyf, dsf, channels, dim, int(bool(shared)))
    if dx is not None:
        (dxf,) = _flat("prelu_bwd", dx)
        if dxf.size != xf.size:
            raise ValueError(f"prelu_bwd: dx has {dxf.size} values, x {xf.size}")
        _run(prelu_bwd_v1, [xf, sf, dyf, dxf], channels, dim, int(bool(shared)))
