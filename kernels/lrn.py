"""Local response normalization (Caffe's LRN layer), both regions, forward and backward.

Shapes: x, y, dy, dx, scale are (N, C, H, W) float32, C-contiguous. n = local_size (odd, as Caffe
requires), pre_pad = (n-1)/2, post_pad = n - pre_pad - 1.

ACROSS_CHANNELS (Caffe's lrn_layer.cu, LRNFillScale / LRNComputeOutput / LRNComputeDiff):
    scale[n,c,h,w] = k + alpha/n * sum_{c' = c-pre_pad .. c+post_pad, 0 <= c' < C} x[n,c',h,w]^2
    y = x * scale^-beta
    dx[c] = dy[c] * scale[c]^-beta
            - (2*alpha*beta/n) * x[c] * sum_{c' = c-post_pad .. c+pre_pad} dy[c']*y[c']/scale[c']
    (the backward window is the forward one transposed; equal for odd n)

WITHIN_CHANNEL (Caffe composes it from layers: square -> AVE pooling with kernel n, pad pre_pad,
stride 1 -> Power(power=-beta, scale=alpha, shift=1) -> elementwise product with x; k is NOT used):
    avg[h,w] = sum of x^2 over the window [h-pre_pad, h-pre_pad+n) x [w-pre_pad, ...) clipped to the
               image, divided by the AVE pool_size (the window clipped to H+pre_pad, W+pre_pad only)
    scale = 1 + alpha*avg,  y = x * scale^-beta
    dx[q] = dy[q]*scale[q]^-beta
            + 2*x[q] * sum_{p: window(p) contains q} dy[p]*x[p] * (-beta*alpha)*scale[p]^-beta/scale[p]
                                                       / pool_size(p)
    (the chain rule through product, power, pooling and square, in Caffe's forms: the power layer's
    backward is diff_scale*y/(shift + scale*x))
    ``scale`` is saved by the forward for the backward in both regions.

Versions (``PROMOTED``: v3 across channels, v2 within; where a version does not apply the next
older one runs):
    lrn v1       one thread per element; direct window sums over the n channels (forward and
                 backward): simple, n reads per element
    lrn v2       one thread per (n, h, w) column walking the C channels with Caffe's running window
                 sum (add the entering channel, subtract the leaving one): O(C) per column, the
                 same arithmetic order as Caffe's GPU code; forward fuses scale and output
    lrn v3       v2's running sums, same arithmetic order, for fewer than 2**31 elements and
                 local_size <= 15: int32 index math (every index cast, geometry passed as int32),
                 the image index from blockIdx.y (no division at all), 2**shift-position tiles
                 packing several images per block when H*W < 256; each channel value is read from
                 global memory once (v2 re-reads the leaving and centre channels) and kept in a
                 per-thread 16-slot ring in shared memory (forward: x; backward: dy*y/scale and
                 dy*scale^-beta, so the division and pow are done once per element, not twice);
                 the loads of the next 4 channels are issued before the current 4 are computed
                 (4 loads in flight per thread forward, 16 backward)
    lrn_within v1  one thread per element, forward over its n x n window, backward over the n x n
                 outputs whose windows cover it (no atomics)
    lrn_within v2  local_size <= 9 and fewer than 2**31 elements: a 32 x 8 tile of outputs per
                 block on one (n, c) plane from blockIdx.z, int32 indices, no division; the tile
                 plus its (n-1)/2 halo staged in shared memory (forward: x^2; backward: each
                 position's pooled-gradient term dy*x*Power'(scale)/pool_size and scale^-beta), so
                 each input is read from global memory ~(1 + halo) times instead of n*n and the
                 backward does ~1.7 pow per element (n = 5) instead of n*n + 1 = 26; sums in v1's
                 order (the zero cells outside the image add nothing)

Launch geometry: 1-D grid-stride loops with LRN_THREADS threads per block over elements (v1,
within) or over N*H*W columns (v2; consecutive threads take consecutive w: coalesced), block counts
from ``kernels._launch.grid_1d``. v3: grid (ceil(H*W / 2**shift), ceil(N / images per block)
capped at 65535 with a stride loop over n); thread tid of a block takes position
blockIdx.x*2**shift + tid % 2**shift of image blockIdx.y*(256 >> shift) + tid >> shift and walks
its C channels (consecutive threads on consecutive h*w: coalesced), UNROLL = 4 channels per step.
within v2: blocks of WITHIN_TX x WITHIN_TY threads, grid (ceil(W/32), ceil(H/8), min(N*C, 65535))
with a stride loop over planes; one thread per output of the tile.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32, void

from kernels._launch import SIMULATOR, as_device, ceil_div, grid_1d

LRN_THREADS = 256           # threads per block for every LRN kernel (v3: a power of 2, <= 1024)
RING = 16                   # v3: per-thread ring of channel values in shared memory (a power of 2);
                            # holds the window plus the entering channel: local_size <= RING - 1
_RING_MASK = int32(RING - 1)
_RING_CELLS = RING * LRN_THREADS   # one ring: [slot][tid]

_ZERO = float32(0.0)
_ONE = float32(1.0)
_TWO = float32(2.0)
_I0 = int32(0)              # int32 constants: a bare literal is int64 and would widen the index math
_I1 = int32(1)
_I2 = int32(2)
_I3 = int32(3)
_I4 = int32(4)


# ------------------------------------------------------------------------------ across channels

@cuda.jit
def lrn_fwd_v1(x, scale, y, C, H, W, size, alpha_over_size, k, negative_beta):
    """scale = k + alpha/n * window sum of x^2 across channels; y = x * scale^-beta."""
    pre_pad = (size - 1) // 2
    post_pad = size - pre_pad - 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        accum = _ZERO
        for cc in range(max(c - pre_pad, 0), min(c + post_pad + 1, C)):
            v = x[((n * C + cc) * H + h) * W + w]
            accum += v * v
        s = k + accum * alpha_over_size
        scale[i] = s
        y[i] = x[i] * math.pow(s, negative_beta)


@cuda.jit
def lrn_bwd_v1(dy, x, y, scale, dx, C, H, W, size, negative_beta, cache_ratio):
    """dx = dy*scale^-beta - cache_ratio * x * sum over the transposed window of dy*y/scale."""
    pre_pad = size - (size + 1) // 2        # the backward (transposed) window, as Caffe
    post_pad = size - pre_pad - 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        accum_ratio = _ZERO
        for cc in range(max(c - post_pad, 0), min(c + pre_pad + 1, C)):
            j = ((n * C + cc) * H + h) * W + w
            accum_ratio += dy[j] * y[j] / scale[j]
        dx[i] = dy[i] * math.pow(scale[i], negative_beta) - cache_ratio * x[i] * accum_ratio


@cuda.jit
def lrn_fwd_v2(x, scale, y, C, H, W, size, alpha_over_size, k, negative_beta):
    """Caffe's LRNFillScale + LRNComputeOutput: one thread per (n, h, w) column, running sum."""
    pre_pad = (size - 1) // 2
    post_pad = size - pre_pad - 1
    step = H * W
    for col in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        w = col % W
        h = (col // W) % H
        n = col // (W * H)
        offset = (n * C * H + h) * W + w
        accum = _ZERO
        head = 0
        while head < post_pad and head < C:          # fill the window's leading part
            v = x[offset + head * step]
            accum += v * v
            head += 1
        while head < C + post_pad:                   # slide: add the entering, drop the leaving
            if head < C:
                v = x[offset + head * step]
                accum += v * v
            if head - size >= 0:
                v = x[offset + (head - size) * step]
                accum -= v * v
            c = head - post_pad
            if c >= 0:
                s = k + accum * alpha_over_size
                scale[offset + c * step] = s
                y[offset + c * step] = x[offset + c * step] * math.pow(s, negative_beta)
            head += 1


@cuda.jit
def lrn_bwd_v2(dy, x, y, scale, dx, C, H, W, size, negative_beta, cache_ratio):
    """Caffe's LRNComputeDiff: one thread per (n, h, w) column, running sum of dy*y/scale."""
    pre_pad = size - (size + 1) // 2
    post_pad = size - pre_pad - 1
    step = H * W
    for col in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        w = col % W
        h = (col // W) % H
        n = col // (W * H)
        offset = (n * C * H + h) * W + w
        accum_ratio = _ZERO
        head = 0
        while head < post_pad and head < C:
            j = offset + head * step
            accum_ratio += dy[j] * y[j] / scale[j]
            head += 1
        while head < C + post_pad:
            if head < C:
                j = offset + head * step
                accum_ratio += dy[j] * y[j] / scale[j]
            if head - size >= 0:
                j = offset + (head - size) * step
                accum_ratio -= dy[j] * y[j] / scale[j]
            c = head - post_pad
            if c >= 0:
                j = offset + c * step
                dx[j] = dy[j] * math.pow(scale[j], negative_beta) - cache_ratio * x[j] * accum_ratio
            head += 1


# Resident blocks per SM the v3 kernels are compiled for (ptxas caps registers to fit them):
# forward 8 x 256 threads = a full SM (32 registers, 17 KB of ring each, no spills), backward
# 4 x 256 (64 registers instead of 72: 4 blocks instead of 3; 48 would spill).
LRN_FWD_V3_MIN_BLOCKS = 8
LRN_BWD_V3_MIN_BLOCKS = 4


def _bounds(min_blocks: int) -> dict:
    """cuda.jit options: launch_bounds (LRN_THREADS, min_blocks); none in the simulator, which
    has no such option."""
    return {} if SIMULATOR else {"launch_bounds": (LRN_THREADS, min_blocks)}


# v3: one thread per (n, h*w) column, 32-bit index math, n from blockIdx.y (no division), the
# channel values the sliding window still needs kept in a per-thread ring in shared memory, and the
# global loads of the next UNROLL channels issued before the current UNROLL channels are computed
# (forward: 4 loads x 2048 threads = 32 KB in flight per SM). The int32(...) around every index
# expression matters: numba types int32 op int32 as int64, and only the truncation lets LLVM keep
# the arithmetic 32-bit; uint32 indices also drop numba's negative-index wraparound test.

@cuda.jit(device=True, inline=True)
def _ld(a, j, ok):
    """a[j] when ok, else 0 (a predicated load; j is an int32 flat index, used unsigned so numba
    emits no negative-index wraparound)."""
    if ok:
        return a[uint32(j)]
    return _ZERO


@cuda.jit(device=True, inline=True)
def _slot(channel, tid):
    """Index of this thread's ring entry for ``channel`` (ring slot channel % RING, row-major
    [slot][tid]); 32-bit unsigned so the shared address needs no 64-bit arithmetic."""
    return uint32(int32(int32(channel & _RING_MASK) * int32(LRN_THREADS)) + tid)


@cuda.jit(device=True, inline=True)
def _column(tid, shift):
    """(p, nsub, ipb): spatial position p of this thread in its block's tile of 2**shift
    positions, its image offset nsub inside the block, and images per block ipb."""
    pw = int32(int32(1) << shift)
    p = int32(int32(int32(cuda.blockIdx.x) << shift) + int32(tid & int32(pw - _I1)))
    return p, int32(tid >> shift), int32(int32(LRN_THREADS) >> shift)


@cuda.jit(device=True, inline=True)
def _fwd_step(head, e, ring, tid, accum, scale, y, off, HW, C, size, post_pad, alpha_over_size, k,
              negative_beta):
    """One step of Caffe's LRNFillScale + LRNComputeOutput at window head ``head`` (entering
    value e = x[head]); returns the running sum. Same arithmetic order as v2 (add, subtract)."""
    if head < C:
        accum += e * e
        ring[_slot(head, tid)] = e
    c = int32(head - post_pad)
    if c < C:                       # heads past C + post_pad - 1 (the last chunk's tail) do nothing
        if head >= size:
            v = ring[_slot(int32(head - size), tid)]   # the square subtracted is the one added
            accum -= v * v
        if c >= _I0:
            s = k + accum * alpha_over_size
            j = uint32(int32(off + int32(c * HW)))
            scale[j] = s
            y[j] = ring[_slot(c, tid)] * math.pow(s, negative_beta)
    return accum


@cuda.jit(**_bounds(LRN_FWD_V3_MIN_BLOCKS))
def lrn_fwd_v3(x, scale, y, N, C, HW, size, shift, alpha_over_size, k, negative_beta):
    """v2's running sum, one thread per (n, p) column, int32 indices, x in a shared ring, the
    next UNROLL channels' loads in flight while the current ones are computed."""
    # ring[slot * LRN_THREADS + tid]: this thread's x values for the last RING channels (only it reads
    # its column: no barrier needed; consecutive tid -> consecutive banks, conflict-free)
    ring = cuda.shared.array(_RING_CELLS, float32)
    N = int32(N)                    # int32 geometry: the host checks N*C*HW < 2**31
    C = int32(C)
    HW = int32(HW)
    size = int32(size)
    tid = int32(cuda.threadIdx.x)
    p, nsub, ipb = _column(tid, int32(shift))
    pre_pad = int32(int32(size - _I1) >> _I1)
    post_pad = int32(size - pre_pad - _I1)
    end = int32(C + post_pad)
    for n in range(int32(int32(int32(cuda.blockIdx.y) * ipb) + nsub), N, int32(int32(cuda.gridDim.y) * ipb)):
        if p < HW:
            off = int32(int32(int32(n * C) * HW) + p)
            accum = _ZERO
            e0 = _ld(x, off, _I0 < C)
            e1 = _ld(x, off + HW, _I1 < C)
            e2 = _ld(x, off + int32(_I2 * HW), _I2 < C)
            e3 = _ld(x, off + int32(_I3 * HW), _I3 < C)
            for h in range(_I0, end, _I4):          # UNROLL = 4 channels per iteration
                # issue the next 4 loads before this chunk's stores (scale/y may alias x as far as
                # the compiler knows, so it cannot hoist them itself): 4 loads in flight per thread
                h4 = int32(h + _I4)
                f0 = _ld(x, int32(off + int32(h4 * HW)), h4 < C)
                f1 = _ld(x, int32(off + int32(int32(h4 + _I1) * HW)), int32(h4 + _I1) < C)
                f2 = _ld(x, int32(off + int32(int32(h4 + _I2) * HW)), int32(h4 + _I2) < C)
                f3 = _ld(x, int32(off + int32(int32(h4 + _I3) * HW)), int32(h4 + _I3) < C)
                accum = _fwd_step(h, e0, ring, tid, accum, scale, y, off, HW, C, size, post_pad,
                                  alpha_over_size, k, negative_beta)
                accum = _fwd_step(int32(h + _I1), e1, ring, tid, accum, scale, y, off, HW, C, size,
                                  post_pad, alpha_over_size, k, negative_beta)
                accum = _fwd_step(int32(h + _I2), e2, ring, tid, accum, scale, y, off, HW, C, size,
                                  post_pad, alpha_over_size, k, negative_beta)
                accum = _fwd_step(int32(h + _I3), e3, ring, tid, accum, scale, y, off, HW, C, size,
                                  post_pad, alpha_over_size, k, negative_beta)
                e0 = f0
                e1 = f1
                e2 = f2
                e3 = f3


@cuda.jit(device=True, inline=True)
def _bwd_step(head, d, yy, sc, xc, ring_r, ring_t, tid, accum, dx, off, HW, C, size, post_pad,
              negative_beta, cache_ratio):
    """One step of Caffe's LRNComputeDiff at window head ``head`` (entering dy, y, scale = d, yy,
    sc; xc = x of the output channel head - post_pad); returns the running sum of dy*y/scale."""
    if head < C:
        r = d * yy / sc                                   # Caffe's top_diff * top_data / scale
        accum += r
        ring_r[_slot(head, tid)] = r
        ring_t[_slot(head, tid)] = d * math.pow(sc, negative_beta)
    c = int32(head - post_pad)
    if c < C:                       # heads past C + post_pad - 1 (the last chunk's tail) do nothing
        if head >= size:
            accum -= ring_r[_slot(int32(head - size), tid)]   # the very value added
        if c >= _I0:
            dx[uint32(int32(off + int32(c * HW)))] = ring_t[_slot(c, tid)] - cache_ratio * xc * accum
    return accum


@cuda.jit(**_bounds(LRN_BWD_V3_MIN_BLOCKS))
def lrn_bwd_v3(dy, x, y, scale, dx, N, C, HW, size, shift, negative_beta, cache_ratio):
    """v2's running sum of dy*y/scale with v3's geometry: int32, rings of dy*y/scale and
    dy*scale^-beta in shared memory, the next UNROLL channels' loads in flight."""
    # two per-thread rings (see lrn_fwd_v3): r = dy*y/scale for the sliding sum, t = dy*scale^-beta
    # computed when the channel enters, used when it is the output channel
    ring_r = cuda.shared.array(_RING_CELLS, float32)
    ring_t = cuda.shared.array(_RING_CELLS, float32)
    N = int32(N)
    C = int32(C)
    HW = int32(HW)
    size = int32(size)
    tid = int32(cuda.threadIdx.x)
    p, nsub, ipb = _column(tid, int32(shift))
    pre_pad = int32(size - int32(int32(size + _I1) >> _I1))     # Caffe's backward window
    post_pad = int32(size - pre_pad - _I1)
    end = int32(C + post_pad)
    for n in range(int32(int32(int32(cuda.blockIdx.y) * ipb) + nsub), N, int32(int32(cuda.gridDim.y) * ipb)):
        if p < HW:
            off = int32(int32(int32(n * C) * HW) + p)
            accum = _ZERO
            # chunk 0: entering channels 0..3 (dy, y, scale) and output channels -post_pad..3-post_pad (x)
            a0, b0, s0 = _ld(dy, off, _I0 < C), _ld(y, off, _I0 < C), _ld(scale, off, _I0 < C)
            j = int32(off + HW)
            a1, b1, s1 = _ld(dy, j, _I1 < C), _ld(y, j, _I1 < C), _ld(scale, j, _I1 < C)
            j = int32(off + int32(_I2 * HW))
            a2, b2, s2 = _ld(dy, j, _I2 < C), _ld(y, j, _I2 < C), _ld(scale, j, _I2 < C)
            j = int32(off + int32(_I3 * HW))
            a3, b3, s3 = _ld(dy, j, _I3 < C), _ld(y, j, _I3 < C), _ld(scale, j, _I3 < C)
            c = int32(-post_pad)
            x0 = _ld(x, int32(off + int32(c * HW)), c >= _I0 and c < C)
            c = int32(c + _I1)
            x1 = _ld(x, int32(off + int32(c * HW)), c >= _I0 and c < C)
            c = int32(c + _I1)
            x2 = _ld(x, int32(off + int32(c * HW)), c >= _I0 and c < C)
            c = int32(c + _I1)
            x3 = _ld(x, int32(off + int32(c * HW)), c >= _I0 and c < C)
            for h in range(_I0, end, _I4):          # UNROLL = 4 channels per iteration
                # the next chunk's 16 loads first (see lrn_fwd_v3), then this chunk's 4 steps
                hh = int32(h + _I4)
                j = int32(off + int32(hh * HW))
                g0, q0, t0 = _ld(dy, j, hh < C), _ld(y, j, hh < C), _ld(scale, j, hh < C)
                hh = int32(hh + _I1)
                j = int32(j + HW)
                g1, q1, t1 = _ld(dy, j, hh < C), _ld(y, j, hh < C), _ld(scale, j, hh < C)
                hh = int32(hh + _I1)
                j = int32(j + HW)
                g2, q2, t2 = _ld(dy, j, hh < C), _ld(y, j, hh < C), _ld(scale, j, hh < C)
                hh = int32(hh + _I1)
                j = int32(j + HW)
                g3, q3, t3 = _ld(dy, j, hh < C), _ld(y, j, hh < C), _ld(scale, j, hh < C)
                c = int32(int32(h + _I4) - post_pad)
                j = int32(off + int32(c * HW))
                w0 = _ld(x, j, c >= _I0 and c < C)
                c = int32(c + _I1)
                j = int32(j + HW)
                w1 = _ld(x, j, c >= _I0 and c < C)
                c = int32(c + _I1)
                j = int32(j + HW)
                w2 = _ld(x, j, c >= _I0 and c < C)
                c = int32(c + _I1)
                j = int32(j + HW)
                w3 = _ld(x, j, c >= _I0 and c < C)
                accum = _bwd_step(h, a0, b0, s0, x0, ring_r, ring_t, tid, accum, dx, off, HW, C, size,
                                  post_pad, negative_beta, cache_ratio)
                accum = _bwd_step(int32(h + _I1), a1, b1, s1, x1, ring_r, ring_t, tid, accum, dx, off,
                                  HW, C, size, post_pad, negative_beta, cache_ratio)
                accum = _bwd_step(int32(h + _I2), a2, b2, s2, x2, ring_r, ring_t, tid, accum, dx, off,
                                  HW, C, size, post_pad, negative_beta, cache_ratio)
                accum = _bwd_step(int32(h + _I3), a3, b3, s3, x3, ring_r, ring_t, tid, accum, dx, off,
                                  HW, C, size, post_pad, negative_beta, cache_ratio)
                a0, b0, s0, x0 = g0, q0, t0, w0
                a1, b1, s1, x1 = g1, q1, t1, w1
                a2, b2, s2, x2 = g2, q2, t2, w2
                a3, b3, s3, x3 = g3, q3, t3, w3


# ------------------------------------------------------------------------------- within channel

@cuda.jit
def lrn_within_fwd_v1(x, scale, y, H, W, size, alpha, negative_beta):
    """scale = 1 + alpha * AVE-pool(x^2) (kernel n, pad pre_pad, stride 1); y = x * scale^-beta."""
    pad = (size - 1) // 2
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        plane = i - h * W - w                       # start of this (n, c) plane
        hstart = h - pad
        wstart = w - pad
        hend = min(hstart + size, H + pad)
        wend = min(wstart + size, W + pad)
        pool_size = (hend - hstart) * (wend - wstart)
        total = _ZERO
        for hh in range(max(hstart, 0), min(hend, H)):
            for ww in range(max(wstart, 0), min(wend, W)):
                v = x[plane + hh * W + ww]
                total += v * v
        s = total / float32(pool_size)
        if alpha != _ONE:
            s = s * alpha
        s = s + _ONE
        scale[i] = s
        y[i] = x[i] * math.pow(s, negative_beta)


@cuda.jit
def lrn_within_bwd_v1(dy, x, scale, dx, H, W, size, alpha, negative_beta):
    """dx = dy*scale^-beta + 2x * sum over covering windows p of dy_p*x_p*(-beta*alpha)
    *scale_p^-beta/scale_p / pool_size_p."""
    pad = (size - 1) // 2
    diff_scale = negative_beta * alpha
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        plane = i - h * W - w
        # outputs p = (ph, pw) (same size as the input, stride 1) whose window contains (h, w)
        hp = h + pad
        wp = w + pad
        phstart = 0 if hp < size else hp - size + 1
        phend = min(hp + 1, H)
        pwstart = 0 if wp < size else wp - size + 1
        pwend = min(wp + 1, W)
        pooled_diff = _ZERO
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                hstart = ph - pad
                wstart = pw - pad
                hend = min(hstart + size, H + pad)
                wend = min(wstart + size, W + pad)
                pool_size = (hend - hstart) * (wend - wstart)
                p = plane + ph * W + pw
                s = scale[p]
                power_diff = math.pow(s, negative_beta) / s * diff_scale   # Power layer's dy/dx
                pooled_diff += dy[p] * x[p] * power_diff / float32(pool_size)
        dx[i] = dy[i] * math.pow(scale[i], negative_beta) + _TWO * x[i] * pooled_diff


# within v2: a (WITHIN_TY x WITHIN_TX) tile of outputs per block over one (n, c) plane from
# blockIdx.z (stride loop over planes), int32 indices; the tile plus its halo of (n-1)/2 cells is
# staged in shared memory once, so each input is read from global memory ~once instead of n*n
# times, and the backward computes the Power layer's pow once per position instead of n*n times.
WITHIN_TX = 32              # tile width (one warp per tile row: coalesced rows, conflict-free smem)
WITHIN_TY = 8               # tile height: 32 x 8 = 256 threads
WITHIN_MAX_PAD = 4          # halo the shared tiles hold: local_size <= 9 (larger: v1)
_WH = WITHIN_TY + 2 * WITHIN_MAX_PAD
_WW = WITHIN_TX + 2 * WITHIN_MAX_PAD


@cuda.jit(device=True, inline=True)
def _pool_size(h, w, H, W, size, pad):
    """Caffe's AVE-pool divisor at output (h, w): the window clipped to H + pad, W + pad only."""
    hstart = int32(h - pad)
    wstart = int32(w - pad)
    hend = min(int32(hstart + size), int32(H + pad))
    wend = min(int32(wstart + size), int32(W + pad))
    return int32(int32(hend - hstart) * int32(wend - wstart))


@cuda.jit
def lrn_within_fwd_v2(x, scale, y, NC, H, W, size, alpha, negative_beta):
    """v1's scale and y, tile of x^2 (zero outside the image) with halo in shared memory."""
    sq = cuda.shared.array((_WH, _WW), float32)    # x^2 of rows h0-pad.., columns w0-pad..
    NC = int32(NC)
    H = int32(H)
    W = int32(W)
    size = int32(size)
    pad = int32(int32(size - _I1) >> _I1)
    span = int32(size - _I1)                        # halo cells on both sides together
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    h0 = int32(int32(cuda.blockIdx.y) * int32(WITHIN_TY))
    w0 = int32(int32(cuda.blockIdx.x) * int32(WITHIN_TX))
    h = int32(h0 + ty)
    w = int32(w0 + tx)
    plane_size = int32(H * W)
    for plane in range(int32(cuda.blockIdx.z), NC, int32(cuda.gridDim.z)):
        base = int32(plane * plane_size)
        for r in range(ty, int32(int32(WITHIN_TY) + span), int32(WITHIN_TY)):
            hh = int32(int32(h0 - pad) + r)
            for c in range(tx, int32(int32(WITHIN_TX) + span), int32(WITHIN_TX)):
                ww = int32(int32(w0 - pad) + c)
                v = _ZERO
                if hh >= _I0 and hh < H and ww >= _I0 and ww < W:
                    v = x[uint32(int32(base + int32(hh * W)) + ww)]
                sq[r, c] = v * v
        cuda.syncthreads()                          # the tile is complete before anyone sums it
        if h < H and w < W:
            total = _ZERO
            for i in range(size):                   # v1's order; the zero cells add nothing
                for j in range(size):
                    total += sq[ty + i, tx + j]
            s = total / float32(_pool_size(h, w, H, W, size, pad))
            if alpha != _ONE:
                s = s * alpha
            s = s + _ONE
            i = uint32(int32(base + int32(h * W)) + w)
            scale[i] = s
            y[i] = x[i] * math.pow(s, negative_beta)
        cuda.syncthreads()                          # everyone is done reading before the next fill


@cuda.jit
def lrn_within_bwd_v2(dy, x, scale, dx, NC, H, W, size, alpha, negative_beta):
    """v1's dx, with each output's pooled gradient term g[p] = dy*x*Power'(scale)/pool_size and
    scale^-beta computed once per position (tile plus halo) into shared memory, then gathered."""
    g = cuda.shared.array((_WH, _WW), float32)      # g[p], zero outside the image
    pw = cuda.shared.array((_WH, _WW), float32)     # scale[p]^-beta
    NC = int32(NC)
    H = int32(H)
    W = int32(W)
    size = int32(size)
    pad = int32(int32(size - _I1) >> _I1)
    span = int32(size - _I1)
    diff_scale = negative_beta * alpha
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    h0 = int32(int32(cuda.blockIdx.y) * int32(WITHIN_TY))
    w0 = int32(int32(cuda.blockIdx.x) * int32(WITHIN_TX))
    h = int32(h0 + ty)
    w = int32(w0 + tx)
    plane_size = int32(H * W)
    for plane in range(int32(cuda.blockIdx.z), NC, int32(cuda.gridDim.z)):
        base = int32(plane * plane_size)
        # outputs p whose window holds an input q of the tile: rows h0-pad .. h0+TY-1+pad
        for r in range(ty, int32(int32(WITHIN_TY) + span), int32(WITHIN_TY)):
            ph = int32(int32(h0 - pad) + r)
            for c in range(tx, int32(int32(WITHIN_TX) + span), int32(WITHIN_TX)):
                pc = int32(int32(w0 - pad) + c)
                gv = _ZERO
                pv = _ZERO
                if ph >= _I0 and ph < H and pc >= _I0 and pc < W:
                    p = uint32(int32(base + int32(ph * W)) + pc)
                    s = scale[p]
                    pv = math.pow(s, negative_beta)
                    power_diff = pv / s * diff_scale                  # the Power layer's dy/dx
                    gv = dy[p] * x[p] * power_diff / float32(_pool_size(ph, pc, H, W, size, pad))
                g[r, c] = gv
                pw[r, c] = pv
        cuda.syncthreads()                          # g and pw complete before the gather
        if h < H and w < W:
            pooled_diff = _ZERO
            for i in range(size):                   # v1's order (ph, then pw ascending)
                for j in range(size):
                    pooled_diff += g[ty + i, tx + j]
            q = uint32(int32(base + int32(h * W)) + w)
            dx[q] = dy[q] * pw[ty + pad, tx + pad] + _TWO * x[q] * pooled_diff
        cuda.syncthreads()                          # everyone is done reading before the next fill


_F = float32[::1]
_I = int64
_J = int32

KERNELS: dict[str, tuple[Any, list]] = {
    "lrn_fwd_v1": (lrn_fwd_v1, [void(_F, _F, _F, _I, _I, _I, _I, float32, float32, float32)]),
    "lrn_bwd_v1": (lrn_bwd_v1, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32, float32)]),
    "lrn_fwd_v2": (lrn_fwd_v2, [void(_F, _F, _F, _I, _I, _I, _I, float32, float32, float32)]),
    "lrn_bwd_v2": (lrn_bwd_v2, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32, float32)]),
    "lrn_fwd_v3": (lrn_fwd_v3, [void(_F, _F, _F, _J, _J, _J, _J, _J, float32, float32, float32)]),
    "lrn_bwd_v3": (lrn_bwd_v3, [void(_F, _F, _F, _F, _F, _J, _J, _J, _J, _J, float32, float32)]),
    "lrn_within_fwd_v1": (lrn_within_fwd_v1, [void(_F, _F, _F, _I, _I, _I, float32, float32)]),
    "lrn_within_bwd_v1": (lrn_within_bwd_v1, [void(_F, _F, _F, _F, _I, _I, _I, float32, float32)]),
    "lrn_within_fwd_v2": (lrn_within_fwd_v2, [void(_F, _F, _F, _J, _J, _J, _J, float32, float32)]),
    "lrn_within_bwd_v2": (lrn_within_bwd_v2, [void(_F, _F, _F, _F, _J, _J, _J, _J, float32, float32)]),
}


# ------------------------------------------------------------------------------------- public API

def _arrays(*arrays: Any) -> tuple[tuple[int, int, int, int], list]:
    """((N, C, H, W), flat device views) after checking dtype and equal 4-D shapes."""
    devs = [as_device(a) for a in arrays]
    shape = tuple(devs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"LRN needs 4-D NCHW arrays, got shape {shape}")
    for d in devs:
        if d.dtype != np.float32:
            raise TypeError(f"LRN kernels take float32 arrays, got {d.dtype}")
        if tuple(d.shape) != shape:
            raise ValueError(f"LRN arrays must share one shape, got {[tuple(e.shape) for e in devs]}")
    return shape, [d.reshape(d.size) for d in devs]


def _check_size(local_size: int) -> int:
    if local_size < 1 or local_size % 2 == 0:
        raise ValueError(f"LRN local_size must be odd and positive (Caffe requires it), got {local_size}")
    return int(local_size)


INT32_MAX = 2**31 - 1
MAX_GRID_Y = 65535
PROMOTED: dict[str, str] = {"lrn_fwd": "v3", "lrn_bwd": "v3", "lrn_within_fwd": "v2", "lrn_within_bwd": "v2"}


def _v3_geometry(N: int, C: int, HW: int, size: int) -> tuple[tuple[int, int], int] | None:
    """v3 launch for (N, C, HW): (grid (x over spatial tiles, y over image groups), shift) where a
    block covers 2**shift consecutive positions of LRN_THREADS >> shift images (2**shift = the
    smallest power of 2 >= HW, at most LRN_THREADS: small planes pack several images per block).
    None where v3 does not apply (falls back to v2): more than 2**31-1 elements (v3 indexes in
    int32) or local_size > RING - 1 (the shared ring holds the window plus one channel)."""
    if size > RING - 1 or N * C * HW + 8 * HW > INT32_MAX:
        return None
    shift = min((HW - 1).bit_length(), LRN_THREADS.bit_length() - 1)
    ipb = LRN_THREADS >> shift
    grid = (ceil_div(HW, 1 << shift), min(ceil_div(N, ipb), MAX_GRID_Y))   # y: stride loop over n
    return grid, shift


def lrn_fwd(x: Any, scale: Any, y: Any, local_size: int = 5, alpha: float = 1.0, beta: float = 0.75,
            k: float = 1.0) -> None:
    """ACROSS_CHANNELS LRN: scale = k + alpha/n * sum of x^2 over n neighbouring channels,
    y = x * scale^-beta; scale (kept for the backward) and y are (N,C,H,W) outputs."""
    size = _check_size(local_size)
    (N, C, H, W), (xf, sf, yf) = _arrays(x, scale, y)
    if N * C * H * W == 0:
        return
    alpha_over_size = np.float32(np.float32(alpha) / np.float32(size))
    version = PROMOTED["lrn_fwd"]
    geometry = _v3_geometry(N, C, H * W, size) if version == "v3" else None
    if geometry is not None:
        grid, shift = geometry
        lrn_fwd_v3[grid, LRN_THREADS](xf, sf, yf, np.int32(N), np.int32(C), np.int32(H * W), np.int32(size),
                                      np.int32(shift), alpha_over_size, np.float32(k), np.float32(-beta))
        return
    args = (xf, sf, yf, C, H, W, size, alpha_over_size, np.float32(k), np.float32(-beta))
    if version == "v1":
        blocks, threads = grid_1d(xf.size, LRN_THREADS)
        lrn_fwd_v1[blocks, threads](*args)
    else:
        blocks, threads = grid_1d(N * H * W, LRN_THREADS)
        lrn_fwd_v2[blocks, threads](*args)


def lrn_bwd(dy: Any, x: Any, y: Any, scale: Any, dx: Any, local_size: int = 5, alpha: float = 1.0,
            beta: float = 0.75) -> None:
    """ACROSS_CHANNELS LRN backward (Caffe's ComputeDiff) from x, y and the forward's scale:
    dx = dy*scale^-beta - 2*alpha*beta/n * x * sum over the window of dy*y/scale."""
    size = _check_size(local_size)
    (N, C, H, W), (dyf, xf, yf, sf, dxf) = _arrays(dy, x, y, scale, dx)
    if N * C * H * W == 0:
        return
    cache_ratio = np.float32(np.float32(2.0 * np.float32(alpha) * np.float32(beta)) / np.float32(size))
    version = PROMOTED["lrn_bwd"]
    geometry = _v3_geometry(N, C, H * W, size) if version == "v3" else None
    if geometry is not None:
        grid, shift = geometry
        lrn_bwd_v3[grid, LRN_THREADS](dyf, xf, yf, sf, dxf, np.int32(N), np.int32(C), np.int32(H * W),
                                      np.int32(size), np.int32(shift), np.float32(-beta), cache_ratio)
        return
    args = (dyf, xf, yf, sf, dxf, C, H, W, size, np.float32(-beta), cache_ratio)
    if version == "v1":
        blocks, threads = grid_1d(xf.size, LRN_THREADS)
        lrn_bwd_v1[blocks, threads](*args)
    else:
        blocks, threads = grid_1d(N * H * W, LRN_THREADS)
        lrn_bwd_v2[blocks, threads](*args)


MAX_GRID_Z = 65535


def _within_v2_grid(N: int, C: int, H: int, W: int, size: int) -> tuple[int, int, int] | None:
    """within v2 grid (x over WITHIN_TX-wide tiles, y over WITHIN_TY-high tiles, z over (n, c)
    planes, capped, with a stride loop); None (use v1) for local_size > 9 (the halo the shared
    tiles hold) or 2**31 elements or more (int32 indices)."""
    if (size - 1) // 2 > WITHIN_MAX_PAD or N * C * H * W > INT32_MAX:
        return None
    return ceil_div(W, WITHIN_TX), ceil_div(H, WITHIN_TY), min(N * C, MAX_GRID_Z)


def lrn_within_fwd(x: Any, scale: Any, y: Any, local_size: int = 5, alpha: float = 1.0,
                   beta: float = 0.75) -> None:
    """WITHIN_CHANNEL LRN: scale = 1 + alpha * (AVE pool of x^2 over n x n, pad (n-1)/2, padded
    divisor), y = x * scale^-beta (k unused, as in Caffe); scale and y are (N,C,H,W) outputs."""
    size = _check_size(local_size)
    (N, C, H, W), (xf, sf, yf) = _arrays(x, scale, y)
    if not xf.size:
        return
    grid = _within_v2_grid(N, C, H, W, size) if PROMOTED["lrn_within_fwd"] == "v2" else None
    if grid is not None:
        lrn_within_fwd_v2[grid, (WITHIN_TX, WITHIN_TY)](
            xf, sf, yf, np.int32(N * C), np.int32(H), np.int32(W), np.int32(size), np.float32(alpha),
            np.float32(-beta))
        return
    blocks, threads = grid_1d(xf.size, LRN_THREADS)
    lrn_within_fwd_v1[blocks, threads](xf, sf, yf, H, W, size, np.float32(alpha), np.float32(-beta))


def lrn_within_bwd(dy: Any, x: Any, scale: Any, dx: Any, local_size: int = 5, alpha: float = 1.0,
                   beta: float = 0.75) -> None:
    """WITHIN_CHANNEL LRN backward through Caffe's composition (product, power, AVE pooling,
    square), from x and the forward's scale."""
    size = _check_size(local_size)
    (N, C, H, W), (dyf, xf, sf, dxf) = _arrays(dy, x, scale, dx)
    if not xf.size:
        return
    grid = _within_v2_grid(N, C, H, W, size) if PROMOTED["lrn_within_bwd"] == "v2" else None
    if grid is not None:
        lrn_within_bwd_v2[grid, (WITHIN_TX, WITHIN_TY)](
            dyf, xf, sf, dxf, np.int32(N * C), np.int32(H), np.int32(W), np.int32(size), np.float32(alpha),
            np.float32(-beta))
        return
    blocks, threads = grid_1d(xf.size, LRN_THREADS)
    lrn_within_bwd_v1[blocks, threads](dyf, xf, sf, dxf, H, W, size, np.float32(alpha), np.float32(-beta))
