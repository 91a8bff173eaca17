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

Versions:
    v1  one thread per element in a grid-stride loop; int64 index arithmetic (numba promotes every
        integer op to int64, and a signed index pays a negative-index wraparound per access) and one
        load in flight per thread per iteration: ~52% of a device copy on an H200.
    v2  the same math bit for bit, built by the ``map*_v2`` templates below: uint32 index arithmetic
        (each op wrapped in ``uint32(...)`` so LLVM keeps it 32-bit; unsigned, so no wraparound code)
        and the grid-stride loop unrolled by 4 -- elements i, i+S, i+2S, i+3S are all loaded before
        any is used or stored, 4 independent loads in flight per thread (~4x the bytes in flight per
        SM); a plain grid-stride tail finishes the last < 4 strides. Predicted 85-92% of copy.
        Arrays of 2**31 elements or more go to v1 (the unrolled indices must not wrap uint32).
    v3  (copy, and ReLU in kernels/activation.py) the ``map*_v3`` templates: 128-bit loads and
        stores (``kernels._vec``), two groups of four per thread per step -- the same bytes in
        flight as v2 with a quarter of the memory instructions. Measured before it (H200): v2 copy
        at 59% of torch's copy, v2 ReLU 57%/64%; predicted >= 80% for v3. Needs 16-byte aligned
        float32 arrays (checked on the host; v2 otherwise).

Launch geometry: 1-D grid; v1 ``kernels._launch.grid_1d(n)`` (THREADS_PER_BLOCK threads per block,
block count capped, grid-stride loop covers the rest); v2 ``grid_1d(ceil(n / UNROLL))`` so each
thread has at least UNROLL elements before the cap; configured launchers cached per (kernel, n).

Arguments: numba device arrays or any ``__cuda_array_interface__`` object, float32 (fill and copy
also take int32 index arrays), C-contiguous;
outputs preallocated; functions return None and never copy to the host.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32, void

from kernels._launch import THREADS_PER_BLOCK, as_device, ceil_div, grid_1d
from kernels._vec import aligned16, load4, store4

F1 = float32[::1]   # flattened C-contiguous float32 array
I1 = int32[::1]     # int32 index arrays (pooling / eltwise masks): fill and copy only

UNROLL = 4                  # v2: independent loads in flight per thread (elements i + k*stride)
V2_MAX_ELEMENTS = 1 << 31   # v2 indexes in uint32: n + UNROLL * (grid stride <= 2**20) < 2**32


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
        # Caffe's order (scal y by beta, then cuBLAS axpy): one explicit fma, so the compiler's
        # contraction cannot pick the other pairing (v1 and v2 then agree bit for bit on the GPU)
        y[i] = cuda.fma(alpha, x[i], beta * y[i])


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


# ------------------------------------------------------------------------------ v2 templates
# A template takes an inline device function ``op(inputs..., p0, p1, p2)`` (three scalar
# parameters, unused ones ignored) and returns a kernel ``(inputs..., out, n, p0, p1, p2)`` that
# writes out[i] = op(in0[i], ..., p0, p1, p2) for i < n. Every index is a uint32 and every integer
# op is wrapped in uint32(...): numba would otherwise promote to int64 (two-instruction adds, a
# 64-bit compare, and a sign-wraparound fix-up on each access); the host keeps n < 2**31.
# The unrolled body loads the four elements i + k*stride (k = 0..3) before computing or storing
# any: four independent loads per thread are in flight. out may alias an input (in place): each
# element is read and written by the same thread, and all reads come first.

@cuda.jit(device=True, inline=True)
def _start():
    return uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)


@cuda.jit(device=True, inline=True)
def _stride():
    return uint32(cuda.gridDim.x * cuda.blockDim.x)


def map0_v2(doc: str) -> Any:
    """Template: out[i] = value (a fill; stores only, unrolled the same way)."""
    def kernel(out, n, value):
        n = uint32(n)
        s1 = _stride()
        s2 = uint32(s1 + s1)
        s3 = uint32(s2 + s1)
        s4 = uint32(s2 + s2)
        i = _start()
        while uint32(i + s3) < n:       # all four elements in bounds
            out[i] = value
            out[uint32(i + s1)] = value
            out[uint32(i + s2)] = value
            out[uint32(i + s3)] = value
            i = uint32(i + s4)
        while i < n:                    # tail: fewer than four strides left
            out[i] = value
            i = uint32(i + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


def map1_v2(op: Any, doc: str) -> Any:
    """Template: out[i] = op(a[i], p0, p1, p2), unrolled by UNROLL over the grid stride."""
    def kernel(a, out, n, p0, p1, p2):
        n = uint32(n)
        s1 = _stride()
        s2 = uint32(s1 + s1)
        s3 = uint32(s2 + s1)
        s4 = uint32(s2 + s2)
        i = _start()
        while uint32(i + s3) < n:       # all four elements in bounds
            i1 = uint32(i + s1)
            i2 = uint32(i + s2)
            i3 = uint32(i + s3)
            a0 = a[i]                   # four independent loads issued before any use
            a1 = a[i1]
            a2 = a[i2]
            a3 = a[i3]
            out[i] = op(a0, p0, p1, p2)
            out[i1] = op(a1, p0, p1, p2)
            out[i2] = op(a2, p0, p1, p2)
            out[i3] = op(a3, p0, p1, p2)
            i = uint32(i + s4)
        while i < n:                    # tail: fewer than four strides left
            out[i] = op(a[i], p0, p1, p2)
            i = uint32(i + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


def map2_v2(op: Any, doc: str) -> Any:
    """Template: out[i] = op(a[i], b[i], p0, p1, p2), unrolled by UNROLL over the grid stride."""
    def kernel(a, b, out, n, p0, p1, p2):
        n = uint32(n)
        s1 = _stride()
        s2 = uint32(s1 + s1)
        s3 = uint32(s2 + s1)
        s4 = uint32(s2 + s2)
        i = _start()
        while uint32(i + s3) < n:       # all four elements in bounds
            i1 = uint32(i + s1)
            i2 = uint32(i + s2)
            i3 = uint32(i + s3)
            a0 = a[i]                   # eight independent loads issued before any use
            a1 = a[i1]
            a2 = a[i2]
            a3 = a[i3]
            b0 = b[i]
            b1 = b[i1]
            b2 = b[i2]
            b3 = b[i3]
            out[i] = op(a0, b0, p0, p1, p2)
            out[i1] = op(a1, b1, p0, p1, p2)
            out[i2] = op(a2, b2, p0, p1, p2)
            out[i3] = op(a3, b3, p0, p1, p2)
            i = uint32(i + s4)
        while i < n:                    # tail: fewer than four strides left
            out[i] = op(a[i], b[i], p0, p1, p2)
            i = uint32(i + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


def map3_v2(op: Any, doc: str) -> Any:
    """Template: out[i] = op(a[i], b[i], c[i], p0, p1, p2), unrolled by UNROLL."""
    def kernel(a, b, c, out, n, p0, p1, p2):
        n = uint32(n)
        s1 = _stride()
        s2 = uint32(s1 + s1)
        s3 = uint32(s2 + s1)
        s4 = uint32(s2 + s2)
        i = _start()
        while uint32(i + s3) < n:       # all four elements in bounds
            i1 = uint32(i + s1)
            i2 = uint32(i + s2)
            i3 = uint32(i + s3)
            a0 = a[i]                   # twelve independent loads issued before any use
            a1 = a[i1]
            a2 = a[i2]
            a3 = a[i3]
            b0 = b[i]
            b1 = b[i1]
            b2 = b[i2]
            b3 = b[i3]
            c0 = c[i]
            c1 = c[i1]
            c2 = c[i2]
            c3 = c[i3]
            out[i] = op(a0, b0, c0, p0, p1, p2)
            out[i1] = op(a1, b1, c1, p0, p1, p2)
            out[i2] = op(a2, b2, c2, p0, p1, p2)
            out[i3] = op(a3, b3, c3, p0, p1, p2)
            i = uint32(i + s4)
        while i < n:                    # tail: fewer than four strides left
            out[i] = op(a[i], b[i], c[i], p0, p1, p2)
            i = uint32(i + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


def map1_v3(op: Any, doc: str) -> Any:
    """Template: out[i] = op(a[i], p0, p1, p2) with 128-bit accesses (``kernels._vec``): thread g
    takes the groups of four elements g and g + S (S = grid size in threads), two 16-byte loads in
    flight before any use; a last single group, then the < 4 tail elements one per thread."""
    def kernel(a, out, n, p0, p1, p2):
        n = uint32(n)
        ng = uint32(n >> uint32(2))        # whole groups of four
        s1 = _stride()
        g = _start()
        while uint32(g + s1) < ng:         # two groups in bounds
            i0 = uint32(g << uint32(2))
            i1 = uint32(uint32(g + s1) << uint32(2))
            a0, a1, a2, a3 = load4(a, i0)  # two independent 16-byte loads, then compute and store
            b0, b1, b2, b3 = load4(a, i1)
            store4(out, i0, op(a0, p0, p1, p2), op(a1, p0, p1, p2), op(a2, p0, p1, p2),
                   op(a3, p0, p1, p2))
            store4(out, i1, op(b0, p0, p1, p2), op(b1, p0, p1, p2), op(b2, p0, p1, p2),
                   op(b3, p0, p1, p2))
            g = uint32(g + s1 + s1)
        if g < ng:                         # one group left for this thread
            i0 = uint32(g << uint32(2))
            a0, a1, a2, a3 = load4(a, i0)
            store4(out, i0, op(a0, p0, p1, p2), op(a1, p0, p1, p2), op(a2, p0, p1, p2),
                   op(a3, p0, p1, p2))
        t = uint32(uint32(ng << uint32(2)) + _start())   # the n % 4 tail elements
        while t < n:
            out[t] = op(a[t], p0, p1, p2)
            t = uint32(t + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


def map2_v3(op: Any, doc: str) -> Any:
    """Template: out[i] = op(a[i], b[i], p0, p1, p2) with 128-bit accesses, as ``map1_v3`` (four
    16-byte loads in flight per thread)."""
    def kernel(a, b, out, n, p0, p1, p2):
        n = uint32(n)
        ng = uint32(n >> uint32(2))
        s1 = _stride()
        g = _start()
        while uint32(g + s1) < ng:
            i0 = uint32(g << uint32(2))
            i1 = uint32(uint32(g + s1) << uint32(2))
            a0, a1, a2, a3 = load4(a, i0)
            b0, b1, b2, b3 = load4(b, i0)
            c0, c1, c2, c3 = load4(a, i1)
            d0, d1, d2, d3 = load4(b, i1)
            store4(out, i0, op(a0, b0, p0, p1, p2), op(a1, b1, p0, p1, p2), op(a2, b2, p0, p1, p2),
                   op(a3, b3, p0, p1, p2))
            store4(out, i1, op(c0, d0, p0, p1, p2), op(c1, d1, p0, p1, p2), op(c2, d2, p0, p1, p2),
                   op(c3, d3, p0, p1, p2))
            g = uint32(g + s1 + s1)
        if g < ng:
            i0 = uint32(g << uint32(2))
            a0, a1, a2, a3 = load4(a, i0)
            b0, b1, b2, b3 = load4(b, i0)
            store4(out, i0, op(a0, b0, p0, p1, p2), op(a1, b1, p0, p1, p2), op(a2, b2, p0, p1, p2),
                   op(a3, b3, p0, p1, p2))
        t = uint32(uint32(ng << uint32(2)) + _start())
        while t < n:
            out[t] = op(a[t], b[t], p0, p1, p2)
            t = uint32(t + s1)
    kernel.__doc__ = doc
    return cuda.jit(kernel)


V3_PER_THREAD = 8    # v3: elements per thread per loop step (two 128-bit groups)


@functools.lru_cache(maxsize=4096)
def configured_v3(kernel: Any, n: int, threads: int = THREADS_PER_BLOCK) -> Any:
    """``kernel[blocks, threads]`` for a v3 template kernel: one thread per V3_PER_THREAD elements
    (block count capped by grid_1d; the loops cover the rest)."""
    blocks, threads = grid_1d(ceil_div(n, V3_PER_THREAD), threads)
    return kernel[blocks, threads]


@functools.lru_cache(maxsize=4096)
def configured_v2(kernel: Any, n: int, threads: int = THREADS_PER_BLOCK) -> Any:
    """``kernel[blocks, threads]`` for a v2 template kernel over n elements: enough blocks that
    each thread has UNROLL elements (capped by grid_1d), created once per (kernel, n)."""
    blocks, threads = grid_1d(ceil_div(n, UNROLL), threads)
    return kernel[blocks, threads]


# the ops: the same expressions as the v1 kernels, so v2 results are bit-identical
@cuda.jit(device=True, inline=True)
def _op_copy(a, p0, p1, p2):
    return a


@cuda.jit(device=True, inline=True)
def _op_scale(a, p0, p1, p2):
    return p0 * a


@cuda.jit(device=True, inline=True)
def _op_add_scalar(a, p0, p1, p2):
    return a + p0


@cuda.jit(device=True, inline=True)
def _op_axpy(x, y, p0, p1, p2):
    return p0 * x + y


@cuda.jit(device=True, inline=True)
def _op_axpby(x, y, p0, p1, p2):
    return cuda.fma(p0, x, p1 * y)      # as axpby_v1: fma(alpha, x, beta*y)


@cuda.jit(device=True, inline=True)
def _op_add(a, b, p0, p1, p2):
    return a + b


@cuda.jit(device=True, inline=True)
def _op_sub(a, b, p0, p1, p2):
    return a - b


@cuda.jit(device=True, inline=True)
def _op_mul(a, b, p0, p1, p2):
    return a * b


@cuda.jit(device=True, inline=True)
def _op_div(a, b, p0, p1, p2):
    return a / b


fill_v2 = map0_v2("x[i] = value for i < n; uint32 indices, 4 stores per unrolled step.")
copy_v2 = map1_v2(_op_copy, "dst[i] = src[i]; uint32 indices, 4 loads in flight per thread.")
copy_v3 = map1_v3(_op_copy, "dst[i] = src[i]; 128-bit loads and stores, 8 elements in flight per thread.")
scale_v2 = map1_v2(_op_scale, "y[i] = alpha * x[i] (p0 = alpha; also scal with y = x); unrolled by 4.")
add_scalar_v2 = map1_v2(_op_add_scalar, "x[i] += alpha (p0 = alpha); unrolled by 4.")
axpy_v2 = map2_v2(_op_axpy, "y[i] = alpha * x[i] + y[i] (p0 = alpha); 8 loads in flight per thread.")
axpby_v2 = map2_v2(_op_axpby, "y[i] = beta * y[i] + alpha * x[i] (p0 = alpha, p1 = beta); unrolled by 4.")
add_v2 = map2_v2(_op_add, "out[i] = a[i] + b[i]; unrolled by 4.")
sub_v2 = map2_v2(_op_sub, "out[i] = a[i] - b[i]; unrolled by 4.")
mul_v2 = map2_v2(_op_mul, "out[i] = a[i] * b[i]; unrolled by 4.")
div_v2 = map2_v2(_op_div, "out[i] = a[i] / b[i]; unrolled by 4.")

_S = float32
_U = uint32
SIG1 = void(F1, F1, _U, _S, _S, _S)        # map1 over float32 arrays
SIG2 = void(F1, F1, F1, _U, _S, _S, _S)    # map2 over float32 arrays
SIG3 = void(F1, F1, F1, F1, _U, _S, _S, _S)


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
    "fill_v2": (fill_v2, [void(F1, _U, float32), void(I1, _U, int32)]),
    "copy_v2": (copy_v2, [SIG1, void(I1, I1, _U, _S, _S, _S)]),
    "copy_v3": (copy_v3, [SIG1]),
    "scale_v2": (scale_v2, [SIG1]),
    "add_scalar_v2": (add_scalar_v2, [SIG1]),
    "axpy_v2": (axpy_v2, [SIG2]),
    "axpby_v2": (axpby_v2, [SIG2]),
    "add_v2": (add_v2, [SIG2]),
    "sub_v2": (sub_v2, [SIG2]),
    "mul_v2": (mul_v2, [SIG2]),
    "div_v2": (div_v2, [SIG2]),
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


def _use_v2(version: int, n: int) -> bool:
    """True when the v2 kernels run: version 2 asked and n fits their uint32 indexing."""
    if version not in (1, 2):
        raise ValueError(f"fill-family version must be 1 or 2, got {version}")
    return version == 2 and n < V2_MAX_ELEMENTS


_P0 = np.float32(0)     # the unused template parameters


def fill(x: Any, value: float, version: int = 2) -> None:
    """Set every element of float32 (or int32) device array ``x`` (any shape) to ``value``.
    ``version`` 1 or 2 picks the kernel (v2 falls back to v1 for 2**31 elements or more)."""
    xf = flat(x)
    if xf.dtype not in (np.float32, np.int32):
        raise TypeError(f"fill: expected a float32 or int32 array, got {xf.dtype}")
    n = xf.size
    if _use_v2(version, n):
        if n:
            configured_v2(fill_v2, n)(xf, np.uint32(n), xf.dtype.type(value))
        return
    blocks, threads = grid_1d(n)
    fill_v1[blocks, threads](xf, n, xf.dtype.type(value))


def scal(x: Any, alpha: float, version: int = 2) -> None:
    """In place ``x *= alpha`` over every element of float32 device array ``x`` (any shape);
    alpha == 0 writes zeros without reading x."""
    xf = flat(x)
    _check_f32("scal", xf)
    n = xf.size
    if alpha == 0:
        fill(xf, 0.0, version)
        return
    if _use_v2(version, n):
        if n:
            configured_v2(scale_v2, n)(xf, xf, np.uint32(n), np.float32(alpha), _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    scal_v1[blocks, threads](xf, n, np.float32(alpha))


def scale(x: Any, y: Any, alpha: float, version: int = 2) -> None:
    """``y = alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ)."""
    xf, yf = flat(x), flat(y)
    _check_f32("scale", xf, yf)
    _check_same_size("scale", xf, yf)
    n = xf.size
    if _use_v2(version, n):
        if n:
            configured_v2(scale_v2, n)(xf, yf, np.uint32(n), np.float32(alpha), _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    scale_v1[blocks, threads](xf, yf, n, np.float32(alpha))


def axpy(alpha: float, x: Any, y: Any, version: int = 2) -> None:
    """``y += alpha * x`` elementwise; ``x`` and ``y`` have the same size (shapes may differ)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpy", xf, yf)
    _check_same_size("axpy", xf, yf)
    n = xf.size
    if _use_v2(version, n):
        if n:
            configured_v2(axpy_v2, n)(xf, yf, yf, np.uint32(n), np.float32(alpha), _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    axpy_v1[blocks, threads](xf, yf, n, np.float32(alpha))


def axpby(alpha: float, x: Any, beta: float, y: Any, version: int = 2) -> None:
    """``y = alpha * x + beta * y`` elementwise; same-size arrays (shapes may differ). beta == 0
    does not read y (y may hold NaN garbage)."""
    xf, yf = flat(x), flat(y)
    _check_f32("axpby", xf, yf)
    _check_same_size("axpby", xf, yf)
    if beta == 0:
        scale(xf, yf, alpha, version)
        return
    n = xf.size
    if _use_v2(version, n):
        if n:
            configured_v2(axpby_v2, n)(xf, yf, yf, np.uint32(n), np.float32(alpha),
                                       np.float32(beta), _P0)
        return
    blocks, threads = grid_1d(n)
    axpby_v1[blocks, threads](xf, yf, n, np.float32(alpha), np.float32(beta))


def add_scalar(x: Any, alpha: float, version: int = 2) -> None:
    """In place ``x += alpha`` over every element of float32 device array ``x``."""
    xf = flat(x)
    _check_f32("add_scalar", xf)
    n = xf.size
    if _use_v2(version, n):
        if n:
            configured_v2(add_scalar_v2, n)(xf, xf, np.uint32(n), np.float32(alpha), _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    add_scalar_v1[blocks, threads](xf, n, np.float32(alpha))


def copy(src: Any, dst: Any, version: int = 3) -> None:
    """``dst = src`` elementwise in flattened C order; same size, shapes may differ; float32 (or
    int32, both the same). ``version`` 3 (128-bit accesses) needs float32 and 16-byte aligned
    arrays and otherwise runs v2."""
    sf, df = flat(src), flat(dst)
    if sf.dtype != df.dtype or sf.dtype not in (np.float32, np.int32):
        raise TypeError(f"copy: expected two float32 or two int32 arrays, got {sf.dtype}, {df.dtype}")
    _check_same_size("copy", sf, df)
    n = sf.size
    if version == 3:        # 128-bit accesses: float32, 16-byte aligned, else v2
        if sf.dtype == np.float32 and n < V2_MAX_ELEMENTS and aligned16(sf, df):
            if n:
                configured_v3(copy_v3, n)(sf, df, np.uint32(n), _P0, _P0, _P0)
            return
        version = 2
    if _use_v2(version, n):
        if n:
            configured_v2(copy_v2, n)(sf, df, np.uint32(n), _P0, _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    copy_v1[blocks, threads](sf, df, n)


def _binary(name: str, kernel: Any, a: Any, b: Any, out: Any, version: int = 2) -> None:
    af, bf, of = flat(a), flat(b), flat(out)
    _check_f32(name, af, bf, of)
    _check_same_size(name, af, bf)
    _check_same_size(name, af, of)
    n = af.size
    if _use_v2(version, n):
        if n:
            configured_v2(_BINARY_V2[kernel], n)(af, bf, of, np.uint32(n), _P0, _P0, _P0)
        return
    blocks, threads = grid_1d(n)
    kernel[blocks, threads](af, bf, of, n)


_BINARY_V2 = {add_v1: add_v2, sub_v1: sub_v2, mul_v1: mul_v2, div_v1: div_v2}


def add(a: Any, b: Any, out: Any, version: int = 2) -> None:
    """``out = a + b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("add", add_v1, a, b, out, version)


def sub(a: Any, b: Any, out: Any, version: int = 2) -> None:
    """``out = a - b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("sub", sub_v1, a, b, out, version)


def mul(a: Any, b: Any, out: Any, version: int = 2) -> None:
    """``out = a * b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("mul", mul_v1, a, b, out, version)


def div(a: Any, b: Any, out: Any, version: int = 2) -> None:
    """``out = a / b`` elementwise over same-size float32 arrays (out may be a or b)."""
    _binary("div", div_v1, a, b, out, version)
