"""Softmax, softmax-with-loss and top-k accuracy over one axis, with Caffe's semantics.

Every array is viewed as (outer, C, inner): ``axis`` splits the shape (Caffe's CanonicalAxisIndex,
negative axes count from the end), outer = prod(shape[:axis]), C = shape[axis],
inner = prod(shape[axis+1:]); for NCHW with axis 1 that is (N, C, H*W). Labels are float32 arrays of
outer*inner integers (Caffe stores labels as float; the value is truncated toward zero as
``static_cast<int>``).

Math, per position (o, s):
    softmax      y[o,c,s] = exp(x[o,c,s] - m) / sum_c' exp(x[o,c',s] - m),  m = max_c x[o,c,s]
                 (subtracting the max keeps exp <= 1: logits of 1e4 do not overflow)
    softmax bwd  dx[o,c,s] = (dy[o,c,s] - sum_c' dy[o,c',s]*y[o,c',s]) * y[o,c,s]
    loss fwd     l[o,s] = -log(max(prob[o,label,s], FLT_MIN)), 0 where label == ignore_label;
                 returns (sum of l, number of non-ignored positions) to the host; the caller divides
                 by Caffe's normalizer and multiplies by the loss weight
    loss bwd     dx[o,c,s] = (prob[o,c,s] - (c == label)) * scale, 0 for ignored positions; the
                 caller passes scale = loss_weight / normalizer
    accuracy     position counts as correct when the label's score ranks among the top k:
                 ties="cpu" (Caffe's accuracy_layer.cpp: std::partial_sort of (score, index) pairs
                 with std::greater, so equal scores rank the LARGER index first):
                     rank = #{k : s_k > s_label} + #{k > label : s_k == s_label}
                 ties="gpu" (Caffe's accuracy_layer.cu: every other class with an equal score
                 counts as better):  rank = #{k != label : s_k >= s_label}
                 correct when rank < top_k; returns (correct count, non-ignored count); optional
                 per-class (2, C) int32 counts: row 0 correct, row 1 seen, per label value.

Out-of-range labels (not ignored, outside [0, C)): no kernel reads or writes out of bounds; the
forward and accuracy kernels count them and the Python function raises ValueError (Caffe's GPU code
would read out of bounds; its CPU code DCHECKs). The loss backward leaves such positions as
prob*scale.

Versions (``PROMOTED``: v3 for softmax, v2 for the loss; where a version does not apply the
next older one runs):
    softmax_fwd_v1 / softmax_bwd_v1      one thread per (o, s) position, three (two) passes over C
                                         (coalesced over s when inner > 1)
    softmax_fwd_v3 / softmax_bwd_v3      inner == 1 (fc8 -> loss, 256x1000): a team of 32..256
                                         threads (power of two ~ C/4) per row, 256/team rows per
                                         block; loads unrolled by 4 along the row (coalesced), max /
                                         sum / dot by warp shuffles (shfl_xor butterfly) and, for
                                         teams wider than a warp, the warps' results combined in
                                         order via shared memory; exp recomputed in the last pass
                                         instead of v1's store-then-reload of y; uint32 indices
    softmax_fwd_v3_spatial / _bwd_v3_spatial
                                         v3 for inner >= SOFTMAX_V3_MIN_INNER: grid (inner/256,
                                         outer): a thread per position s, blockIdx.y = o (no
                                         divides), consecutive threads on consecutive s; the C loop
                                         unrolled by 4 (4 or 8 independent loads); v1's operations
                                         in v1's order (bit-identical results)
    softmax_loss_fwd_v1, accuracy_fwd_v1 one thread per position, block tree reduction in shared
                                         memory -> one partial per block
    partial_sum_fwd_v1                   one block folds the per-block partials (deterministic order:
                                         no float atomics)
    softmax_loss_bwd_v1                  one thread per element of dx
    softmax_loss_fwd_v2                  v1's per-block sums (same grid and order: same bits), uint32
                                         indices, then the last block (ticket by atomic add after a
                                         threadfence) folds the partials in block order: one launch,
                                         device buffers cached per grid size, one 16-byte copy to the
                                         host
    softmax_loss_bwd_v2                  grid (row blocks, outer): blockIdx.y = o, threads over the
                                         C*inner elements of a row, 4 per thread in flight, one uint32
                                         divide for c (none when inner == 1)
    v3 and loss v2 need fewer than 2**31 elements (uint32 indices); v3 runs for inner == 1 or
    inner >= SOFTMAX_V3_MIN_INNER.

Launch geometry: v1 and the reductions: 1-D grid-stride loops; SOFTMAX_THREADS threads per block
over positions/elements, REDUCE_THREADS (a power of two) for the reductions; block counts from
``kernels._launch.grid_1d`` (capped). v3: SOFTMAX_V3_THREADS per block; rows: blocks over rows /
(256 / team) (capped, grid-stride over row groups); spatial and loss bwd v2: 2-D grid, y over
outer (capped at 65535, looped beyond). Configured launches cached per shape. Simulator: warp
shuffles are emulated through shared memory (``_shfl_xor``).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32, void

from kernels._launch import MAX_BLOCKS_1D, SIMULATOR, as_device, ceil_div, grid_1d

SOFTMAX_THREADS = 256       # threads per block for the per-position / per-element kernels
REDUCE_THREADS = 256        # threads per block of the reductions; a power of two (tree halves it)
SOFTMAX_V3_THREADS = 256    # v3: threads per block (rows kernels: a multiple of every team size)
SOFTMAX_V3_WARPS = SOFTMAX_V3_THREADS // 32
SOFTMAX_V3_MIN_INNER = 32   # v3 spatial kernels for inner >= this; v1 (thread per position) below
SOFTMAX_V3_PER_THREAD = 4   # v3 rows: team size ~ C / this (4 elements per thread, one unrolled step)
MAX_GRID_Y = 65535          # CUDA's limit on gridDim.y (kernels loop over o beyond it)
V3_MAX_ELEMENTS = 1 << 31   # v3 / loss v2 index in uint32 (with room for the unrolled offsets)
NEG_FLT_MAX = np.float32(-np.finfo(np.float32).max)
FLT_MIN = np.float32(np.finfo(np.float32).tiny)     # Caffe's floor on the label's probability

_ZERO = float32(0.0)
_ONE = float32(1.0)


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit
def softmax_fwd_v1(x, y, C, inner):
    """y = exp(x - max) / sum exp(x - max) over the C channels of each (o, s) position."""
    for p in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        m = x[base]
        for c in range(1, C):
            m = max(m, x[base + c * inner])
        total = _ZERO
        for c in range(C):
            e = math.exp(x[base + c * inner] - m)
            y[base + c * inner] = e
            total += e
        for c in range(C):
            y[base + c * inner] = y[base + c * inner] / total


@cuda.jit
def softmax_bwd_v1(dy, y, dx, C, inner):
    """dx = (dy - sum_c dy*y) * y over the C channels of each (o, s) position."""
    for p in range(cuda.grid(1), y.size // C, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        dot = _ZERO
        for c in range(C):
            dot += dy[base + c * inner] * y[base + c * inner]
        for c in range(C):
            dx[base + c * inner] = (dy[base + c * inner] - dot) * y[base + c * inner]


@cuda.jit(device=True, inline=True)
def _block_sum_f3i(f, a, b, c, out_f, out_i, slot):
    """Block tree reduction of each thread's float f and int32 counters a, b, c; thread 0 stores
    the block's sums in out_f[slot] and out_i[0..2, slot]. Called by every thread of the block."""
    sh_f = cuda.shared.array(REDUCE_THREADS, float32)
    sh_i = cuda.shared.array((3, REDUCE_THREADS), int32)
    t = cuda.threadIdx.x
    sh_f[t] = f
    sh_i[0, t] = a
    sh_i[1, t] = b
    sh_i[2, t] = c
    cuda.syncthreads()      # every thread's values are in shared memory before the tree reads them
    half = REDUCE_THREADS // 2
    while half > 0:
        if t < half:
            sh_f[t] += sh_f[t + half]
            for r in range(3):
                sh_i[r, t] += sh_i[r, t + half]
        cuda.syncthreads()  # this level's sums are written before the next, smaller level reads
        half //= 2
    if t == 0:
        out_f[slot] = sh_f[0]
        for r in range(3):
            out_i[r, slot] = sh_i[r, 0]

@cuda.jit
def softmax_loss_fwd_v1(prob, label, partial_f, partial_i, C, inner, has_ignore, ignore_label):
    """Per block: sum of -log(max(prob[label], FLT_MIN)), count of valid and of out-of-range labels."""
    loss = _ZERO
    valid = 0
    bad = 0
    for p in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        label_value = int(label[p])
        if has_ignore != 0 and label_value == ignore_label:
            continue
        if label_value < 0 or label_value >= C:
            bad += 1
            continue
        loss -= math.log(max(prob[(o * C + label_value) * inner + s], FLT_MIN))
        valid += 1
    _block_sum_f3i(loss, valid, bad, 0, partial_f, partial_i, cuda.blockIdx.x)


@cuda.jit
def accuracy_fwd_v1(scores, label, partial_f, partial_i, per_class, C, inner, top_k, has_ignore,
                    ignore_label, gpu_ties, want_per_class):
    """Per block: count of positions whose label ranks in the top k, of valid and of bad labels."""
    correct = 0
    valid = 0
    bad = 0
    for p in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        label_value = int(label[p])
        if has_ignore != 0 and label_value == ignore_label:
            continue
        if label_value < 0 or label_value >= C:
            bad += 1
            continue
        base = o * C * inner + s
        true_score = scores[base + label_value * inner]
        rank = 0
        for c in range(C):
            v = scores[base + c * inner]
            if gpu_ties != 0:
                rank += 1 if (c != label_value and v >= true_score) else 0
            else:
                rank += 1 if (v > true_score or (v == true_score and c > label_value)) else 0
        hit = 1 if rank < top_k else 0
        correct += hit
        valid += 1
        if want_per_class != 0:
            cuda.atomic.add(per_class, (0, label_value), hit)
            cuda.atomic.add(per_class, (1, label_value), 1)
    _block_sum_f3i(_ZERO, correct, valid, bad, partial_f, partial_i, cuda.blockIdx.x)


@cuda.jit
def accuracy_clear_fwd_v1(per_class):
    """per_class (2, C) = 0 before the per-class atomics."""
    for i in range(cuda.grid(1), per_class.shape[1], cuda.gridsize(1)):
        per_class[0, i] = 0
        per_class[1, i] = 0


@cuda.jit
def partial_sum_fwd_v1(partial_f, partial_i, out_f, out_i):
    """One block: out_f[0] = sum partial_f, out_i[r] = sum partial_i[r, :] for r = 0, 1, 2."""
    f = _ZERO
    a = 0
    b = 0
    c = 0
    for j in range(cuda.threadIdx.x, partial_f.size, REDUCE_THREADS):
        f += partial_f[j]
        a += partial_i[0, j]
        b += partial_i[1, j]
        c += partial_i[2, j]
    _block_sum_f3i(f, a, b, c, out_f, out_i, 0)


@cuda.jit
def softmax_loss_bwd_v1(prob, label, dx, C, inner, scale, has_ignore, ignore_label):
    """dx = (prob - onehot(label)) * scale; 0 over the C channels of ignored positions."""
    for i in range(cuda.grid(1), prob.size, cuda.gridsize(1)):
        s = i % inner
        c = (i // inner) % C
        o = i // (inner * C)
        label_value = int(label[o * inner + s])
        if has_ignore != 0 and label_value == ignore_label:
            dx[i] = _ZERO
        else:
            dx[i] = (prob[i] - float32(c == label_value)) * scale


# ------------------------------------------------------------------------------------------ v3
# uint32 index arithmetic throughout (every op wrapped in uint32(...): numba would otherwise widen
# to int64, with 64-bit divides and a sign fix-up per access); the host keeps every index < 2**31.

_U0 = uint32(0)
_U1 = uint32(1)
_U2 = uint32(2)
_U3 = uint32(3)
_U4 = uint32(4)
_U5 = uint32(5)
_U31 = uint32(31)
_FULL_MASK = uint32(0xFFFFFFFF)

if SIMULATOR:
    # Numba's simulator has no warp shuffles: the same exchange through a block-wide shared array.
    # Every thread of the block calls it (as every v3 call site does), so the barriers match.
    @cuda.jit(device=True)
    def _shfl_xor(v, offset):
        """v of lane (lane ^ offset) of this warp (simulator stand-in for shfl_xor_sync)."""
        sh = cuda.shared.array(SOFTMAX_V3_THREADS, float32)
        t = cuda.threadIdx.x
        sh[t] = v
        cuda.syncthreads()      # every thread's value is stored before any partner reads it
        r = sh[t ^ offset]
        cuda.syncthreads()      # every partner has read before the next exchange overwrites sh
        return r
else:
    @cuda.jit(device=True, inline=True)
    def _shfl_xor(v, offset):
        """v of lane (lane ^ offset) of this warp; all 32 lanes take part (full mask)."""
        return cuda.shfl_xor_sync(_FULL_MASK, v, offset)


@cuda.jit(device=True, inline=True)
def _team_max(v, shift):
    """Max of v over a team of 2**shift threads (32..SOFTMAX_V3_THREADS, consecutive, aligned),
    returned to every thread of the team: a shuffle butterfly within each warp, then (teams wider
    than a warp) the team's warp results combined in order through shared memory. Every thread of
    the block must call it (barriers)."""
    v = max(v, _shfl_xor(v, uint32(16)))
    v = max(v, _shfl_xor(v, uint32(8)))
    v = max(v, _shfl_xor(v, uint32(4)))
    v = max(v, _shfl_xor(v, uint32(2)))
    v = max(v, _shfl_xor(v, uint32(1)))
    if shift > _U5:
        sh = cuda.shared.array(SOFTMAX_V3_WARPS, float32)
        t = uint32(cuda.threadIdx.x)
        if (t & _U31) == _U0:
            sh[t >> _U5] = v
        cuda.syncthreads()      # every warp's max is stored before the team reads them
        first = uint32((t >> shift) << uint32(shift - _U5))
        v = sh[first]
        k = _U1
        n_warps = uint32(_U1 << uint32(shift - _U5))
        while k < n_warps:              # the team's warps in index order (deterministic)
            v = max(v, sh[uint32(first + k)])
            k = uint32(k + _U1)
        cuda.syncthreads()      # every team has read sh before a later reduction rewrites it
    return v


@cuda.jit(device=True, inline=True)
def _team_sum(v, shift):
    """Sum of v over a team of 2**shift threads, in a fixed order (butterfly within warps, then
    the team's warps in index order): the same inputs give the same bits every run."""
    v = v + _shfl_xor(v, uint32(16))
    v = v + _shfl_xor(v, uint32(8))
    v = v + _shfl_xor(v, uint32(4))
    v = v + _shfl_xor(v, uint32(2))
    v = v + _shfl_xor(v, uint32(1))
    if shift > _U5:
        sh = cuda.shared.array(SOFTMAX_V3_WARPS, float32)
        t = uint32(cuda.threadIdx.x)
        if (t & _U31) == _U0:
            sh[t >> _U5] = v
        cuda.syncthreads()      # every warp's sum is stored before the team reads them
        first = uint32((t >> shift) << uint32(shift - _U5))
        v = sh[first]
        k = _U1
        n_warps = uint32(_U1 << uint32(shift - _U5))
        while k < n_warps:              # the team's warps in index order (deterministic)
            v = v + sh[uint32(first + k)]
            k = uint32(k + _U1)
        cuda.syncthreads()      # every team has read sh before a later reduction rewrites it
    return v


@cuda.jit
def softmax_fwd_v3(x, y, rows, C, shift):
    """inner == 1: a team of 2**shift threads (a warp or more) per row of C, SOFTMAX_V3_THREADS /
    2**shift rows per block; max, then sum of exp(x - max), then y = exp(x - max) / sum (Caffe's
    formula; exp recomputed instead of stored and reloaded). Each pass steps the team over the
    row 4 strides at a time with the 4 loads issued together (the ones past the row's end
    predicated off, so a row of <= 4 * team elements is one round trip per pass); coalesced;
    team reductions by shuffles."""
    rows = uint32(rows)
    C = uint32(C)
    shift = uint32(shift)
    team = uint32(_U1 << shift)
    t2 = uint32(team + team)
    t3 = uint32(t2 + team)
    t4 = uint32(t2 + t2)
    t = uint32(cuda.threadIdx.x)
    lane = uint32(t & uint32(team - _U1))
    per_block = uint32(uint32(SOFTMAX_V3_THREADS) >> shift)
    r0 = uint32(uint32(cuda.blockIdx.x) * per_block)
    step = uint32(uint32(cuda.gridDim.x) * per_block)
    while r0 < rows:                # block-uniform: every thread reaches every barrier
        row = uint32(r0 + (t >> shift))
        active = row < rows
        base = uint32(row * C)
        m = NEG_FLT_MAX
        if active:
            c = lane
            while c < C:
                i0 = uint32(base + c)
                h1 = uint32(c + team) < C
                h2 = uint32(c + t2) < C
                h3 = uint32(c + t3) < C
                a0 = x[i0]              # up to 4 independent loads in flight
                a1 = x[uint32(i0 + team)] if h1 else NEG_FLT_MAX
                a2 = x[uint32(i0 + t2)] if h2 else NEG_FLT_MAX
                a3 = x[uint32(i0 + t3)] if h3 else NEG_FLT_MAX
                m = max(m, max(max(a0, a1), max(a2, a3)))
                c = uint32(c + t4)
        m = _team_max(m, shift)
        total = _ZERO
        if active:
            c = lane
            while c < C:
                i0 = uint32(base + c)
                h1 = uint32(c + team) < C
                h2 = uint32(c + t2) < C
                h3 = uint32(c + t3) < C
                a0 = x[i0]
                a1 = x[uint32(i0 + team)] if h1 else _ZERO
                a2 = x[uint32(i0 + t2)] if h2 else _ZERO
                a3 = x[uint32(i0 + t3)] if h3 else _ZERO
                total += math.exp(a0 - m)
                if h1:
                    total += math.exp(a1 - m)
                if h2:
                    total += math.exp(a2 - m)
                if h3:
                    total += math.exp(a3 - m)
                c = uint32(c + t4)
        total = _team_sum(total, shift)
        if active:
            c = lane
            while c < C:
                i0 = uint32(base + c)
                i1 = uint32(i0 + team)
                i2 = uint32(i0 + t2)
                i3 = uint32(i0 + t3)
                h1 = uint32(c + team) < C
                h2 = uint32(c + t2) < C
                h3 = uint32(c + t3) < C
                a0 = x[i0]              # all read before any write (y may be x)
                a1 = x[i1] if h1 else _ZERO
                a2 = x[i2] if h2 else _ZERO
                a3 = x[i3] if h3 else _ZERO
                y[i0] = math.exp(a0 - m) / total
                if h1:
                    y[i1] = math.exp(a1 - m) / total
                if h2:
                    y[i2] = math.exp(a2 - m) / total
                if h3:
                    y[i3] = math.exp(a3 - m) / total
                c = uint32(c + t4)
        r0 = uint32(r0 + step)


@cuda.jit
def softmax_bwd_v3(dy, y, dx, rows, C, shift):
    """inner == 1: a team of 2**shift threads per row; dot = sum dy*y by shuffles (fixed order),
    dx = (dy - dot) * y; 4 strides per step with the loads (8) issued together, predicated at the
    row's end."""
    rows = uint32(rows)
    C = uint32(C)
    shift = uint32(shift)
    team = uint32(_U1 << shift)
    t2 = uint32(team + team)
    t3 = uint32(t2 + team)
    t4 = uint32(t2 + t2)
    t = uint32(cuda.threadIdx.x)
    lane = uint32(t & uint32(team - _U1))
    per_block = uint32(uint32(SOFTMAX_V3_THREADS) >> shift)
    r0 = uint32(uint32(cuda.blockIdx.x) * per_block)
    step = uint32(uint32(cuda.gridDim.x) * per_block)
    while r0 < rows:                # block-uniform: every thread reaches every barrier
        row = uint32(r0 + (t >> shift))
        active = row < rows
        base = uint32(row * C)
        dot = _ZERO
        if active:
            c = lane
            while c < C:
                i0 = uint32(base + c)
                i1 = uint32(i0 + team)
                i2 = uint32(i0 + t2)
                i3 = uint32(i0 + t3)
                h1 = uint32(c + team) < C
                h2 = uint32(c + t2) < C
                h3 = uint32(c + t3) < C
                g0 = dy[i0]
                g1 = dy[i1] if h1 else _ZERO
                g2 = dy[i2] if h2 else _ZERO
                g3 = dy[i3] if h3 else _ZERO
                y0 = y[i0]
                y1 = y[i1] if h1 else _ZERO
                y2 = y[i2] if h2 else _ZERO
                y3 = y[i3] if h3 else _ZERO
                dot += g0 * y0
                if h1:
                    dot += g1 * y1
                if h2:
                    dot += g2 * y2
                if h3:
                    dot += g3 * y3
                c = uint32(c + t4)
        dot = _team_sum(dot, shift)
        if active:
            c = lane
            while c < C:
                i0 = uint32(base + c)
                i1 = uint32(i0 + team)
                i2 = uint32(i0 + t2)
                i3 = uint32(i0 + t3)
                h1 = uint32(c + team) < C
                h2 = uint32(c + t2) < C
                h3 = uint32(c + t3) < C
                g0 = dy[i0]             # all read before any write (dx may be dy)
                g1 = dy[i1] if h1 else _ZERO
                g2 = dy[i2] if h2 else _ZERO
                g3 = dy[i3] if h3 else _ZERO
                y0 = y[i0]
                y1 = y[i1] if h1 else _ZERO
                y2 = y[i2] if h2 else _ZERO
                y3 = y[i3] if h3 else _ZERO
                dx[i0] = (g0 - dot) * y0
                if h1:
                    dx[i1] = (g1 - dot) * y1
                if h2:
                    dx[i2] = (g2 - dot) * y2
                if h3:
                    dx[i3] = (g3 - dot) * y3
                c = uint32(c + t4)
        r0 = uint32(r0 + step)


@cuda.jit
def softmax_fwd_v3_spatial(x, y, outer, C, inner):
    """inner > 1: grid (inner blocks, outer) -- thread = position s, blockIdx.y = o, so no divide;
    consecutive threads read consecutive s (coalesced) for each channel c, the C loop unrolled by 4
    (4 independent loads). Same operations in the same order as v1: bit-identical results."""
    outer = uint32(outer)
    C = uint32(C)
    inner = uint32(inner)
    s = uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
    if s >= inner:
        return                      # no barriers in this kernel: idle threads may leave
    i2 = uint32(inner + inner)
    i3 = uint32(i2 + inner)
    i4 = uint32(i2 + i2)
    o = uint32(cuda.blockIdx.y)
    while o < outer:
        base = uint32(uint32(o * C) * inner + s)
        m = x[base]
        c = _U1
        off = uint32(base + inner)
        while uint32(c + _U3) < C:
            a0 = x[off]
            a1 = x[uint32(off + inner)]
            a2 = x[uint32(off + i2)]
            a3 = x[uint32(off + i3)]
            m = max(m, a0)
            m = max(m, a1)
            m = max(m, a2)
            m = max(m, a3)
            c = uint32(c + _U4)
            off = uint32(off + i4)
        while c < C:
            m = max(m, x[off])
            c = uint32(c + _U1)
            off = uint32(off + inner)
        total = _ZERO
        c = _U0
        off = base
        while uint32(c + _U3) < C:
            a0 = x[off]
            a1 = x[uint32(off + inner)]
            a2 = x[uint32(off + i2)]
            a3 = x[uint32(off + i3)]
            total += math.exp(a0 - m)   # summed in channel order, as v1
            total += math.exp(a1 - m)
            total += math.exp(a2 - m)
            total += math.exp(a3 - m)
            c = uint32(c + _U4)
            off = uint32(off + i4)
        while c < C:
            total += math.exp(x[off] - m)
            c = uint32(c + _U1)
            off = uint32(off + inner)
        c = _U0
        off = base
        while uint32(c + _U3) < C:
            o1 = uint32(off + inner)
            o2 = uint32(off + i2)
            o3 = uint32(off + i3)
            a0 = x[off]                 # all four read before any write (y may be x)
            a1 = x[o1]
            a2 = x[o2]
            a3 = x[o3]
            y[off] = math.exp(a0 - m) / total
            y[o1] = math.exp(a1 - m) / total
            y[o2] = math.exp(a2 - m) / total
            y[o3] = math.exp(a3 - m) / total
            c = uint32(c + _U4)
            off = uint32(off + i4)
        while c < C:
            y[off] = math.exp(x[off] - m) / total
            c = uint32(c + _U1)
            off = uint32(off + inner)
        o = uint32(o + cuda.gridDim.y)


@cuda.jit
def softmax_bwd_v3_spatial(dy, y, dx, outer, C, inner):
    """inner > 1: thread = position s, blockIdx.y = o; dot = sum_c dy*y in channel order, then
    dx = (dy - dot) * y; the C loop unrolled by 4 (8 loads in flight). Bit-identical to v1."""
    outer = uint32(outer)
    C = uint32(C)
    inner = uint32(inner)
    s = uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
    if s >= inner:
        return                      # no barriers in this kernel: idle threads may leave
    i2 = uint32(inner + inner)
    i3 = uint32(i2 + inner)
    i4 = uint32(i2 + i2)
    o = uint32(cuda.blockIdx.y)
    while o < outer:
        base = uint32(uint32(o * C) * inner + s)
        dot = _ZERO
        c = _U0
        off = base
        while uint32(c + _U3) < C:
            o1 = uint32(off + inner)
            o2 = uint32(off + i2)
            o3 = uint32(off + i3)
            g0 = dy[off]
            g1 = dy[o1]
            g2 = dy[o2]
            g3 = dy[o3]
            y0 = y[off]
            y1 = y[o1]
            y2 = y[o2]
            y3 = y[o3]
            dot += g0 * y0
            dot += g1 * y1
            dot += g2 * y2
            dot += g3 * y3
            c = uint32(c + _U4)
            off = uint32(off + i4)
        while c < C:
            dot += dy[off] * y[off]
            c = uint32(c + _U1)
            off = uint32(off + inner)
        c = _U0
        off = base
        while uint32(c + _U3) < C:
            o1 = uint32(off + inner)
            o2 = uint32(off + i2)
            o3 = uint32(off + i3)
            g0 = dy[off]                # all read before any write (dx may be dy)
            g1 = dy[o1]
            g2 = dy[o2]
            g3 = dy[o3]
            y0 = y[off]
            y1 = y[o1]
            y2 = y[o2]
            y3 = y[o3]
            dx[off] = (g0 - dot) * y0
            dx[o1] = (g1 - dot) * y1
            dx[o2] = (g2 - dot) * y2
            dx[o3] = (g3 - dot) * y3
            c = uint32(c + _U4)
            off = uint32(off + i4)
        while c < C:
            dx[off] = (dy[off] - dot) * y[off]
            c = uint32(c + _U1)
            off = uint32(off + inner)
        o = uint32(o + cuda.gridDim.y)


@cuda.jit
def softmax_loss_fwd_v2(prob, label, partial_f, partial_i, counter, out_f, out_i, positions, C,
                        inner, has_ignore, ignore_label):
    """v1's per-block sums (same grid, same order: bit-identical) with uint32 indexing, then the
    last block to finish folds the per-block partials in block order (deterministic, no float
    atomics) into out_f[0] / out_i[0..2, 0]: one launch instead of two, no host round trip."""
    positions = uint32(positions)
    C = uint32(C)
    inner = uint32(inner)
    loss = _ZERO
    valid = int32(0)
    bad = int32(0)
    p = uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
    stride = uint32(cuda.gridDim.x * cuda.blockDim.x)
    while p < positions:
        label_value = int(label[p])     # truncation toward zero (int64: any float label)
        if has_ignore != 0 and label_value == ignore_label:
            pass
        elif label_value < 0 or label_value >= C:
            bad += int32(1)
        else:
            o = uint32(p // inner)
            s = uint32(p - o * inner)
            loss -= math.log(max(prob[uint32(uint32(o * C + uint32(label_value)) * inner + s)],
                                 FLT_MIN))
            valid += int32(1)
        p = uint32(p + stride)
    _block_sum_f3i(loss, valid, bad, int32(0), partial_f, partial_i, cuda.blockIdx.x)
    last = cuda.shared.array(1, int32)
    if cuda.threadIdx.x == 0:
        cuda.threadfence()      # this block's partials are visible device-wide before its ticket
        ticket = cuda.atomic.add(counter, 0, 1)
        last[0] = 1 if ticket == cuda.gridDim.x - 1 else 0
    cuda.syncthreads()          # every thread sees whether this block is the last one
    if last[0] != 0:
        cuda.threadfence()      # (pairs with the writers' fences) read the partials after them
        f = _ZERO
        a = int32(0)
        b = int32(0)
        c = int32(0)
        for j in range(cuda.threadIdx.x, cuda.gridDim.x, REDUCE_THREADS):   # v1's fold order
            f += partial_f[j]
            a += partial_i[0, j]
            b += partial_i[1, j]
            c += partial_i[2, j]
        _block_sum_f3i(f, a, b, c, out_f, out_i, 0)
        if cuda.threadIdx.x == 0:
            counter[0] = 0      # ready for the next launch


@cuda.jit
def softmax_loss_bwd_v2(prob, label, dx, outer, C, inner, scale, has_ignore, ignore_label):
    """dx = (prob - onehot(label)) * scale, 0 at ignored positions; grid (row blocks, outer):
    blockIdx.y = o (no divide for it), threads stride over the C*inner elements of the row,
    unrolled by 4; c = j / inner is one uint32 divide, skipped when inner == 1."""
    outer = uint32(outer)
    C = uint32(C)
    inner = uint32(inner)
    row = uint32(C * inner)
    stride = uint32(cuda.gridDim.x * cuda.blockDim.x)
    o = uint32(cuda.blockIdx.y)
    while o < outer:
        base = uint32(o * row)
        j = uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
        while j < row:
            # up to 4 elements j + k*stride: their prob loads are issued together
            n_here = _U1
            if uint32(j + stride) < row:
                n_here = _U2
                if uint32(j + stride + stride) < row:
                    n_here = _U3
                    if uint32(j + stride + stride + stride) < row:
                        n_here = _U4
            p0 = prob[uint32(base + j)]
            p1 = prob[uint32(base + j + stride)] if n_here > _U1 else _ZERO
            p2 = prob[uint32(base + j + stride + stride)] if n_here > _U2 else _ZERO
            p3 = prob[uint32(base + j + stride + stride + stride)] if n_here > _U3 else _ZERO
            for k in range(4):
                if uint32(k) < n_here:
                    jk = uint32(j + uint32(k) * stride)
                    if inner == _U1:
                        c = jk
                        s = _U0
                    else:
                        c = uint32(jk // inner)
                        s = uint32(jk - c * inner)
                    if k == 0:
                        pv = p0
                    elif k == 1:
                        pv = p1
                    elif k == 2:
                        pv = p2
                    else:
                        pv = p3
                    label_value = int(label[uint32(o * inner + s)])
                    if has_ignore != 0 and label_value == ignore_label:
                        dx[uint32(base + jk)] = _ZERO
                    else:
                        dx[uint32(base + jk)] = (pv - float32(c == label_value)) * scale
            j = uint32(j + stride + stride + stride + stride)
        o = uint32(o + cuda.gridDim.y)


_F = float32[::1]
_I2 = int32[:, ::1]

KERNELS: dict[str, tuple[Any, list]] = {
    "softmax_fwd_v1": (softmax_fwd_v1, [void(_F, _F, int64, int64)]),
    "softmax_bwd_v1": (softmax_bwd_v1, [void(_F, _F, _F, int64, int64)]),
    "softmax_loss_fwd_v1": (softmax_loss_fwd_v1,
                            [void(_F, _F, _F, _I2, int64, int64, int64, int64)]),
    "accuracy_fwd_v1": (accuracy_fwd_v1,
                        [void(_F, _F, _F, _I2, _I2, int64, int64, int64, int64, int64, int64, int64)]),
    "accuracy_clear_fwd_v1": (accuracy_clear_fwd_v1, [void(_I2)]),
    "partial_sum_fwd_v1": (partial_sum_fwd_v1, [void(_F, _I2, _F, _I2)]),
    "softmax_loss_bwd_v1": (softmax_loss_bwd_v1,
                            [void(_F, _F, _F, int64, int64, float32, int64, int64)]),
    "softmax_fwd_v3": (softmax_fwd_v3, [void(_F, _F, uint32, uint32, uint32)]),
    "softmax_bwd_v3": (softmax_bwd_v3, [void(_F, _F, _F, uint32, uint32, uint32)]),
    "softmax_fwd_v3_spatial": (softmax_fwd_v3_spatial, [void(_F, _F, uint32, uint32, uint32)]),
    "softmax_bwd_v3_spatial": (softmax_bwd_v3_spatial, [void(_F, _F, _F, uint32, uint32, uint32)]),
    "softmax_loss_fwd_v2": (softmax_loss_fwd_v2,
                            [void(_F, _F, _F, _I2, int32[::1], _F, _I2, uint32, uint32, uint32,
                                  int64, int64)]),
    "softmax_loss_bwd_v2": (softmax_loss_bwd_v2,
                            [void(_F, _F, _F, uint32, uint32, uint32, float32, int64, int64)]),
}


# ------------------------------------------------------------------------------------- public API

def axis_view(shape: tuple[int, ...], axis: int = 1) -> tuple[int, int, int]:
    """(outer, C, inner) of ``shape`` split at ``axis`` (negative counts from the end)."""
    nd = len(shape)
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} out of range for a {nd}-D shape {tuple(shape)}")
    axis %= nd
    outer = math.prod(int(d) for d in shape[:axis])     # Python ints: exact, and cheaper than
    inner = math.prod(int(d) for d in shape[axis + 1:])  # np.prod on the per-call host path
    return outer, int(shape[axis]), inner


def _dev(a: Any, dtype=np.float32) -> Any:
    d = as_device(a)
    if d.dtype != dtype:
        raise TypeError(f"expected a {np.dtype(dtype).name} array, got {d.dtype}")
    return d


def _same_shape(*arrays: Any) -> None:
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"softmax arrays must have one shape, got {[tuple(a.shape) for a in arrays]}")


def _ignore(ignore_label: int | None) -> tuple[int, int]:
    return (0, 0) if ignore_label is None else (1, int(ignore_label))


def _team_shift(C: int) -> int:
    """log2 of the v3 rows kernels' team size: the power of two nearest above C / 4, clamped to
    [32, SOFTMAX_V3_THREADS] (one unrolled step of 4 loads covers the row when C <= 1024)."""
    team = 32
    while team < SOFTMAX_V3_THREADS and team * SOFTMAX_V3_PER_THREAD < C:
        team *= 2
    return team.bit_length() - 1


PROMOTED: dict[str, str] = {"softmax_fwd": "v3", "softmax_bwd": "v3", "softmax_loss_fwd": "v2",
                            "softmax_loss_bwd": "v2"}


def _version(op: str, inner: int, n: int) -> str:
    """``PROMOTED[op]`` where it applies, else v1: v3 needs inner == 1 (rows) or inner >=
    SOFTMAX_V3_MIN_INNER (spatial), and fewer than 2**31 elements."""
    version = PROMOTED[op]
    if version == "v3" and not ((inner == 1 or inner >= SOFTMAX_V3_MIN_INNER) and n < V3_MAX_ELEMENTS):
        version = "v1"
    return version


@functools.lru_cache(maxsize=1024)
def _softmax_launch(version: str, C: int, inner: int, outer: int, backward: bool = False):
    """(configured kernel, extra integer arguments) for softmax fwd/bwd of an (outer, C, inner)
    view, cached per shape: v3 rows (inner == 1: a team per row), v3 spatial (inner > 1: a thread
    per position, blockIdx.y = o), v1 (a thread per position)."""
    if version == "v3" and inner == 1:
        shift = _team_shift(C)
        per_block = SOFTMAX_V3_THREADS >> shift
        blocks = max(1, min(ceil_div(outer, per_block), MAX_BLOCKS_1D))
        k = softmax_bwd_v3 if backward else softmax_fwd_v3
        return k[blocks, SOFTMAX_V3_THREADS], (np.uint32(outer), np.uint32(C), np.uint32(shift))
    if version == "v3":
        grid = (ceil_div(inner, SOFTMAX_V3_THREADS), min(outer, MAX_GRID_Y))
        k = softmax_bwd_v3_spatial if backward else softmax_fwd_v3_spatial
        return k[grid, SOFTMAX_V3_THREADS], (np.uint32(outer), np.uint32(C), np.uint32(inner))
    k = softmax_bwd_v1 if backward else softmax_fwd_v1
    return k[grid_1d(outer * inner, SOFTMAX_THREADS)], (C, inner)


def softmax_fwd(x: Any, y: Any, axis: int = 1) -> None:
    """Softmax of x over ``axis`` into y (same shape; y may be x), max-subtracted."""
    x, y = _dev(x), _dev(y)
    _same_shape(x, y)
    outer, C, inner = axis_view(x.shape, axis)
    if outer * C * inner == 0:
        return
    launch, extra = _softmax_launch(_version("softmax_fwd", inner, x.size), C, inner, outer)
    launch(x.reshape(x.size), y.reshape(y.size), *extra)


def softmax_bwd(dy: Any, y: Any, dx: Any, axis: int = 1) -> None:
    """Softmax backward: dx = (dy - sum_axis(dy*y)) * y (all the same shape; dx may be dy)."""
    dy, y, dx = _dev(dy), _dev(y), _dev(dx)
    _same_shape(dy, y, dx)
    outer, C, inner = axis_view(y.shape, axis)
    if outer * C * inner == 0:
        return
    launch, extra = _softmax_launch(_version("softmax_bwd", inner, y.size), C, inner, outer, True)
    launch(dy.reshape(dy.size), y.reshape(y.size), dx.reshape(dx.size), *extra)


def _labels(label: Any, outer: int, inner: int) -> Any:
    label = _dev(label)
    if label.size != outer * inner:
        raise ValueError(f"{label.size} labels for {outer}x{inner} positions (need one label per "
                         f"position: outer*inner = {outer * inner})")
    return label.reshape(label.size)


def _reduce(kernel, n_positions: int, *args) -> tuple[float, int, int, int]:
    """Launch a per-block reduction kernel then fold its partials; 4 host scalars."""
    blocks, threads = grid_1d(n_positions, REDUCE_THREADS)
    partial_f = cuda.device_array(blocks, np.float32)
    partial_i = cuda.device_array((3, blocks), np.int32)
    kernel[blocks, threads](args[0], args[1], partial_f, partial_i, *args[2:])
    out_f = cuda.device_array(1, np.float32)
    out_i = cuda.device_array((3, 1), np.int32)
    partial_sum_fwd_v1[1, REDUCE_THREADS](partial_f, partial_i, out_f, out_i)
    f, i = out_f.copy_to_host(), out_i.copy_to_host()
    return float(f[0]), int(i[0, 0]), int(i[1, 0]), int(i[2, 0])


def _check_bad(bad: int, C: int, ignore_label: int | None, what: str) -> None:
    if bad:
        extra = "" if ignore_label is None else f" (or ignore_label {ignore_label})"
        raise ValueError(f"{what}: {bad} label(s) outside [0, {C}); labels must be class indices "
                         f"0..{C - 1}{extra}")


_LOSS_BUFFERS: dict[int, tuple] = {}


def _loss_buffers(blocks: int) -> tuple:
    """Device buffers of softmax_loss_fwd_v2 for a grid of ``blocks``, allocated once and reused
    (the per-call allocations were a large part of v1's host time): per-block partials, the
    zeroed ticket counter (the last block resets it), and one int32[4] result buffer holding the
    three counts and, through a float32 view of its last word, the loss -- one copy to the host."""
    bufs = _LOSS_BUFFERS.get(blocks)
    if bufs is None:
        result = cuda.to_device(np.zeros(4, np.int32))
        bufs = (cuda.device_array(blocks, np.float32), cuda.device_array((3, blocks), np.int32),
                cuda.to_device(np.zeros(1, np.int32)), result[3:4].view(np.float32),
                result[0:3].reshape(3, 1), result)
        _LOSS_BUFFERS[blocks] = bufs
    return bufs


def softmax_loss_fwd(prob: Any, label: Any, axis: int = 1,
                     ignore_label: int | None = None) -> tuple[float, int]:
    """Multinomial logistic loss of softmax probabilities (Caffe's SoftmaxWithLoss forward after
    its internal softmax): returns (sum over positions of -log(max(prob[label], FLT_MIN)),
    number of non-ignored positions) as host scalars. prob (outer, C, inner) via ``axis``,
    label outer*inner float32 values. Raises ValueError for labels outside [0, C). v1 and v2 give
    the same bits (same per-block order, same fold)."""
    prob = _dev(prob)
    outer, C, inner = axis_view(prob.shape, axis)
    label = _labels(label, outer, inner)
    if outer * inner == 0:
        return 0.0, 0
    if PROMOTED["softmax_loss_fwd"] == "v2" and prob.size < V3_MAX_ELEMENTS:
        blocks, threads = grid_1d(outer * inner, REDUCE_THREADS)    # v1's grid: the same partials
        partial_f, partial_i, counter, out_f, out_i, result = _loss_buffers(blocks)
        softmax_loss_fwd_v2[blocks, threads](prob.reshape(prob.size), label, partial_f, partial_i,
                                             counter, out_f, out_i, np.uint32(outer * inner),
                                             np.uint32(C), np.uint32(inner), *_ignore(ignore_label))
        host = result.copy_to_host()
        loss, valid, bad = float(host[3:4].view(np.float32)[0]), int(host[0]), int(host[1])
    else:
        loss, valid, bad, _ = _reduce(softmax_loss_fwd_v1, outer * inner, prob.reshape(prob.size),
                                      label, C, inner, *_ignore(ignore_label))
    _check_bad(bad, C, ignore_label, "SoftmaxWithLoss")
    return loss, valid


def softmax_loss_bwd(prob: Any, label: Any, dx: Any, scale: float, axis: int = 1,
                     ignore_label: int | None = None) -> None:
    """SoftmaxWithLoss backward: dx = (prob - onehot(label)) * scale (same shape as prob), zero
    for ignored positions. scale = loss_weight / normalizer."""
    prob, dx = _dev(prob), _dev(dx)
    _same_shape(prob, dx)
    outer, C, inner = axis_view(prob.shape, axis)
    label = _labels(label, outer, inner)
    if prob.size == 0:
        return
    if PROMOTED["softmax_loss_bwd"] == "v2" and prob.size < V3_MAX_ELEMENTS:
        row = C * inner
        grid = (max(1, min(ceil_div(row, SOFTMAX_THREADS * 4), MAX_BLOCKS_1D)), min(outer, MAX_GRID_Y))
        softmax_loss_bwd_v2[grid, SOFTMAX_THREADS](prob.reshape(prob.size), label, dx.reshape(dx.size),
                                                   np.uint32(outer), np.uint32(C), np.uint32(inner),
                                                   np.float32(scale), *_ignore(ignore_label))
        return
    blocks, threads = grid_1d(prob.size, SOFTMAX_THREADS)
    softmax_loss_bwd_v1[blocks, threads](prob.reshape(prob.size), label, dx.reshape(dx.size), C, inner,
                                         np.float32(scale), *_ignore(ignore_label))


def accuracy_fwd(scores: Any, label: Any, top_k: int = 1, axis: int = 1,
                 ignore_label: int | None = None, ties: str = "cpu",
                 per_class: Any | None = None) -> tuple[int, int]:
    """Top-k accuracy counts (Caffe's Accuracy layer): returns (positions whose label is among the
    top_k scores, non-ignored positions) as host ints; the caller divides (Caffe reports 0 when
    the count is 0 on GPU). ``ties``: "cpu" (accuracy_layer.cpp; equal scores rank the larger class
    index first) or "gpu" (accuracy_layer.cu; every equal score ranks first). ``per_class``: an
    optional (2, C) int32 device array, overwritten with per-label [correct, seen] counts."""
    scores = _dev(scores)
    outer, C, inner = axis_view(scores.shape, axis)
    label = _labels(label, outer, inner)
    if ties not in ("cpu", "gpu"):
        raise ValueError(f"ties must be 'cpu' or 'gpu', got {ties!r}")
    if not 1 <= top_k <= C:
        raise ValueError(f"top_k must be in [1, {C}] (the number of classes), got {top_k}")
    if per_class is None:
        pc, want = cuda.device_array((2, 1), np.int32), 0
    else:
        pc, want = _dev(per_class, np.int32), 1
        if tuple(pc.shape) != (2, C):
            raise ValueError(f"per_class must be (2, {C}) int32, got {tuple(pc.shape)}")
        blocks, threads = grid_1d(C, SOFTMAX_THREADS)
        accuracy_clear_fwd_v1[blocks, threads](pc)
    if outer * inner == 0:
        return 0, 0
    _, correct, valid, bad = _reduce(accuracy_fwd_v1, outer * inner, scores.reshape(scores.size), label,
                                     pc, C, inner, int(top_k), *_ignore(ignore_label),
                                     int(ties == "gpu"), want)
    _check_bad(bad, C, ignore_label, "Accuracy")
    return correct, valid
