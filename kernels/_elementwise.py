"""Templates of the elementwise kernels (blas1.py, activation.py, dropout.py) and their launch rule.

A template takes an inline device function ``op(inputs..., p0, p1, p2)`` (three scalar parameters,
unused ones ignored) and returns a kernel ``(inputs..., out, n, p0, p1, p2)`` writing
``out[i] = op(in0[i], ..., p0, p1, p2)`` for i < n. ``out`` may alias an input (in place): each
element is read and written by the same thread, and its reads come first.

- v2 (``map0_v2``: a fill, ``map1_v2``/``map2_v2``/``map3_v2``: 1-3 inputs): uint32 index
  arithmetic (each integer op wrapped in ``uint32(...)``, so LLVM keeps it 32-bit and unsigned: no
  int64 promotion, no negative-index wraparound code) and the grid-stride loop unrolled by UNROLL:
  the elements i + k*stride (k < 4) are all loaded before any is used or stored, then a plain
  grid-stride tail finishes the last < 4 strides.
- v3 (``map1_v3``/``map2_v3``): 128-bit loads and stores (``kernels._vec``), two groups of four
  elements per thread per step, then a single last group, then the n % 4 tail one per thread.

Launch: ``configured_v2(kernel, n)`` / ``configured_v3(kernel, n)`` give ``kernel[blocks,
threads]`` over ceil(n / UNROLL) or ceil(n / V3_PER_THREAD) threads (``grid_1d``'s capped block
count), cached per (kernel, n). ``runnable(version, n, *arrays)`` is the rule every user of the
templates applies to its promoted version: v3 needs 16-byte aligned float32 arrays, v2 and v3
need n < 2**31 (their uint32 indices must not wrap); else the next older version runs.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import cuda, uint32

from kernels._launch import THREADS_PER_BLOCK, ceil_div, grid_1d
from kernels._vec import aligned16, load4, store4

UNROLL = 4                  # v2: independent loads in flight per thread (elements i + k*stride)
V3_PER_THREAD = 8           # v3: elements per thread per loop step (two 128-bit groups)
V2_MAX_ELEMENTS = 1 << 31   # v2/v3 index in uint32: n + UNROLL * (grid stride <= 2**20) < 2**32


def runnable(version: str, n: int, *arrays: Any) -> str:
    """``version`` ("v1", "v2" or "v3") where it can run on these n-element arrays, else the next
    older version that can."""
    if version == "v3" and not (n < V2_MAX_ELEMENTS and all(a.dtype == np.float32 for a in arrays)
                                and aligned16(*arrays)):
        version = "v2"
    if version == "v2" and n >= V2_MAX_ELEMENTS:
        version = "v1"
    return version


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
    """Template: out[i] = op(a[i], p0, p1, p2) with 128-bit accesses: thread g takes the groups of
    four elements g and g + S (S = grid size in threads), two 16-byte loads in flight before any
    use; a last single group, then the < 4 tail elements one per thread."""
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


@functools.lru_cache(maxsize=4096)
def configured_v2(kernel: Any, n: int, threads: int = THREADS_PER_BLOCK) -> Any:
    """``kernel[blocks, threads]`` for a v2 template kernel over n elements: enough blocks that
    each thread has UNROLL elements (capped by grid_1d), created once per (kernel, n)."""
    blocks, threads = grid_1d(ceil_div(n, UNROLL), threads)
    return kernel[blocks, threads]


@functools.lru_cache(maxsize=4096)
def configured_v3(kernel: Any, n: int, threads: int = THREADS_PER_BLOCK) -> Any:
    """``kernel[blocks, threads]`` for a v3 template kernel: one thread per V3_PER_THREAD elements
    (block count capped by grid_1d; the loops cover the rest)."""
    blocks, threads = grid_1d(ceil_div(n, V3_PER_THREAD), threads)
    return kernel[blocks, threads]
