"""BLAS-1 style helpers the backends need on device arrays (Caffe's caffe_gpu_set / scal / axpy /
axpby / copy / scale / add_scalar).

Math (x, y: float32 arrays of the same number of elements; any shapes, flattened C order):
- fill:       x[i] = value                          (caffe_gpu_set)
- scal:       x[i] = alpha * x[i]                   (caffe_gpu_scal, in place)
- scale:      y[i] = alpha * x[i]                   (caffe_gpu_scale; y may be x)
- axpy:       y[i] = alpha * x[i] + y[i]            (caffe_gpu_axpy)
- axpby:      y[i] = alpha * x[i] + beta * y[i]     (caffe_gpu_axpby; Caffe computes scal(beta, y)
              then axpy, i.e. beta*y + alpha*x: the same two products and one add; the GPU may fuse
              the add into an FMA, a difference of at most 1 ulp)
- add_scalar: x[i] = x[i] + alpha                   (caffe_gpu_add_scalar, in place)
- copy:       dst[i] = src[i]                       (caffe_copy; src and dst may have different
              shapes of the same size, e.g. a (N, C, 1, 1) top and an (N, C) bottom)
- add / sub / mul / div: out[i] = a[i] (+ - * /) b[i] (caffe_gpu_add/sub/mul/div; out may be a or b)

NaN safety as Caffe's BLAS: ``axpby`` with beta == 0 never reads y and ``scal`` with alpha == 0
writes zeros (an uninitialised buffer holding NaN must not leak through 0 * NaN).

Reductions (sum, sum of squares, asum, dot) live in ``kernels/reduce.py``.

Versions: v1 only: one thread per element in a grid-stride loop (memory bound; nothing to tile).

Launch geometry: 1-D grid from ``kernels._launch.grid_1d(n)`` (THREADS_PER_BLOCK threads per block,
block count capped, grid-stride loop covers the rest), computed once per n (lru_cache).

Arguments: numba device arrays or any ``__cuda_array_interface__`` object, float32 (fill and copy
also take int32 index arrays), C-contiguous;
outputs preallocated; functions return None and never copy to the host.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._launch import as_device, grid_1d

F1 = float32[::1]   # flattened C-contiguous float32 array
I1 = int32[::1]     # int32 index arrays (pooling / eltwise masks): fill and copy only


@cuda.jit
def fill_v1(x, n, value):
    """x[i] = value for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        x[i] = value


@cuda.jit
def scal_v1(x, n, alpha):
    """x[i] *= alpha for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        x[i] = alpha * x[i]


@cuda.jit
def scale_v1(x, y, n, alpha):
    """y[i] = alpha * x[i] for i < n (y may alias x)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = alpha * x[i]


@cuda.jit
def axpy_v1(x, y, n, alpha):
    """y[i] += alpha * x[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = alpha * x[i] + y[i]


@cuda.jit
def axpby_v1(x, y, n, alpha, beta):
    """y[i] = alpha * x[i] + beta * y[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = beta * y[i] + alpha * x[i]


@cuda.jit
def add_scalar_v1(x, n, alpha):
    """x[i] += alpha for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        x[i] = x[i] + alpha


@cuda.jit
def add_v1(a, b, out, n):
    """out[i] = a[i] + b[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


@cuda.jit
def sub_v1(a, b, out, n):
    """out[i] = a[i] - b[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] - b[i]


@cuda.jit
def mul_v1(a, b, out, n):
    """out[i] = a[i] * b[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit
def div_v1(a, b, out, n):
    """out[i] = a[i] / b[i] for i < n (IEEE: x/0 is +-inf or NaN, as Caffe)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] / b[i]


@cuda.jit
def copy_v1(src, dst, n):
    """dst[i] = src[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dst[i] = src[i]


KERNELS: dict[str, tuple[Any, list]] = {
    "fill_v1": (fill_v1, [void(F1, int64, float32), void(I1, int64, int32)]),
    "scal_v1": (scal_v1, [void(F1, int64, float32)]),
    "scale_v1": (scale_v1, [void(F1, F1, int64, float32)]),
    "axpy_v1": (axpy_v1, [void(F1, F1, int64, float32)]),
    "axpby_v1": (axpby_v1, [void(F1, F1, int64, float32, float32)]),
    "add_scalar_v1": (add_scalar_v1, [void(F1, int64, float32)]),
    "add_v1": (add_v1, [void(F1, F1, F1, int64)]),
    "sub_v1": (sub_v1, [void(F1, F1, F1, int64)]),
    "mul_v1": (mul_v1, [void(F1, F1, F1, int64)]),
    "div_v1": (div_v1, [void(F1, F1, F1, int64)]),
    "copy_v1": (copy_v1, [void(F1, F1, int64), void(I1, I1, int64)]),
}


def flat(arr: Any) -> Any:
    """``arr`` as a 1-D numba device array view (no copy); C-contiguous input required."""
    d = as_device(arr)
    if d.ndim != 1:
        d = d.reshape(d.size)
    return d


def _check_f32(name: str, *arrays: Any) -> None:
    for a in arrays:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected float32 arrays, got {a.dtype}")


def _check_same_size(name: str, a: Any, b: Any) -> None:
    if a.size != b.size:
        raise ValueError(f"{name}: arrays differ in size ({a.size} vs {b.size})")


def fill(x: Any, value: float) -> None:
    """Set every element of float32 (or int32) device array ``x`` (any shape) to ``value``."""
    xf = flat(x)
    if xf.dtype not in (np.float32, np.int32):
        raise TypeError(f"fill: expected a float32 or int32 array, got {xf.dtype}")
    n = xf.size
    blocks, threads = grid_1d(n)
    fill_v1[blocks, threads](xf, n, xf.dtype.type(value))


def scal(x: Any, alpha: float) -> None:
    """In place ``x *= alpha`` over every element of float32 device array ``x`` (any shape);
    alpha == 0 writes zeros without reading x."""
    xf = flat(x)
    _check_f32("scal", xf)
    n = xf.size
    blocks, threads = grid_1d(n)
    if alpha == 0:
        fill_v1[blocks, threads](xf, n, np.float32(0))
        return
    scal_v1[blocks, threads](xf, n, np.float32(alpha))


def scale(x: Any, y: Any, alpha: float) -> None:
    """``y = alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ)."""
    xf, yf = flat(x), flat(y)
    _check_f32("scale", xf, yf)
    _check_same_size("scale", xf, yf)
    n = xf.size
    blocks, threads = grid_1d(n)
    scale_v1[blocks, threads](xf, yf, n, np.float32(alpha))


def axpy(alpha: float, x: Any, y: Any) -> None:
    """``y += alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpy", xf, yf)
    _check_same_size("axpy", xf, yf)
    n = xf.size
    blocks, threads = grid_1d(n)
    axpy_v1[blocks, threads](xf, yf, n, np.float32(alpha))


def axpby(alpha: float, x: Any, beta: float, y: Any) -> None:
    """``y = alpha * x + beta * y`` elementwise; same-size arrays (shapes may differ). beta == 0
    does not read y (y may hold NaN garbage)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpby", xf, yf)
    _check_same_size("axpby", xf, yf)
    n = xf.size
    blocks, threads = grid_1d(n)
    if beta == 0:
        scale_v1[blocks, threads](xf, yf, n, np.float32(alpha))
        return
    axpby_v1[blocks, threads](xf, yf, n, np.float32(alpha), np.float32(beta))


def add_scalar(x: Any, alpha: float) -> None:
    """In place ``x += alpha`` over every element of float32 device array ``x``."""
    xf = flat(x)
    _check_f32("add_scalar", xf)
    n = xf.size
    blocks, threads = grid_1d(n)
    add_scalar_v1[blocks, threads](xf, n, np.float32(alpha))


def copy(src: Any, dst: Any) -> None:
    """``dst = src`` elementwise in flattened C order; same size, shapes may differ; float32 (or
    int32, both the same)."""
    sf, df = flat(src), flat(dst)
    if sf.dtype != df.dtype or sf.dtype not in (np.float32, np.int32):
        raise TypeError(f"copy: expected two float32 or two int32 arrays, got {sf.dtype}, {df.dtype}")
    _check_same_size("copy", sf, df)
    n = sf.size
    blocks, threads = grid_1d(n)
    copy_v1[blocks, threads](sf, df, n)


def _binary(name: str, kernel: Any, a: Any, b: Any, out: Any) -> None:
    af, bf, of = flat(a), flat(b), flat(out)
    _check_f32(name, af, bf, of)
    _check_same_size(name, af, bf)
    _check_same_size(name, af, of)
    n = af.size
    blocks, threads = grid_1d(n)
    kernel[blocks, threads](af, bf, of, n)


def add(a: Any, b: Any, out: Any) -> None:
    """``out = a + b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("add", add_v1, a, b, out)


def sub(a: Any, b: Any, out: Any) -> None:
    """``out = a - b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("sub", sub_v1, a, b, out)


def mul(a: Any, b: Any, out: Any) -> None:
    """``out = a * b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("mul", mul_v1, a, b, out)


def div(a: Any, b: Any, out: Any) -> None:
    """``out = a / b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("div", div_v1, a, b, out)
