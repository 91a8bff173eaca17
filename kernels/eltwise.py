"""Caffe's Eltwise layer: elementwise SUM (with coefficients), PROD and MAX over K >= 2 bottoms of the
same shape (any shape, e.g. NCHW; flattened), forward and backward, float32.

Math (x_0..x_{K-1} bottoms, y top, dy top diff, dx_i bottom diffs, written =):
- SUM:  y = sum_i c_i * x_i  (c_i = coeff, default 1)            dx_i = c_i * dy
- PROD: y = prod_i x_i                                            dx_i = dy * prod_{j != i} x_j
  Caffe's ``stable_prod_grad`` (default true) multiplies the other bottoms directly (in increasing
  j, then by dy); ``stable=False`` uses Caffe's shortcut dx_i = (y / x_i) * dy, which is NaN/inf
  where x_i == 0: both are provided, the stable one is the default.
- MAX:  y = max_i x_i and mask (int32) = the bottom that won, with Caffe's CPU tie rule exactly:
  start with (x_0 if x_0 > x_1 else x_1), so a tie of the first two picks bottom 1, then for
  i >= 2 take x_i only if strictly greater, so later ties keep the earlier bottom. (Caffe's GPU
  kernel differs for K >= 3: there a tie picks the later bottom; nbcaffe follows the CPU code,
  which is what runner's cpu backend does too.)          dx_i = dy where mask == i, else 0.

Accumulation over K bottoms is pairwise, one launch per extra bottom (Caffe's own order):
SUM: y = c0*x0 + c1*x1, then y = c_i*x_i + y; PROD: y = x0*x1, then y = y*x_i; MAX: first pair,
then a running compare per bottom that updates the mask.

Versions: v1 only (one thread per element, grid-stride; memory bound).

Launch geometry: 1-D grid from ``kernels._launch.grid_1d(n)`` (n = elements per bottom), cached.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._index import flat
from kernels._launch import grid_1d

F1 = float32[::1]
I1 = int32[::1]


@cuda.jit
def eltwise_sum_fwd_v1(x0, x1, y, n, c0, c1):
    """y = c0 * x0 + c1 * x1 (the first two bottoms)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = c1 * x1[i] + c0 * x0[i]


@cuda.jit
def eltwise_sum_acc_fwd_v1(x, y, n, c):
    """y += c * x (each further bottom)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = c * x[i] + y[i]


@cuda.jit
def eltwise_sum_bwd_v1(dy, dx, n, c):
    """dx = c * dy."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dx[i] = c * dy[i]


@cuda.jit
def eltwise_prod_fwd_v1(x0, x1, y, n):
    """y = x0 * x1 (also the first product of the other bottoms in the stable backward)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = x0[i] * x1[i]


@cuda.jit
def eltwise_prod_acc_fwd_v1(x, y, n):
    """y = y * x (each further factor)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = y[i] * x[i]


@cuda.jit
def eltwise_prod_bwd_v1(y, x, dy, dx, n):
    """Caffe's unstable PROD gradient: dx = (y / x) * dy."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dx[i] = (y[i] / x[i]) * dy[i]


@cuda.jit
def eltwise_max_fwd_v1(x0, x1, y, mask, n):
    """First pair: y = x0 if x0 > x1 else x1 (a tie picks 1); mask = the index taken."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        a = x0[i]
        b = x1[i]
        if a > b:
            y[i] = a
            mask[i] = 0
        else:
            y[i] = b
            mask[i] = 1


@cuda.jit
def eltwise_max_acc_fwd_v1(x, y, mask, n, index):
    """Bottom ``index`` >= 2: where x > y (strictly), y = x and mask = index."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = x[i]
        if v > y[i]:
            y[i] = v
            mask[i] = index


@cuda.jit
def eltwise_max_bwd_v1(dy, mask, dx, n, index):
    """dx = dy where mask == index, else 0."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if mask[i] == index:
            dx[i] = dy[i]
        else:
            dx[i] = float32(0)


KERNELS: dict[str, tuple[Any, list]] = {
    "eltwise_sum_fwd_v1": (eltwise_sum_fwd_v1, [void(F1, F1, F1, int64, float32, float32)]),
    "eltwise_sum_acc_fwd_v1": (eltwise_sum_acc_fwd_v1, [void(F1, F1, int64, float32)]),
    "eltwise_sum_bwd_v1": (eltwise_sum_bwd_v1, [void(F1, F1, int64, float32)]),
    "eltwise_prod_fwd_v1": (eltwise_prod_fwd_v1, [void(F1, F1, F1, int64)]),
    "eltwise_prod_acc_fwd_v1": (eltwise_prod_acc_fwd_v1, [void(F1, F1, int64)]),
    "eltwise_prod_bwd_v1": (eltwise_prod_bwd_v1, [void(F1, F1, F1, F1, int64)]),
    "eltwise_max_fwd_v1": (eltwise_max_fwd_v1, [void(F1, F1, F1, I1, int64)]),
    "eltwise_max_acc_fwd_v1": (eltwise_max_acc_fwd_v1, [void(F1, F1, I1, int64, int64)]),
    "eltwise_max_bwd_v1": (eltwise_max_bwd_v1, [void(F1, I1, F1, int64, int64)]),
}


def _flats(name: str, arrays: Sequence[Any], dtype: Any = np.float32) -> list[Any]:
    flats = [flat(a) for a in arrays]
    for a in flats:
        if a.dtype != dtype:
            raise TypeError(f"{name}: expected {np.dtype(dtype).name} arrays, got {a.dtype}")
        if a.size != flats[0].size:
            raise ValueError(f"{name}: arrays differ in size ({[x.size for x in flats]})")
    return flats


def _bottoms(name: str, xs: Sequence[Any], y: Any) -> tuple[list[Any], Any]:
    if len(xs) < 2:
        raise ValueError(f"{name}: Eltwise takes at least 2 bottoms, got {len(xs)}")
    fl = _flats(name, [*xs, y])
    return fl[:-1], fl[-1]


def eltwise_sum_fwd(xs: Sequence[Any], y: Any, coeffs: Sequence[float] | None = None) -> None:
    """y = sum_i coeffs[i] * xs[i] (coeffs default to 1; K >= 2 same-size bottoms)."""
    xf, yf = _bottoms("eltwise_sum_fwd", xs, y)
    if coeffs is None:
        coeffs = [1.0] * len(xf)
    if len(coeffs) != len(xf):
        raise ValueError(f"eltwise_sum_fwd: Eltwise takes one coefficient per bottom blob "
                         f"({len(coeffs)} coefficients, {len(xf)} bottoms)")
    n = yf.size
    blocks, threads = grid_1d(n)
    eltwise_sum_fwd_v1[blocks, threads](xf[0], xf[1], yf, n, np.float32(coeffs[0]),
                                        np.float32(coeffs[1]))
    for x, c in zip(xf[2:], coeffs[2:]):
        eltwise_sum_acc_fwd_v1[blocks, threads](x, yf, n, np.float32(c))


def eltwise_sum_bwd(dy: Any, dx: Any, coeff: float = 1.0) -> None:
    """dx = coeff * dy for one bottom of a SUM Eltwise (dx written)."""
    dyf, dxf = _flats("eltwise_sum_bwd", [dy, dx])
    n = dyf.size
    blocks, threads = grid_1d(n)
    eltwise_sum_bwd_v1[blocks, threads](dyf, dxf, n, np.float32(coeff))


def eltwise_prod_fwd(xs: Sequence[Any], y: Any) -> None:
    """y = prod_i xs[i] (K >= 2 same-size bottoms; multiplied in bottom order)."""
    xf, yf = _bottoms("eltwise_prod_fwd", xs, y)
    n = yf.size
    blocks, threads = grid_1d(n)
    eltwise_prod_fwd_v1[blocks, threads](xf[0], xf[1], yf, n)
    for x in xf[2:]:
        eltwise_prod_acc_fwd_v1[blocks, threads](x, yf, n)


def eltwise_prod_bwd(xs: Sequence[Any], y: Any, dy: Any, index: int, dx: Any,
                     stable: bool = True) -> None:
    """dx (for bottom ``index``) = dy * prod_{j != index} xs[j] (``stable``, Caffe's default
    stable_prod_grad) or (y / xs[index]) * dy (``stable=False``). dx written; it must not alias any
    of xs, y or dy."""
    xf, yf = _bottoms("eltwise_prod_bwd", xs, y)
    dyf, dxf = _flats("eltwise_prod_bwd", [yf, dy, dx])[1:]
    if not 0 <= index < len(xf):
        raise ValueError(f"eltwise_prod_bwd: bottom index {index} outside [0, {len(xf)})")
    n = yf.size
    blocks, threads = grid_1d(n)
    if not stable:
        eltwise_prod_bwd_v1[blocks, threads](yf, xf[index], dyf, dxf, n)
        return
    others = [x for j, x in enumerate(xf) if j != index]
    # dx = others[0] * others[1] (or * dy when there is one other), then * the rest, then * dy
    second = others[1] if len(others) > 1 else dyf
    eltwise_prod_fwd_v1[blocks, threads](others[0], second, dxf, n)
    if len(others) > 1:
        for x in others[2:]:
            eltwise_prod_acc_fwd_v1[blocks, threads](x, dxf, n)
        eltwise_prod_acc_fwd_v1[blocks, threads](dyf, dxf, n)


def eltwise_max_fwd(xs: Sequence[Any], y: Any, mask: Any) -> None:
    """y = elementwise max of K >= 2 bottoms; mask (int32, y's size) = winning bottom index with
    Caffe's CPU tie rule (see the module docstring)."""
    xf, yf = _bottoms("eltwise_max_fwd", xs, y)
    (mf,) = _flats("eltwise_max_fwd", [mask], np.int32)
    if mf.size != yf.size:
        raise ValueError(f"eltwise_max_fwd: mask has {mf.size} elements, top has {yf.size}")
    n = yf.size
    blocks, threads = grid_1d(n)
    eltwise_max_fwd_v1[blocks, threads](xf[0], xf[1], yf, mf, n)
    for index in range(2, len(xf)):
        eltwise_max_acc_fwd_v1[blocks, threads](xf[index], yf, mf, n, index)


def eltwise_max_bwd(dy: Any, mask: Any, index: int, dx: Any) -> None:
    """dx = dy where mask == index else 0 (dx written; dx may be dy)."""
    dyf, dxf = _flats("eltwise_max_bwd", [dy, dx])
    (mf,) = _flats("eltwise_max_bwd", [mask], np.int32)
    if mf.size != dyf.size:
        raise ValueError(f"eltwise_max_bwd: mask has {mf.size} elements, dy has {dyf.size}")
    n = dyf.size
    blocks, threads = grid_1d(n)
    eltwise_max_bwd_v1[blocks, threads](dyf, mf, dxf, n, int(index))
