"""BLAS-1 style operations on device arrays (Caffe's caffe_gpu_set / scal / scale / axpy / axpby /
add_scalar / copy / add / sub / mul / div).

Math (x, y, a, b, out: float32 arrays of the same number of elements; any shapes, flattened C order):
- fill:        x[i] = value                          (caffe_gpu_set; float32 or int32)
- copy:        dst[i] = src[i]                       (caffe_copy; float32 or int32; src and dst may
               have different shapes of the same size, e.g. a (N, C, 1, 1) top and an (N, C) bottom)
- scaled_copy: y[i] = alpha * x[i]                   (caffe_gpu_scale; y may be x)
- scal:        x[i] = alpha * x[i]                   (caffe_gpu_scal: scaled_copy in place)
- axpy:        y[i] = alpha * x[i] + y[i]            (caffe_gpu_axpy)
- axpby:       y[i] = alpha * x[i] + beta * y[i]     (caffe_gpu_axpby; Caffe computes scal(beta, y)
               then axpy; here one explicit fma(alpha, x, beta*y), so every version rounds alike)
- add_scalar:  x[i] = x[i] + alpha                   (caffe_gpu_add_scalar, in place)
- add / sub / mul / div: out[i] = a[i] (+ - * /) b[i] (out may be a or b)

NaN safety as Caffe's BLAS: ``axpby`` with beta == 0 never reads y and ``scal`` with alpha == 0
writes zeros (an uninitialised buffer holding NaN must not leak through 0 * NaN). Reductions (sum,
sum of squares, asum, dot) live in ``kernels/reduce.py``.

Versions (``PROMOTED`` names the one each public function launches; ``kernels._elementwise.runnable``
gives the fallback: v3 needs 16-byte aligned float32 arrays, v2 and v3 fewer than 2**31 elements):
    v1  one thread per element in a grid-stride loop (int64 index arithmetic).
    v2  the same math bit for bit from the ``kernels._elementwise`` v2 templates: uint32 indices,
        the grid stride unrolled by 4 (four independent loads in flight per thread).
    v3  copy only: the v3 template, 128-bit loads and stores.

Launch geometry: 1-D grid; v1 ``kernels._launch.grid_1d(n)``, v2/v3 ``configured_v2``/``configured_v3``
(one thread per 4 / 8 elements before the block cap), cached per (kernel, n).
Arguments: numba device arrays or any ``__cuda_array_interface__`` object, C-contiguous; outputs
preallocated; functions return None and never copy to the host.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32, void

from kernels import _elementwise as ew
from kernels._index import flat
from kernels._launch import grid_1d

F1 = float32[::1]   # flattened C-contiguous float32 array
I1 = int32[::1]     # int32 index arrays (pooling / eltwise masks): fill and copy only

PROMOTED: dict[str, str] = {
    "fill": "v2", "copy": "v3", "scaled_copy": "v2", "axpy": "v2", "axpby": "v2", "add_scalar": "v2",
    "add": "v2", "sub": "v2", "mul": "v2", "div": "v2",
}


@cuda.jit
def fill_v1(x, n, value):
    """x[i] = value for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        x[i] = value


@cuda.jit
def copy_v1(src, dst, n):
    """dst[i] = src[i] for i < n."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dst[i] = src[i]


@cuda.jit
def scaled_copy_v1(x, y, n, alpha):
    """y[i] = alpha * x[i] for i < n (y may alias x)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        y[i] = alpha * x[i]


@cuda.jit
def axpy_v1(x, y, out, n, alpha):
    """out[i] = alpha * x[i] + y[i] for i < n (out is y)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = alpha * x[i] + y[i]


@cuda.jit
def axpby_v1(x, y, out, n, alpha, beta):
    """out[i] = alpha * x[i] + beta * y[i] for i < n (out is y)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        # one explicit fma, so the compiler's contraction cannot pick the other pairing
        out[i] = cuda.fma(alpha, x[i], beta * y[i])


@cuda.jit
def add_scalar_v1(x, out, n, alpha):
    """out[i] = x[i] + alpha for i < n (out is x)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = x[i] + alpha


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


# the v2/v3 ops: the v1 kernels' expressions, so every version gives the same bits
@cuda.jit(device=True, inline=True)
def _copy(a, p0, p1, p2):
    return a


@cuda.jit(device=True, inline=True)
def _scaled(a, p0, p1, p2):
    return p0 * a


@cuda.jit(device=True, inline=True)
def _add_scalar(a, p0, p1, p2):
    return a + p0


@cuda.jit(device=True, inline=True)
def _axpy(x, y, p0, p1, p2):
    return p0 * x + y


@cuda.jit(device=True, inline=True)
def _axpby(x, y, p0, p1, p2):
    return cuda.fma(p0, x, p1 * y)


@cuda.jit(device=True, inline=True)
def _add(a, b, p0, p1, p2):
    return a + b


@cuda.jit(device=True, inline=True)
def _sub(a, b, p0, p1, p2):
    return a - b


@cuda.jit(device=True, inline=True)
def _mul(a, b, p0, p1, p2):
    return a * b


@cuda.jit(device=True, inline=True)
def _div(a, b, p0, p1, p2):
    return a / b


fill_v2 = ew.map0_v2("x[i] = value for i < n; uint32 indices, 4 stores per unrolled step.")
copy_v2 = ew.map1_v2(_copy, "dst[i] = src[i]; uint32 indices, 4 loads in flight per thread.")
copy_v3 = ew.map1_v3(_copy, "dst[i] = src[i]; 128-bit loads and stores, 8 elements in flight per thread.")
scaled_copy_v2 = ew.map1_v2(_scaled, "y[i] = alpha * x[i] (p0 = alpha; y may be x); unrolled by 4.")
add_scalar_v2 = ew.map1_v2(_add_scalar, "x[i] += alpha (p0 = alpha); unrolled by 4.")
axpy_v2 = ew.map2_v2(_axpy, "y[i] = alpha * x[i] + y[i] (p0 = alpha); 8 loads in flight per thread.")
axpby_v2 = ew.map2_v2(_axpby, "y[i] = beta * y[i] + alpha * x[i] (p0 = alpha, p1 = beta); unrolled by 4.")
add_v2 = ew.map2_v2(_add, "out[i] = a[i] + b[i]; unrolled by 4.")
sub_v2 = ew.map2_v2(_sub, "out[i] = a[i] - b[i]; unrolled by 4.")
mul_v2 = ew.map2_v2(_mul, "out[i] = a[i] * b[i]; unrolled by 4.")
div_v2 = ew.map2_v2(_div, "out[i] = a[i] / b[i]; unrolled by 4.")

_S = float32
_U = uint32
_SIG1 = void(F1, F1, _U, _S, _S, _S)        # one-input template over float32 arrays
_SIG2 = void(F1, F1, F1, _U, _S, _S, _S)    # two-input template

KERNELS: dict[str, tuple[Any, list]] = {
    "fill_v1": (fill_v1, [void(F1, int64, float32), void(I1, int64, int32)]),
    "copy_v1": (copy_v1, [void(F1, F1, int64), void(I1, I1, int64)]),
    "scaled_copy_v1": (scaled_copy_v1, [void(F1, F1, int64, float32)]),
    "axpy_v1": (axpy_v1, [void(F1, F1, F1, int64, float32)]),
    "axpby_v1": (axpby_v1, [void(F1, F1, F1, int64, float32, float32)]),
    "add_scalar_v1": (add_scalar_v1, [void(F1, F1, int64, float32)]),
    "add_v1": (add_v1, [void(F1, F1, F1, int64)]),
    "sub_v1": (sub_v1, [void(F1, F1, F1, int64)]),
    "mul_v1": (mul_v1, [void(F1, F1, F1, int64)]),
    "div_v1": (div_v1, [void(F1, F1, F1, int64)]),
    "fill_v2": (fill_v2, [void(F1, _U, float32), void(I1, _U, int32)]),
    "copy_v2": (copy_v2, [_SIG1, void(I1, I1, _U, _S, _S, _S)]),
    "copy_v3": (copy_v3, [_SIG1]),
    "scaled_copy_v2": (scaled_copy_v2, [_SIG1]),
    "add_scalar_v2": (add_scalar_v2, [_SIG1]),
    "axpy_v2": (axpy_v2, [_SIG2]),
    "axpby_v2": (axpby_v2, [_SIG2]),
    "add_v2": (add_v2, [_SIG2]),
    "sub_v2": (sub_v2, [_SIG2]),
    "mul_v2": (mul_v2, [_SIG2]),
    "div_v2": (div_v2, [_SIG2]),
}

_P0 = np.float32(0)     # the unused template parameters


def _check_f32(name: str, *arrays: Any) -> None:
    for a in arrays:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected float32 arrays, got {a.dtype}")


def _check_same_size(name: str, a: Any, *others: Any) -> None:
    for b in others:
        if a.size != b.size:
            raise ValueError(f"{name}: arrays differ in size ({a.size} vs {b.size})")


def _run(op: str, arrays: list, *scalars: Any) -> None:
    """Launch ``op``'s promoted version (or the one ``runnable`` falls back to) on the flat
    ``arrays`` (inputs, then the output) with its float32 ``scalars``."""
    n = arrays[0].size
    if n == 0:
        return
    version = ew.runnable(PROMOTED[op], n, *arrays)
    kernel = KERNELS[f"{op}_{version}"][0]
    if version == "v1":
        blocks, threads = grid_1d(n)
        kernel[blocks, threads](*arrays, n, *scalars)
        return
    params = (*scalars, _P0, _P0, _P0)[:3]
    launch = ew.configured_v3 if version == "v3" else ew.configured_v2
    launch(kernel, n)(*arrays, np.uint32(n), *params)


def fill(x: Any, value: float) -> None:
    """Set every element of float32 (or int32) device array ``x`` (any shape) to ``value``."""
    xf = flat(x)
    if xf.dtype not in (np.float32, np.int32):
        raise TypeError(f"fill: expected a float32 or int32 array, got {xf.dtype}")
    n = xf.size
    if n == 0:
        return
    if ew.runnable(PROMOTED["fill"], n) == "v1":
        blocks, threads = grid_1d(n)
        fill_v1[blocks, threads](xf, n, xf.dtype.type(value))
        return
    ew.configured_v2(fill_v2, n)(xf, np.uint32(n), xf.dtype.type(value))


def copy(src: Any, dst: Any) -> None:
    """``dst = src`` elementwise in flattened C order; same size, shapes may differ; two float32
    or two int32 arrays (int32 runs v2 at most)."""
    sf, df = flat(src), flat(dst)
    if sf.dtype != df.dtype or sf.dtype not in (np.float32, np.int32):
        raise TypeError(f"copy: expected two float32 or two int32 arrays, got {sf.dtype}, {df.dtype}")
    _check_same_size("copy", sf, df)
    _run("copy", [sf, df])


def scaled_copy(x: Any, y: Any, alpha: float) -> None:
    """``y = alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ; y
    may be x)."""
    xf, yf = flat(x), flat(y)
    _check_f32("scaled_copy", xf, yf)
    _check_same_size("scaled_copy", xf, yf)
    _run("scaled_copy", [xf, yf], np.float32(alpha))


def scal(x: Any, alpha: float) -> None:
    """In place ``x *= alpha`` over every element of float32 device array ``x`` (any shape), as
    ``scaled_copy(x, x, alpha)``; alpha == 0 writes zeros without reading x."""
    xf = flat(x)
    _check_f32("scal", xf)
    if alpha == 0:
        fill(xf, 0.0)
        return
    scaled_copy(xf, xf, alpha)


def axpy(alpha: float, x: Any, y: Any) -> None:
    """``y += alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpy", xf, yf)
    _check_same_size("axpy", xf, yf)
    _run("axpy", [xf, yf, yf], np.float32(alpha))


def axpby(alpha: float, x: Any, beta: float, y: Any) -> None:
    """``y = alpha * x + beta * y`` elementwise; same-size arrays (shapes may differ). beta == 0
    does not read y (y may hold NaN garbage)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpby", xf, yf)
    _check_same_size("axpby", xf, yf)
    if beta == 0:
        scaled_copy(xf, yf, alpha)
        return
    _run("axpby", [xf, yf, yf], np.float32(alpha), np.float32(beta))


def add_scalar(x: Any, alpha: float) -> None:
    """In place ``x += alpha`` over every element of float32 device array ``x``."""
    xf = flat(x)
    _check_f32("add_scalar", xf)
    _run("add_scalar", [xf, xf], np.float32(alpha))


def _binary(op: str, a: Any, b: Any, out: Any) -> None:
    af, bf, of = flat(a), flat(b), flat(out)
    _check_f32(op, af, bf, of)
    _check_same_size(op, af, bf, of)
    _run(op, [af, bf, of])


def add(a: Any, b: Any, out: Any) -> None:
    """``out = a + b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("add", a, b, out)


def sub(a: Any, b: Any, out: Any) -> None:
    """``out = a - b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("sub", a, b, out)


def mul(a: Any, b: Any, out: Any) -> None:
    """``out = a * b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("mul", a, b, out)


def div(a: Any, b: Any, out: Any) -> None:
    """``out = a / b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("div", a, b, out)
