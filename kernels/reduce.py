"""Reductions on float32 device arrays: full reductions to one number (sum, sum of squares, asum,
dot) and the per-channel sums shared by scale.py and batchnorm.py.

Math (x, y: same number of elements n, any shapes, flattened C order):
- reduce_sum(x) = sum_i x[i]
- sumsq(x)      = sum_i x[i]^2              (clip_gradients' global L2 norm is sqrt of the total)
- asum(x)       = sum_i |x[i]|              (L1 norms / losses)
- dot(x, y)     = sum_i x[i] * y[i]

Results: with ``out=None`` a host Python float is returned (one 4-byte device->host copy, which
synchronises); with ``out`` (a float32 device array, result in ``out[0]``) nothing is copied to the
host and None is returned; ``accumulate=True`` then adds to ``out[0]`` instead of overwriting it, so
the global gradient norm over all parameter blobs is summed on the device and read once per
iteration (``sumsq_total``). Accumulation is in float32, deterministic (no atomics: the same input
and launch always give the same bits).

Versions (``PROMOTED``: v2 for the four full reductions):
- v1 ``reduce_v1``: one block; each thread strides over the array, then a shared-memory tree sums
  the block.
- v2 ``reduce_partial_v2`` + ``reduce_finalize_v2`` (where more than one block has work: n >
  BLOCK_THREADS * ITEMS_V1; else v1): first pass with up to REDUCE_MAX_BLOCKS blocks in a
  grid-stride loop, one partial sum per block into a scratch buffer; second pass with one block
  sums the partials (two launches, no atomics, deterministic).

Per-channel reductions over (outer, dim, inner) views (shared by scale.py and batchnorm.py, whose
v1 kernels use one block per channel; when the channels are few and long, that leaves most SMs
idle, so their v2 splits each channel over ``parts`` blocks):
- ``channel_partial_v2``: grid (dim, parts); block (d, p) sums its share of channel d's
  outer*inner values into part1[d*parts + p] and part2[d*parts + p]; mode CH_SUM_DOT: s1 = sum a,
  s2 = sum a*b; mode CH_SQDEV: s1 = sum (a - center[d])^2.
- ``channel_finalize_v2``: one thread per channel adds its ``parts`` partials in order, scales
  them, and writes or accumulates (OUT_WRITE / OUT_ADD / OUT_SKIP per output). Deterministic.
- ``channel_thread_v2``: short channels (outer*inner <= CHANNEL_SHORT, e.g. BatchNorm after an
  InnerProduct, or a Scale over many axes): one thread per channel sums its values in order and
  writes directly (a block per channel would leave most of its threads idle).
``channel_parts(dim, per_channel)`` picks parts: 0 = thread per channel, 1 = the calling module's
v1 (one block per channel), > 1 = blocks per channel so that about CHANNEL_TARGET_BLOCKS run;
cached per shape.

Caffe's Reduction layer (x viewed as (num, dim), ``op`` its ReductionParameter SUM, ASUM or SUMSQ;
MEAN is SUM with coeff / dim, folded by the layer):
- ``reduction_fwd_v1``: y[r] = coeff * sum_j term(op, x[r, j]), one block per row (the threads
  stride over the row, ``block_sum`` adds them); a single row (axis 0) runs the whole-array
  reduction above into y[0] instead, then a scale.
- ``reduction_bwd_v1``: g = dy[r] * coeff; dx[r, j] = g (SUM), sign(x)*g (ASUM, sign(0) = 0),
  (2*g)*x (SUMSQ), written; one thread per element, grid-stride.

Launch geometry: ``kernels._block.BLOCK_THREADS`` threads per block (the tree halves it); v2 uses
min(ceil(n / (BLOCK_THREADS * ITEMS_V2)), REDUCE_MAX_BLOCKS) blocks, cached per n.
The operation is a runtime code (OP_SUM, OP_SUMSQ, OP_ASUM, OP_DOT), uniform across the grid, so the
branch costs nothing next to the memory traffic.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._block import BLOCK_THREADS, block_sum, walk_next, walk_start
from kernels._index import flat, flat_checked
from kernels._launch import ceil_div, grid_1d, launch_1d, scratch
from kernels.blas1 import fill, scal

REDUCE_THREADS = BLOCK_THREADS
REDUCE_MAX_BLOCKS = 512     # first-pass block cap (about 4 blocks per SM on H100/H200)
ITEMS_V1 = 16               # one block handles up to REDUCE_THREADS * ITEMS_V1 elements alone
ITEMS_V2 = 8                # minimum elements per thread before another v2 block is added

OP_SUM = 0
OP_SUMSQ = 1
OP_ASUM = 2
OP_DOT = 3
REDUCTION_SUM = 1       # Caffe's ReductionParameter values (MEAN = 4 runs as SUM with coeff / dim)
REDUCTION_ASUM = 2
REDUCTION_SUMSQ = 3
_REDUCTION_TERMS = {REDUCTION_SUM: OP_SUM, REDUCTION_ASUM: OP_ASUM, REDUCTION_SUMSQ: OP_SUMSQ}

CH_SUM_DOT = 0    # channel sums: s1 = sum a, s2 = sum a * b
CH_SQDEV = 1      # channel sums: s1 = sum (a - center[d])^2, s2 = 0
OUT_SKIP = 0      # finalize: leave the output alone
OUT_WRITE = 1     # finalize: out[d] = scale * sum
OUT_ADD = 2       # finalize: out[d] += scale * sum
CHANNEL_TARGET_BLOCKS = 1024   # enough blocks to fill an H100/H200 (132 SMs) several times
CHANNEL_MAX_PARTS = 64         # partials per channel (the finalize adds them one thread each)
ITEMS_CHANNEL = 8              # minimum values per thread before a channel gets another block
CHANNEL_SHORT = 64             # channels this short are summed by one thread each

F1 = float32[::1]


@cuda.jit(device=True, inline=True)
def _term(x, y, i, op):
    """The i-th summand of the reduction ``op``."""
    v = x[i]
    if op == OP_SUMSQ:
        v = v * v
    elif op == OP_ASUM:
        v = abs(v)
    elif op == OP_DOT:
        v = v * y[i]
    return v


@cuda.jit
def reduce_v1(x, y, n, op, out, accumulate):
    """One block: out[0] (+)= sum over i < n of term(op, x, y, i)."""
    partial = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    acc = float32(0)
    for i in range(tid, n, REDUCE_THREADS):
        acc += _term(x, y, i, op)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        if accumulate:
            out[0] = out[0] + total
        else:
            out[0] = total


@cuda.jit
def reduce_partial_v2(x, y, n, op, partials):
    """First pass: partials[block] = sum of term(op, x, y, i) over this block's grid-stride items."""
    partial = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    acc = float32(0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        acc += _term(x, y, i, op)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        partials[cuda.blockIdx.x] = total


@cuda.jit
def reduce_finalize_v2(partials, nparts, out, accumulate):
    """Second pass (one block): out[0] (+)= sum of partials[:nparts]."""
    partial = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    acc = float32(0)
    for i in range(tid, nparts, REDUCE_THREADS):
        acc += partials[i]
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        if accumulate:
            out[0] = out[0] + total
        else:
            out[0] = total


@cuda.jit
def channel_partial_v2(a, b, center, part1, part2, outer, dim, inner, parts, mode):
    """Block (d, p): partial channel sums of channel d over its p-th share of the outer*inner
    values (a grid-stride over the channel with stride parts * REDUCE_THREADS)."""
    partial_1 = cuda.shared.array(REDUCE_THREADS, float32)
    partial_2 = cuda.shared.array(REDUCE_THREADS, float32)
    d = cuda.blockIdx.x
    part = cuda.blockIdx.y
    tid = cuda.threadIdx.x
    mid = float32(0)
    if mode == CH_SQDEV:
        mid = center[d]
    acc1 = float32(0)
    acc2 = float32(0)
    o, i, o_step, i_step = walk_start(part * REDUCE_THREADS + tid, parts * REDUCE_THREADS, inner)
    while o < outer:      # flat k = o*inner + i over the channel, stride parts * REDUCE_THREADS
        idx = (o * dim + d) * inner + i
        v = a[idx]
        if mode == CH_SQDEV:
            dev = v - mid
            acc1 += dev * dev
        else:
            acc1 += v
            acc2 += v * b[idx]
        o, i = walk_next(o, i, o_step, i_step, inner)
    partial_1[tid] = acc1
    partial_2[tid] = acc2
    total1 = block_sum(partial_1, tid)
    total2 = block_sum(partial_2, tid)
    if tid == 0:
        part1[d * parts + part] = total1
        part2[d * parts + part] = total2


@cuda.jit
def channel_finalize_v2(part1, part2, parts, dim, out1, out2, scale1, scale2, how1, how2):
    """Thread d: s = sum of the channel's partials (in order) * scale; out (+)= s per ``how``."""
    for d in range(cuda.grid(1), dim, cuda.gridsize(1)):
        s1 = float32(0)
        s2 = float32(0)
        for p in range(parts):
            s1 += part1[d * parts + p]
            s2 += part2[d * parts + p]
        s1 = s1 * scale1
        s2 = s2 * scale2
        if how1 == OUT_WRITE:
            out1[d] = s1
        elif how1 == OUT_ADD:
            out1[d] = out1[d] + s1
        if how2 == OUT_WRITE:
            out2[d] = s2
        elif how2 == OUT_ADD:
            out2[d] = out2[d] + s2


@cuda.jit
def channel_thread_v2(a, b, center, out1, out2, outer, dim, inner, mode, scale1, scale2, how1, how2):
    """Thread d: the channel sums of channel d (mode as channel_partial_v2), scaled, written or
    accumulated like channel_finalize_v2."""
    for d in range(cuda.grid(1), dim, cuda.gridsize(1)):
        mid = float32(0)
        if mode == CH_SQDEV:
            mid = center[d]
        s1 = float32(0)
        s2 = float32(0)
        for o in range(outer):
            for i in range(inner):
                idx = (o * dim + d) * inner + i
                v = a[idx]
                if mode == CH_SQDEV:
                    dev = v - mid
                    s1 += dev * dev
                else:
                    s1 += v
                    s2 += v * b[idx]
        s1 = s1 * scale1
        s2 = s2 * scale2
        if how1 == OUT_WRITE:
            out1[d] = s1
        elif how1 == OUT_ADD:
            out1[d] = out1[d] + s1
        if how2 == OUT_WRITE:
            out2[d] = s2
        elif how2 == OUT_ADD:
            out2[d] = out2[d] + s2


@cuda.jit
def reduction_fwd_v1(x, y, dim, op, coeff):
    """Row r (this block): y[r] = coeff * sum_j term(op, x[r, j])."""
    partial = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * dim
    acc = float32(0)
    for j in range(tid, dim, REDUCE_THREADS):
        acc += _term(x, x, base + j, op)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        y[cuda.blockIdx.x] = total * coeff if coeff != float32(1) else total


@cuda.jit
def reduction_bwd_v1(x, dy, dx, dim, op, coeff):
    """dx[r, j] from g = dy[r] * coeff: g, sign(x) * g (ASUM) or (2 * g) * x (SUMSQ)."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = dy[i // dim] * coeff
        if op == OP_ASUM:
            v = x[i]
            dx[i] = (float32(v > float32(0)) - float32(v < float32(0))) * g
        elif op == OP_SUMSQ:
            dx[i] = (float32(2) * g) * x[i]
        else:
            dx[i] = g


KERNELS: dict[str, tuple[Any, list]] = {
    "channel_thread_v2": (channel_thread_v2, [void(F1, F1, F1, F1, F1, int64, int64, int64, int64,
                                                   float32, float32, int64, int64)]),
    "channel_partial_v2": (channel_partial_v2,
                           [void(F1, F1, F1, F1, F1, int64, int64, int64, int64, int64)]),
    "channel_finalize_v2": (channel_finalize_v2,
                            [void(F1, F1, int64, int64, F1, F1, float32, float32, int64, int64)]),
    "reduce_v1": (reduce_v1, [void(F1, F1, int64, int64, F1, int64)]),
    "reduce_partial_v2": (reduce_partial_v2, [void(F1, F1, int64, int64, F1)]),
    "reduce_finalize_v2": (reduce_finalize_v2, [void(F1, int64, F1, int64)]),
    "reduction_fwd_v1": (reduction_fwd_v1, [void(F1, F1, int64, int64, float32)]),
    "reduction_bwd_v1": (reduction_bwd_v1, [void(F1, F1, F1, int64, int64, float32)]),
}


@functools.lru_cache(maxsize=4096)
def _blocks_v2(n: int) -> int:
    """First-pass block count for n elements (1 means: use v1 alone)."""
    if n <= REDUCE_THREADS * ITEMS_V1:
        return 1
    return max(1, min(ceil_div(n, REDUCE_THREADS * ITEMS_V2), REDUCE_MAX_BLOCKS))


PROMOTED: dict[str, str] = {"reduce_sum": "v2", "sumsq": "v2", "asum": "v2", "dot": "v2"}


@functools.lru_cache(maxsize=4096)
def channel_parts(dim: int, per_channel: int) -> int:
    """How to reduce ``dim`` channels of ``per_channel`` values: 0 = one thread per channel (short
    channels), 1 = the caller's one-block-per-channel v1, > 1 = that many blocks per channel
    (about CHANNEL_TARGET_BLOCKS blocks in all, each thread summing at least ITEMS_CHANNEL values,
    at most CHANNEL_MAX_PARTS per channel)."""
    if per_channel <= CHANNEL_SHORT:
        return 0
    if dim <= 0 or per_channel <= REDUCE_THREADS * ITEMS_CHANNEL:
        return 1
    by_work = ceil_div(per_channel, REDUCE_THREADS * ITEMS_CHANNEL)
    by_fill = ceil_div(CHANNEL_TARGET_BLOCKS, dim)
    return max(1, min(by_work, by_fill, CHANNEL_MAX_PARTS))


def channel_sums(a: Any, b: Any, center: Any, out1: Any, out2: Any, outer: int, dim: int,
                 inner: int, mode: int, how1: int, how2: int, scale1: float = 1.0,
                 scale2: float = 1.0, parts: int = 2) -> None:
    """Per-channel sums over flat 1-D float32 device arrays viewed as (outer, dim, inner) with
    ``parts`` blocks per channel (v2 partials + finalize), or one thread per channel (parts == 0):
    out1[d] (+)= scale1 * s1[d], out2[d] (+)= scale2 * s2[d] with s1, s2 from ``mode`` (see
    ``channel_partial_v2``); ``how1``/``how2`` are OUT_WRITE, OUT_ADD or OUT_SKIP (a skipped
    output may be any float32 array: it is not touched). ``center`` (dim,) is read in CH_SQDEV
    mode only. Callers validate shapes (scale.py, batchnorm.py)."""
    if dim <= 0:
        return
    if parts == 0:
        blocks, threads = grid_1d(dim)
        channel_thread_v2[blocks, threads](a, b, center, out1, out2, outer, dim, inner, mode,
                                           np.float32(scale1), np.float32(scale2), how1, how2)
        return
    if parts < 0:
        raise ValueError(f"channel_sums: parts must be >= 0, got {parts}")
    part1 = scratch("reduce.channel_part1", dim * parts)
    part2 = scratch("reduce.channel_part2", dim * parts)
    channel_partial_v2[(dim, parts), REDUCE_THREADS](a, b, center, part1, part2, outer, dim, inner,
                                                     parts, mode)
    blocks, threads = grid_1d(dim)
    channel_finalize_v2[blocks, threads](part1, part2, parts, dim, out1, out2, np.float32(scale1),
                                         np.float32(scale2), how1, how2)


def _reduce(name: str, op: int, x: Any, y: Any | None, out: Any | None, accumulate: bool) -> float | None:
    """Launch v2 where more than one block has work (and ``PROMOTED[name]`` is v2), else v1."""
    xf = flat(x)
    yf = xf if y is None else flat(y)
    if xf.dtype != np.float32 or yf.dtype != np.float32:
        raise TypeError(f"{name}: expected float32 arrays, got {xf.dtype}, {yf.dtype}")
    if xf.size != yf.size:
        raise ValueError(f"{name}: arrays differ in size ({xf.size} vs {yf.size})")
    if out is None:
        if accumulate:
            raise ValueError(f"{name}: accumulate=True needs an out array")
        dst = scratch("reduce.result", 1)
    else:
        dst = flat(out)
        if dst.dtype != np.float32 or dst.size < 1:
            raise TypeError(f"{name}: out must be a float32 device array with at least one element")
    n = xf.size
    acc = int(bool(accumulate))
    blocks = _blocks_v2(n) if PROMOTED[name] == "v2" else 1
    if blocks == 1:   # one block suffices: v1 alone, no second pass
        reduce_v1[1, REDUCE_THREADS](xf, yf, n, op, dst, acc)
    else:
        partials = scratch("reduce.partials", REDUCE_MAX_BLOCKS)
        reduce_partial_v2[blocks, REDUCE_THREADS](xf, yf, n, op, partials)
        reduce_finalize_v2[1, REDUCE_THREADS](partials, blocks, dst, acc)
    if out is None:
        return float(dst.copy_to_host()[0])
    return None


def reduce_sum(x: Any, out: Any | None = None, accumulate: bool = False) -> float | None:
    """sum of all elements of float32 device array ``x`` (any shape): a host float when ``out`` is
    None, else written (``accumulate``: added) to device ``out[0]`` and None returned."""
    return _reduce("reduce_sum", OP_SUM, x, None, out, accumulate)


def sumsq(x: Any, out: Any | None = None, accumulate: bool = False) -> float | None:
    """sum of x^2 over all elements of ``x``; result as in ``reduce_sum``."""
    return _reduce("sumsq", OP_SUMSQ, x, None, out, accumulate)


def asum(x: Any, out: Any | None = None, accumulate: bool = False) -> float | None:
    """sum of |x| over all elements of ``x``; result as in ``reduce_sum``."""
    return _reduce("asum", OP_ASUM, x, None, out, accumulate)


def dot(x: Any, y: Any, out: Any | None = None, accumulate: bool = False) -> float | None:
    """sum of x * y over all elements (same size, shapes may differ); result as in ``reduce_sum``."""
    return _reduce("dot", OP_DOT, x, y, out, accumulate)


def sumsq_total(arrays: Sequence[Any]) -> float:
    """sum of x^2 over every element of every array (e.g. all parameter diffs for Caffe's
    clip_gradients: the L2 norm is the square root): accumulated on the device, one host read."""
    total = scratch("reduce.total", 1)
    fill(total, 0.0)
    for a in arrays:
        sumsq(a, out=total, accumulate=True)
    return float(total.copy_to_host()[0])


def _reduction_term(op: int) -> int:
    if op not in _REDUCTION_TERMS:
        raise ValueError(f"reduction: op must be SUM (1), ASUM (2) or SUMSQ (3), got {op}")
    return _REDUCTION_TERMS[op]


def reduction_fwd(x: Any, y: Any, num: int, dim: int, op: int, coeff: float) -> None:
    """Caffe's Reduction: y (num,) = coeff * the per-row reduction ``op`` (REDUCTION_SUM, _ASUM or
    _SUMSQ) of x viewed as (num, dim)."""
    term = _reduction_term(op)
    xf, yf = flat_checked("reduction_fwd", x, num * dim), flat_checked("reduction_fwd", y, num)
    if num == 0:
        return
    if dim == 0:
        fill(yf, 0.0)
        return
    if num == 1:          # one long row: the grid-wide two-pass reduction, on the device
        {OP_SUM: reduce_sum, OP_ASUM: asum, OP_SUMSQ: sumsq}[term](xf, out=yf)
        if np.float32(coeff) != 1:
            scal(yf, float(coeff))
        return
    reduction_fwd_v1[num, REDUCE_THREADS](xf, yf, dim, term, np.float32(coeff))


def reduction_bwd(x: Any, dy: Any, dx: Any, num: int, dim: int, op: int, coeff: float) -> None:
    """dx (num, dim) = the gradient of ``reduction_fwd`` given dy (num,) (dx written)."""
    term = _reduction_term(op)
    xf, dxf = flat_checked("reduction_bwd", x, num * dim), flat_checked("reduction_bwd", dx, num * dim)
    dyf = flat_checked("reduction_bwd", dy, num)
    launch_1d(reduction_bwd_v1, num * dim, xf, dyf, dxf, dim, term, np.float32(coeff))
