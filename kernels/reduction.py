"""Caffe's ReductionLayer: per-row SUM / ASUM / SUMSQ (MEAN is SUM with coeff / dim), forward and
backward.

Math: x is viewed as (num, dim) (num = count(0, axis), dim = count(axis)):

    forward   y[r] = coeff * sum_j f(x[r, j]),  f = x (SUM), |x| (ASUM), x^2 (SUMSQ)
    backward  g = dy[r] * coeff;  dx[r, j] = g (SUM), sign(x)*g (ASUM, sign(0) = 0), (2*g)*x (SUMSQ)

(the layer passes coeff / dim for MEAN, as Caffe folds it). dx is written (``=``).

Versions:
- ``reduction_fwd_v1``: one block per row, threads stride over the row, shared-memory tree sum
  (RED_THREADS, power of 2), thread 0 writes coeff * sum. A single row (axis 0) instead runs
  ``kernels.reduce``'s whole-array reduction into y[0] (grid-wide, two passes) and a scale.
- ``reduction_bwd_v1``: one thread per element, grid-stride.

Launch geometry: forward ``num`` blocks of RED_THREADS; backward ``kernels._launch.grid_1d(n, THREADS)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels import blas1 as _fill
from kernels import reduce as _red
from kernels._launch import SIMULATOR, THREADS_PER_BLOCK, as_device, grid_1d

#: threads per block of the 1-D grid-stride launches (fewer in the simulator, which runs each
#: thread in Python; the kernels do not depend on it)
THREADS = 32 if SIMULATOR else THREADS_PER_BLOCK

RED_THREADS = 8 if SIMULATOR else 256    # threads per row block (power of 2; few in the simulator,
#                                          which runs every thread and barrier in Python)

OP_SUM = 1       # Caffe's ReductionParameter values (MEAN = 4 runs as SUM with coeff / dim)
OP_ASUM = 2
OP_SUMSQ = 3

_ZERO = float32(0.0)
_ONE = float32(1.0)
_TWO = float32(2.0)


@cuda.jit
def reduction_fwd_v1(x, y, dim, op, coeff):
    """Row r (this block): y[r] = coeff * sum_j f_op(x[r, j])."""
    partial = cuda.shared.array(RED_THREADS, float32)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * dim
    acc = _ZERO
    for j in range(tid, dim, RED_THREADS):
        v = x[base + j]
        if op == OP_ASUM:
            v = abs(v)
        elif op == OP_SUMSQ:
            v = v * v
        acc += v
    partial[tid] = acc
    cuda.syncthreads()  # every thread's partial is stored before the tree reads its neighbours
    stride = RED_THREADS // 2
    while stride > 0:
        if tid < stride:
            partial[tid] += partial[tid + stride]
        cuda.syncthreads()  # this level's sums are visible before the next level reads them
        stride //= 2
    if tid == 0:
        y[cuda.blockIdx.x] = partial[0] * coeff if coeff != _ONE else partial[0]


@cuda.jit
def reduction_bwd_v1(x, dy, dx, dim, op, coeff):
    """dx[r, j] from g = dy[r] * coeff (see the module docstring)."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = dy[i // dim] * coeff
        if op == OP_ASUM:
            v = x[i]
            dx[i] = (float32(v > _ZERO) - float32(v < _ZERO)) * g
        elif op == OP_SUMSQ:
            dx[i] = (_TWO * g) * x[i]
        else:
            dx[i] = g


_F = float32[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "reduction_fwd_v1": (reduction_fwd_v1, [void(_F, _F, _I, _I, float32)]),
    "reduction_bwd_v1": (reduction_bwd_v1, [void(_F, _F, _F, _I, _I, float32)]),
}


def _flat(name: str, a: Any, n: int) -> Any:
    d = as_device(a)
    if d.dtype != np.float32 or d.size != n:
        raise ValueError(f"{name}: expected {n} float32 values, got {d.size} {d.dtype}")
    return d if len(d.shape) == 1 else d.reshape(n)


def _op(op: int) -> int:
    if op not in (OP_SUM, OP_ASUM, OP_SUMSQ):
        raise ValueError(f"reduction: op must be SUM (1), ASUM (2) or SUMSQ (3), got {op}")
    return op


def reduction_fwd(x: Any, y: Any, num: int, dim: int, op: int, coeff: float) -> None:
    """y (num,) = coeff * per-row reduction ``op`` of x viewed as (num, dim)."""
    op = _op(op)
    xf, yf = _flat("reduction_fwd", x, num * dim), _flat("reduction_fwd", y, num)
    if num == 0:
        return
    if dim == 0:
        _fill.fill(yf, 0.0)
        return
    if num == 1:          # one long row: the grid-wide two-pass reduction, on the device
        whole = {OP_SUM: _red.reduce_sum, OP_ASUM: _red.asum, OP_SUMSQ: _red.sumsq}[op]
        whole(xf, out=yf)
        if np.float32(coeff) != 1:
            _fill.scal(yf, float(coeff))
        return
    reduction_fwd_v1[num, RED_THREADS](xf, yf, dim, op, np.float32(coeff))


def reduction_bwd(x: Any, dy: Any, dx: Any, num: int, dim: int, op: int, coeff: float) -> None:
    """dx (num, dim) = the gradient of ``reduction_fwd`` given dy (num,) (dx written)."""
    op = _op(op)
    n = num * dim
    xf, dxf = _flat("reduction_bwd", x, n), _flat("reduction_bwd", dx, n)
    dyf = _flat("reduction_bwd", dy, num)
    if n:
        blocks, threads = grid_1d(n, THREADS)
        reduction_bwd_v1[blocks, threads](xf, dyf, dxf, dim, op, np.float32(coeff))
