"""Max, average and stochastic pooling over NCHW float32 tensors, forward and backward, with
Caffe's semantics.

Math (per image n, channel c, output cell (ph, pw)); Caffe's pooling_layer.cu to the letter:

    hstart = ph*stride_h - pad_h            wstart = pw*stride_w - pad_w
    MAX:  window = [max(hstart,0), min(hstart+kernel_h, H)) x [max(wstart,0), min(wstart+kernel_w, W))
          y = max over the window, starting from -FLT_MAX; the FIRST maximum wins (strict ``>``,
          scanning h then w); mask = its flat index h*W + w in the input plane (int32, -1 if the
          window holds nothing greater than -FLT_MAX).
    AVE:  hend = min(hstart+kernel_h, H+pad_h)  (the same for w)
          pool_size = (hend-hstart) * (wend-wstart)      -- computed BEFORE clipping to [0, H):
          padded cells inside the padded extent count, cells beyond H+pad_h do not
          y = (sum of x over the window clipped to [0,H) x [0,W)) / pool_size
    Backward (bottom gradient, written with ``=``):
    MAX:  dx[h, w] = sum of dy[ph, pw] over the outputs whose window covers (h, w) and whose mask is
          h*W + w  (i.e. dy is routed to the first argmax)
    AVE:  dx[h, w] = sum of dy[ph, pw] / pool_size(ph, pw) over the outputs whose window covers (h, w)

An empty window (only with stride > kernel and no padding, when the ceil rule's last window starts
past the image) gives y = -FLT_MAX / mask -1 for MAX and 0/0 = NaN for AVE, exactly as Caffe.

Global pooling is kernel = (H, W), pad 0, stride 1. Output sizes are the caller's (Caffe's rule,
ceil mode and the clipped last window, lives in ``netdef.shapes``), read from the y / dy array's
shape.

Stochastic pooling (Zeiler & Fergus 2013; Caffe's StoPoolForwardTrain / StoPoolForwardTest /
StoPoolBackward, GPU only in Caffe). Windows never pad (Caffe refuses padding for STOCHASTIC):

    hstart = ph*stride_h, hend = min(hstart + kernel_h, H)     (the same for w)
    TRAIN:  s = sum of x over the window (row-major h, w, float32);  thres = u * s  with u the
            output's uniform draw in (0, 1];  then the first (h, w) in row-major order whose
            running sum reaches thres (``cumsum >= thres``) is picked:
            y = x[h, w], idx = h*W + w.   A window whose running sum never reaches thres (only
            possible with negative inputs; Caffe then leaves the top stale) gives y = 0, idx = -1.
    TEST:   y = (sum of x^2 over the window) / (FLT_MIN + sum of x over the window)
    Backward (written ``=``): dx[h, w] = sum of dy[ph, pw] over the outputs whose window covers
            (h, w) and whose idx is h*W + w (a gather, no atomics).

Random numbers: output element i (flat NCHW index of y) takes the 32-bit word
``kernels.dropout.random_word(i, seed, stream)`` -- word (i mod 4) of Philox4x32-10(counter
(i div 4, stream), key seed), the same words ``dropout.random_uint32_host`` gives on the host -- and
turns it into cuRAND's uniform in (0, 1] (what Caffe's caffe_gpu_rng_uniform draws):
u = r * 2^-32 + 2^-33 in float32 (the product is exact, so a fused multiply-add rounds the same).
``uniform_host`` gives the cpu backend the same u for the same (seed, stream), so both backends pick
the same elements; the layer advances ``stream`` every TRAIN forward (exact resume, as Dropout).

Shapes: x, dx (N, C, H, W); y, dy, mask (N, C, PH, PW); all C-contiguous, float32 (mask int32).

Versions (``PROMOTED``: v2 for all four; v2 falls back to v1 for the shapes it cannot take):
    v1  one thread per output (forward) or per input element (backward, scanning the outputs whose
        window covers it, as Caffe's GPU code: no atomics); 1-D grid-stride loop over the flat
        index with int64 geometry (4 64-bit divisions per element to find n, c, h, w). Launch:
        ``kernels._launch.launch_1d``.
    v2  int32 index math (np.int32 arguments, int32() casts where numba would widen, and one
        ``div.u32`` per thread via ``kernels._index.udiv32``: no 64-bit division anywhere); a 2-D block
        (TX, TY) over a grid (bands or spatial blocks, plane groups): plane p = blockIdx.y*TY +
        threadIdx.y, so n and c are never computed; arrays are viewed as (N*C, spatial).
        Forward: the input rows under the block's R output rows of one plane (a band), or the
        block's TY whole planes (small planes), are one contiguous range of x, copied to a shared
        tile (SMEM_FLOATS) by all the block's threads with 8 independent coalesced loads in
        flight per thread; then each output's window is read from shared memory (x leaves DRAM
        once, and the 2.25x window overlap of 3x3/2 costs shared-memory, not L1/LSU, bandwidth);
        a thread's output index advances by TX with a carry into (row, column), no division, and
        a whole 3-wide window row is three straight-line compares.
        TX threads per plane = a power of two >= half its outputs (pool1: 256 threads, one plane;
        pool5: 32 x 8 planes; global 7x7: 2 x 125 planes). Shapes whose single output row's
        input rows do not fit the tile, or past int32, run v1.
        Backward (gather, no atomics): the covering output range per row and per column comes
        from a host-precomputed packed int32 table (``_bounds_table``: start | end << 16, no
        division by the stride); outputs are visited in chunks of up to 2x2 with clamped indices,
        so the chunk's loads (4 mask + 4 dy for MAX, 4 dy for AVE) are independent and in flight
        together (a clamped duplicate is never added); where no input is covered by 2 windows
        along an axis (2x2/2) the chunk is 1 wide there (uniform branch on pair_h/pair_w). MAX:
        one thread per PAIR of horizontally adjacent inputs, which share their covering outputs
        (3x3/2: the pair's union is the same 2x2 outputs), halving the gather loads per input.
        AVE: one thread per input. Each input's terms are summed in Caffe's row-major (ph, pw)
        order whenever the chunk spans the covering outputs along w (3x3/2, 2x2/2, ...); with
        more (3x3/1) the order differs, hence the sum by rounding only.
Stochastic pooling has v1 only (no ``PROMOTED`` entry): ``sto_pool_fwd_train_v1`` one thread per
output (one Philox call, two passes over the window), ``sto_pool_fwd_test_v1`` one thread per
output, ``sto_pool_bwd_v1`` one thread per input element scanning the outputs whose window covers
it; 1-D grid-stride loops with int32 geometry arguments.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32, uint64, void

from kernels._index import flat_checked, udiv32
from kernels._launch import SIMULATOR, as_device, ceil_div, launch_1d
from kernels.dropout import random_uint32_host, random_word

# v2: threads per block (TX * TY); the simulator runs each thread as a Python thread: keep it small
V2_THREADS = 64 if SIMULATOR else 256
SMEM_FLOATS = 6144          # v2 forward tile: 24 KiB per block -> 8 blocks of 256 threads per SM
_BAND_FLOATS = SMEM_FLOATS  # what the forward planner may use of the tile (tests lower it)
_MAX_GRID_Y = 65535        # grid y (planes) cap; the kernels loop over the rest (tests lower it)
INT32_MAX = 2**31 - 1
NEG_FLT_MAX = np.float32(-np.finfo(np.float32).max)   # Caffe's initial max: -FLT_MAX
_ZERO = float32(0.0)
TWO_POW_M32 = np.float32(2.0 ** -32)            # cuRAND's CURAND_2POW32_INV
HALF_TWO_POW_M32 = np.float32(2.0 ** -33)       # ... and half of it: u in (0, 1]
FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # Caffe's STOCHASTIC TEST start of the window sum


PROMOTED: dict[str, str] = {"max_pool_fwd": "v2", "max_pool_bwd": "v2", "ave_pool_fwd": "v2",
                            "ave_pool_bwd": "v2"}


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit
def max_pool_fwd_v1(x, y, mask, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w):
    """y[n,c,ph,pw] = first max of x over the clipped window; mask = its flat index h*W+w."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        c = (i // (PW * PH)) % C
        n = i // (PW * PH * C)
        hstart = ph * stride_h - pad_h
        wstart = pw * stride_w - pad_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        hstart = max(hstart, 0)
        wstart = max(wstart, 0)
        plane = (n * C + c) * H * W
        maxval = NEG_FLT_MAX
        maxidx = -1
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                v = x[plane + h * W + w]
                if v > maxval:          # strict: the first maximum wins, as Caffe
                    maxval = v
                    maxidx = h * W + w
        y[i] = maxval
        mask[i] = maxidx


@cuda.jit
def max_pool_bwd_v1(dy, mask, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w):
    """dx[n,c,h,w] = sum of dy over the outputs covering (h,w) whose argmax is h*W+w."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        # outputs whose window [ph*stride-pad, ph*stride-pad+kernel) contains h
        phstart = 0 if h + pad_h < kernel_h else (h + pad_h - kernel_h) // stride_h + 1
        phend = min((h + pad_h) // stride_h + 1, PH)
        pwstart = 0 if w + pad_w < kernel_w else (w + pad_w - kernel_w) // stride_w + 1
        pwend = min((w + pad_w) // stride_w + 1, PW)
        out_plane = (n * C + c) * PH * PW
        target = h * W + w
        gradient = float32(0)
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                if mask[out_plane + ph * PW + pw] == target:
                    gradient += dy[out_plane + ph * PW + pw]
        dx[i] = gradient


@cuda.jit
def ave_pool_fwd_v1(x, y, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    """y[n,c,ph,pw] = sum of x over the clipped window / Caffe's pool_size (padded extent)."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        c = (i // (PW * PH)) % C
        n = i // (PW * PH * C)
        hstart = ph * stride_h - pad_h
        wstart = pw * stride_w - pad_w
        hend = min(hstart + kernel_h, H + pad_h)
        wend = min(wstart + kernel_w, W + pad_w)
        pool_size = (hend - hstart) * (wend - wstart)
        hstart = max(hstart, 0)
        wstart = max(wstart, 0)
        hend = min(hend, H)
        wend = min(wend, W)
        plane = (n * C + c) * H * W
        total = float32(0)
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                total += x[plane + h * W + w]
        y[i] = total / float32(pool_size)


@cuda.jit
def ave_pool_bwd_v1(dy, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    """dx[n,c,h,w] = sum of dy[ph,pw] / pool_size(ph,pw) over the outputs covering (h,w)."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        hp = h + pad_h              # position in the padded plane
        wp = w + pad_w
        phstart = 0 if hp < kernel_h else (hp - kernel_h) // stride_h + 1
        phend = min(hp // stride_h + 1, PH)
        pwstart = 0 if wp < kernel_w else (wp - kernel_w) // stride_w + 1
        pwend = min(wp // stride_w + 1, PW)
        out_plane = (n * C + c) * PH * PW
        gradient = float32(0)
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                hstart = ph * stride_h - pad_h
                wstart = pw * stride_w - pad_w
                hend = min(hstart + kernel_h, H + pad_h)
                wend = min(wstart + kernel_w, W + pad_w)
                pool_size = (hend - hstart) * (wend - wstart)
                gradient += dy[out_plane + ph * PW + pw] / float32(pool_size)
        dx[i] = gradient


# ------------------------------------------------------------------------------------------ v2
#
# Every integer below is int32: the host passes np.int32 scalars, computed values are cast back
# with int32() (numba widens int32 op int32 to int64), and the arrays are 2-D views (plane,
# spatial), so an element's address is plane*stride + s (one 64-bit multiply-add, no division).
# Array indices are uint32: numba adds a negative-index wraparound (shift, and, 64-bit add) to
# every signed index. Numba also types int32 // int32 as int64 (a 64-bit division with a runtime
# 32-bit bypass), hence ``udiv32``: one unsigned 32-bit division, for operands known to be >= 0.
# Strided loops are ``while`` loops: ``range`` with a runtime step divides to get its trip count.


UNROLL = 8                  # v2 forward: independent loads per thread in flight while filling the tile


@cuda.jit(device=True, inline=True)
def _load_tile(x, tile, src, tid, NT, count):
    """tile[i] = x[src + i] for i < count (x flat, src int64), by the NT threads tid of the
    block: UNROLL coalesced loads per thread issued before any store (memory-level parallelism);
    the indices past the range are clamped to its last element (rewritten with its own value)
    instead of branching, so the loads stay unconditional and independent."""
    last = int32(count - 1)
    i = tid
    while i < count:
        i1 = int32(min(i + NT, last))
        i2 = int32(min(i + 2 * NT, last))
        i3 = int32(min(i + 3 * NT, last))
        i4 = int32(min(i + 4 * NT, last))
        i5 = int32(min(i + 5 * NT, last))
        i6 = int32(min(i + 6 * NT, last))
        i7 = int32(min(i + 7 * NT, last))
        v0 = x[uint64(src + i)]
        v1 = x[uint64(src + i1)]
        v2 = x[uint64(src + i2)]
        v3 = x[uint64(src + i3)]
        v4 = x[uint64(src + i4)]
        v5 = x[uint64(src + i5)]
        v6 = x[uint64(src + i6)]
        v7 = x[uint64(src + i7)]
        tile[uint32(i)] = v0
        tile[uint32(i1)] = v1
        tile[uint32(i2)] = v2
        tile[uint32(i3)] = v3
        tile[uint32(i4)] = v4
        tile[uint32(i5)] = v5
        tile[uint32(i6)] = v6
        tile[uint32(i7)] = v7
        i = int32(i + UNROLL * NT)


@cuda.jit(device=True, inline=True)
def _band_rows(ph0, ph1, TY, H, kernel_h, stride_h, pad_h):
    """(hs0, rows): the input rows [hs0, hs0+rows) under output rows [ph0, ph1) of one plane
    (TY == 1), or all H rows (TY > 1: the planner gives whole planes, R = PH, so the TY planes of
    a block are one contiguous range of x)."""
    if TY > 1:
        return int32(0), H
    hs0 = int32(max(ph0 * stride_h - pad_h, 0))
    he0 = int32(min((ph1 - 1) * stride_h - pad_h + kernel_h, H))
    return hs0, int32(max(he0 - hs0, 0))


# max_pool_fwd_v2 compiles to 40 registers (6 blocks of 256 per SM); bounded to the 8 blocks the
# 25.6 KB tile allows per SM it needs 32, with no spill (tests/test_ptx.py would catch one)
_MAX_FWD_OPTS = {} if SIMULATOR else {"launch_bounds": (V2_THREADS, 8)}


@cuda.jit(**_MAX_FWD_OPTS)
def max_pool_fwd_v2(x, y, mask, P, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w, R, SLOT):
    """y[p, ph*PW+pw] = first max of x[p] over the clipped window; mask = its index h*W+w.

    Block (bx, by) thread (tx, ty): output rows [bx*R, bx*R+R) of plane by*TY+ty (then + gridDim.y
    * TY ...). The block copies the input rows under its band (TY == 1) or its TY whole planes
    (small planes) to shared memory, one contiguous range of the flat x (UNROLL loads in flight
    per thread, all threads), then each thread takes outputs of its plane; first max wins
    (strict ``>`` scanning h then w, as Caffe)."""
    tile = cuda.shared.array(SMEM_FLOATS, float32)
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    TX = int32(cuda.blockDim.x)
    TY = int32(cuda.blockDim.y)
    tid = int32(ty * TX + tx)
    HW = int32(H * W)
    base = int32(ty * SLOT)                           # this thread's plane in the tile
    ph0 = int32(int32(cuda.blockIdx.x) * R)
    ph1 = int32(min(ph0 + R, PH))
    hs0, rows = _band_rows(ph0, ph1, TY, H, kernel_h, stride_h, pad_h)
    nout = int32((ph1 - ph0) * PW)
    rows_tx = udiv32(TX, PW)                          # a step of TX outputs: rows_tx rows + rem_tx
    rem_tx = int32(TX - rows_tx * PW)
    pb = int32(cuda.blockIdx.y)
    nblocks = udiv32(P + TY - 1, TY)
    while pb < nblocks:                               # block-uniform: every thread meets the barriers
        p0 = int32(pb * TY)
        count = int32(min(TY, P - p0) * rows * W)     # TY > 1: whole planes, the last group short
        _load_tile(x, tile, int64(p0) * HW + hs0 * W, tid, TX * TY, count)
        cuda.syncthreads()                            # the band is in shared memory
        p = int32(p0 + ty)
        if p < P:
            # output o = r*PW + pw of the band: split once, then advanced by TX (a carry, no division)
            r = udiv32(tx, PW)
            pw = int32(tx - r * PW)
            o = tx
            while o < nout:
                ph = int32(ph0 + r)
                hstart = int32(ph * stride_h - pad_h)
                wstart = int32(pw * stride_w - pad_w)
                hend = int32(min(hstart + kernel_h, H))
                wend = int32(min(wstart + kernel_w, W))
                hstart = int32(max(hstart, 0))
                wstart = int32(max(wstart, 0))
                maxval = NEG_FLT_MAX
                maxidx = int32(-1)
                # ``while`` loops: ``range`` with runtime bounds adds a trip-count computation and
                # a 4-way unrolled body behind a remainder dispatch, too much for 2-3 taps
                full3 = int32(wend - wstart) == int32(3)   # a whole 3-wide row (3x3, unclipped)
                row = int32(base + (hstart - hs0) * W)    # tile offset of row h, then + W per row
                first = int32(hstart * W + wstart)        # plane index of (h, wstart), likewise
                h = hstart
                while h < hend:
                    if full3:                         # the same three compares, straight-line
                        a = int32(row + wstart)
                        v0 = tile[uint32(a)]
                        v1 = tile[uint32(a + 1)]
                        v2 = tile[uint32(a + 2)]
                        if v0 > maxval:
                            maxval = v0
                            maxidx = first
                        if v1 > maxval:
                            maxval = v1
                            maxidx = int32(first + 1)
                        if v2 > maxval:
                            maxval = v2
                            maxidx = int32(first + 2)
                    else:
                        w = wstart
                        while w < wend:
                            v = tile[uint32(row + w)]
                            if v > maxval:    # strict: the first maximum wins, as Caffe
                                maxval = v
                                maxidx = int32(h * W + w)
                            w = int32(w + 1)
                    row = int32(row + W)
                    first = int32(first + W)
                    h = int32(h + 1)
                out = int32(ph * PW + pw)
                y[uint32(p), uint32(out)] = maxval
                mask[uint32(p), uint32(out)] = maxidx
                o = int32(o + TX)
                pw = int32(pw + rem_tx)
                r = int32(r + rows_tx)
                if pw >= PW:
                    pw = int32(pw - PW)
                    r = int32(r + 1)
        cuda.syncthreads()                            # the tile is reused for the next plane
        pb = int32(pb + cuda.gridDim.y)


@cuda.jit
def ave_pool_fwd_v2(x, y, P, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                    R, SLOT):
    """y[p, ph*PW+pw] = sum of x[p] over the clipped window / Caffe's pool_size (padded extent).

    The band scheme of max_pool_fwd_v2; the window is summed in Caffe's order (h, then w)."""
    tile = cuda.shared.array(SMEM_FLOATS, float32)
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    TX = int32(cuda.blockDim.x)
    TY = int32(cuda.blockDim.y)
    tid = int32(ty * TX + tx)
    HW = int32(H * W)
    base = int32(ty * SLOT)                           # this thread's plane in the tile
    ph0 = int32(int32(cuda.blockIdx.x) * R)
    ph1 = int32(min(ph0 + R, PH))
    hs0, rows = _band_rows(ph0, ph1, TY, H, kernel_h, stride_h, pad_h)
    nout = int32((ph1 - ph0) * PW)
    pb = int32(cuda.blockIdx.y)
    nblocks = udiv32(P + TY - 1, TY)
    while pb < nblocks:                               # block-uniform: every thread meets the barriers
        p0 = int32(pb * TY)
        count = int32(min(TY, P - p0) * rows * W)     # TY > 1: whole planes, the last group short
        _load_tile(x, tile, int64(p0) * HW + hs0 * W, tid, TX * TY, count)
        cuda.syncthreads()                            # the band is in shared memory
        p = int32(p0 + ty)
        if p < P:
            o = tx
            while o < nout:
                r = udiv32(o, PW)
                pw = int32(o - r * PW)
                ph = int32(ph0 + r)
                hstart = int32(ph * stride_h - pad_h)
                wstart = int32(pw * stride_w - pad_w)
                hend = int32(min(hstart + kernel_h, H + pad_h))
                wend = int32(min(wstart + kernel_w, W + pad_w))
                pool_size = int32((hend - hstart) * (wend - wstart))
                hstart = int32(max(hstart, 0))
                wstart = int32(max(wstart, 0))
                hend = int32(min(hend, H))
                wend = int32(min(wend, W))
                total = float32(0)
                for h in range(hstart, hend):
                    row = int32(base + (h - hs0) * W)
                    for w in range(wstart, wend):
                        total += tile[uint32(row + w)]
                y[uint32(p), uint32(ph * PW + pw)] = total / float32(pool_size)
                o = int32(o + TX)
        cuda.syncthreads()                            # the tile is reused for the next plane
        pb = int32(pb + cuda.gridDim.y)


@cuda.jit(device=True, inline=True)
def _cover(bounds, h, w, H):
    """(phstart, phend, pwstart, pwend) of input (h, w) from the packed table (start | end << 16)."""
    th = bounds[uint32(h)]
    tw = bounds[uint32(H + w)]
    return (int32(th & 0xFFFF), int32(th >> 16), int32(tw & 0xFFFF), int32(tw >> 16))


@cuda.jit
def max_pool_bwd_v2(dy, mask, dx, bounds, P, H, W, PH, PW, WP, pair_h, pair_w):
    """dx[p, h*W+w] = sum of dy[p, o] over the outputs o covering (h, w) whose mask is h*W+w.

    ``bounds`` (int32, H+W) packs phstart(h) | phend(h) << 16, then the same for w: the covering
    output range per axis, precomputed on the host (no division by the stride here). One thread
    per PAIR of inputs (h, w0=2j), (h, w0+1) of plane by*TY+ty (WP = ceil(W/2) pairs per row):
    the two share most covering outputs (3x3/2: both lie under the same 2x2 outputs), so each
    mask/dy load serves both. The union of their ranges is visited in chunks of (1+pair_h) x
    (1+pair_w) outputs (pair_* = 1 where the union is 2+ wide along that axis): up to 8
    independent loads (4 mask, 4 dy) in flight."""
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    TY = int32(cuda.blockDim.y)
    t = int32(cuda.blockIdx.x * cuda.blockDim.x + tx)
    if t >= H * WP:
        return                                        # no barrier in this kernel
    h = udiv32(t, WP)
    w0 = int32(2 * (t - h * WP))
    has1 = w0 + 1 < W                                 # W odd: the row's last pair is one input
    phs, phe, pws, pwe0 = _cover(bounds, h, w0, H)
    phs, phe, pws1, pwe = _cover(bounds, h, min(w0 + 1, W - 1), H)
    # the ranges are monotone in w: the union is [pwstart(w0), pwend(w0+1))
    s0 = int32(h * W + w0)
    s1 = int32(s0 + 1)
    p = int32(cuda.blockIdx.y * TY + ty)
    pstep = int32(cuda.gridDim.y * TY)
    while p < P:
        g0 = float32(0)
        g1 = float32(0)
        ph = phs
        while ph < phe:
            r0 = int32(ph * PW)
            okh = ph + 1 < phe
            r1 = int32(min(ph + 1, phe - 1) * PW)    # clamped duplicate row: loaded, never added
            pw = pws
            while pw < pwe:
                okw = pw + 1 < pwe
                pw1 = int32(min(pw + 1, pwe - 1))
                # the loads of one chunk are independent; the pair_* branches are uniform
                m00 = mask[uint32(p), uint32(r0 + pw)]
                d00 = dy[uint32(p), uint32(r0 + pw)]
                m01 = int32(-1)                       # -1 never names an input
                m10 = int32(-1)
                m11 = int32(-1)
                d01 = float32(0)
                d10 = float32(0)
                d11 = float32(0)
                if pair_w:
                    m01 = mask[uint32(p), uint32(r0 + pw1)]
                    d01 = dy[uint32(p), uint32(r0 + pw1)]
                if pair_h:
                    m10 = mask[uint32(p), uint32(r1 + pw)]
                    d10 = dy[uint32(p), uint32(r1 + pw)]
                    if pair_w:
                        m11 = mask[uint32(p), uint32(r1 + pw1)]
                        d11 = dy[uint32(p), uint32(r1 + pw1)]
                if not okw:                           # a clamped duplicate column
                    m01 = int32(-1)
                    m11 = int32(-1)
                if not okh:                           # a clamped duplicate row
                    m10 = int32(-1)
                    m11 = int32(-1)
                # a mask names an input only if its window covers it: no range test per input;
                # each input's terms arrive in Caffe's row-major (ph, pw) order
                if m00 == s0:
                    g0 += d00
                if m00 == s1:
                    g1 += d00
                if m01 == s0:
                    g0 += d01
                if m01 == s1:
                    g1 += d01
                if m10 == s0:
                    g0 += d10
                if m10 == s1:
                    g1 += d10
                if m11 == s0:
                    g0 += d11
                if m11 == s1:
                    g1 += d11
                pw = int32(pw + 1 + pair_w)
            ph = int32(ph + 1 + pair_h)
        dx[uint32(p), uint32(s0)] = g0
        if has1:                                      # (s1 is the next row's first cell otherwise)
            dx[uint32(p), uint32(s1)] = g1
        p = int32(p + pstep)


# ptxas gives ave_pool_bwd_v2 53 registers (4 inlined IEEE divisions): 4 blocks of 256 per SM;
# bounded to 5 blocks it needs 45, with no spill (tests/test_ptx.py would catch one)
_AVE_BWD_OPTS = {} if SIMULATOR else {"launch_bounds": (V2_THREADS, 5)}


@cuda.jit(**_AVE_BWD_OPTS)
def ave_pool_bwd_v2(dy, dx, bounds, P, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w, pair_h, pair_w):
    """dx[p, h*W+w] = sum of dy[p, o] / pool_size(o) over the outputs o covering (h, w).

    One thread per input; the scheme of max_pool_bwd_v2 otherwise (packed bounds table, chunks
    of up to 2x2 outputs: up to 4 independent dy loads)."""
    tx = int32(cuda.threadIdx.x)
    ty = int32(cuda.threadIdx.y)
    TY = int32(cuda.blockDim.y)
    s = int32(cuda.blockIdx.x * cuda.blockDim.x + tx)
    if s >= H * W:
        return                                        # no barrier in this kernel
    h = udiv32(s, W)
    w = int32(s - h * W)
    phs, phe, pws, pwe = _cover(bounds, h, w, H)
    p = int32(cuda.blockIdx.y * TY + ty)
    pstep = int32(cuda.gridDim.y * TY)
    while p < P:
        gradient = float32(0)
        ph = phs
        while ph < phe:
            okh = ph + 1 < phe
            ph1 = int32(min(ph + 1, phe - 1))
            # Caffe's per-axis pool-size factors: the window clipped to the padded extent
            hs = int32(ph * stride_h - pad_h)
            eh0 = int32(min(hs + kernel_h, H + pad_h) - hs)
            hs = int32(ph1 * stride_h - pad_h)
            eh1 = int32(min(hs + kernel_h, H + pad_h) - hs)
            r0 = int32(ph * PW)
            r1 = int32(ph1 * PW)
            pw = pws
            while pw < pwe:
                okw = pw + 1 < pwe
                pw1 = int32(min(pw + 1, pwe - 1))
                d00 = dy[uint32(p), uint32(r0 + pw)]
                d01 = float32(0)
                d10 = float32(0)
                d11 = float32(0)
                if pair_w:                            # uniform branches: see max_pool_bwd_v2
                    d01 = dy[uint32(p), uint32(r0 + pw1)]
                if pair_h:
                    d10 = dy[uint32(p), uint32(r1 + pw)]
                    if pair_w:
                        d11 = dy[uint32(p), uint32(r1 + pw1)]
                ws = int32(pw * stride_w - pad_w)
                ew0 = int32(min(ws + kernel_w, W + pad_w) - ws)
                ws = int32(pw1 * stride_w - pad_w)
                ew1 = int32(min(ws + kernel_w, W + pad_w) - ws)
                gradient += d00 / float32(eh0 * ew0)
                if okw:
                    gradient += d01 / float32(eh0 * ew1)
                if okh:
                    gradient += d10 / float32(eh1 * ew0)
                if okh and okw:
                    gradient += d11 / float32(eh1 * ew1)
                pw = int32(pw + 1 + pair_w)
            ph = int32(ph + 1 + pair_h)
        dx[uint32(p), uint32(s)] = gradient
        p = int32(p + pstep)


@cuda.jit
def sto_pool_fwd_train_v1(x, y, idx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                          seed, stream):
    """y = the window element picked by u * (window sum) (Caffe's rule); idx = its h*W + w."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        plane = (i // (PW * PH)) * H * W             # (n*C + c) * H * W
        hstart = ph * stride_h
        wstart = pw * stride_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        r = random_word(i, seed, stream)
        u = float32(uint32(r)) * TWO_POW_M32 + HALF_TWO_POW_M32
        cumsum = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                cumsum += x[plane + h * W + w]
        thres = u * cumsum
        cumsum = _ZERO
        picked = int32(-1)
        value = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                if picked < 0:
                    v = x[plane + h * W + w]
                    cumsum += v
                    if cumsum >= thres:
                        picked = int32(h * W + w)
                        value = v
        y[i] = value
        idx[i] = picked


@cuda.jit
def sto_pool_fwd_test_v1(x, y, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w):
    """y = sum(x^2) / (FLT_MIN + sum(x)) over the window (Caffe's probability-weighted average)."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        plane = (i // (PW * PH)) * H * W
        hstart = ph * stride_h
        wstart = pw * stride_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        cumsum = FLT_MIN
        cumvalues = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                v = x[plane + h * W + w]
                cumsum += v
                cumvalues += v * v
        y[i] = cumvalues / cumsum


@cuda.jit
def sto_pool_bwd_v1(dy, idx, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w):
    """dx[n,c,h,w] = sum of dy over the outputs covering (h, w) whose picked index is h*W + w."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        out_plane = (i // (W * H)) * PH * PW
        phstart = 0 if h < kernel_h else (h - kernel_h) // stride_h + 1
        phend = min(h // stride_h + 1, PH)
        pwstart = 0 if w < kernel_w else (w - kernel_w) // stride_w + 1
        pwend = min(w // stride_w + 1, PW)
        target = h * W + w
        gradient = _ZERO
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                o = out_plane + ph * PW + pw
                if idx[o] == target:
                    gradient += dy[o]
        dx[i] = gradient


_F = float32[::1]
_I = int32[::1]
_F2 = float32[:, ::1]
_I2 = int32[:, ::1]
_GEOM = (int64,) * 11       # C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w
_GEOM2 = (int32,) * 11      # P, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w
_GEOM_STO = (int32,) * 9    # C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w

KERNELS: dict[str, tuple[Any, list]] = {
    "max_pool_fwd_v1": (max_pool_fwd_v1, [void(_F, _F, _I, *_GEOM)]),
    "max_pool_bwd_v1": (max_pool_bwd_v1, [void(_F, _I, _F, *_GEOM)]),
    "ave_pool_fwd_v1": (ave_pool_fwd_v1, [void(_F, _F, *_GEOM)]),
    "ave_pool_bwd_v1": (ave_pool_bwd_v1, [void(_F, _F, *_GEOM)]),
    "max_pool_fwd_v2": (max_pool_fwd_v2, [void(_F, _F2, _I2, *_GEOM2, int32, int32)]),
    "max_pool_bwd_v2": (max_pool_bwd_v2, [void(_F2, _I2, _F2, _I, *(int32,) * 8)]),
    "ave_pool_fwd_v2": (ave_pool_fwd_v2, [void(_F, _F2, *_GEOM2, int32, int32)]),
    "ave_pool_bwd_v2": (ave_pool_bwd_v2, [void(_F2, _F2, _I, *_GEOM2, int32, int32)]),
    "sto_pool_fwd_train_v1": (sto_pool_fwd_train_v1, [void(_F, _F, _I, *_GEOM_STO, uint64, uint64)]),
    "sto_pool_fwd_test_v1": (sto_pool_fwd_test_v1, [void(_F, _F, *_GEOM_STO)]),
    "sto_pool_bwd_v1": (sto_pool_bwd_v1, [void(_F, _I, _F, *_GEOM_STO)]),
}


# ------------------------------------------------------------------------------------- public API

def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _geometry(big: Any, small: Any, kernel, stride, pad) -> tuple[int, ...]:
    """(C, H, W, PH, PW, kh, kw, sh, sw, pad_h, pad_w) after checking the two NCHW shapes agree."""
    if len(big.shape) != 4 or len(small.shape) != 4:
        raise ValueError(f"pooling needs 4-D NCHW arrays, got {big.shape} and {small.shape}")
    N, C, H, W = big.shape
    if tuple(small.shape[:2]) != (N, C):
        raise ValueError(f"pooling input {big.shape} and output {small.shape} differ in N or C")
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    pad_h, pad_w = _pair(pad, "pad")
    if min(kh, kw, sh, sw) <= 0 or min(pad_h, pad_w) < 0:
        raise ValueError(f"pooling needs kernel > 0, stride > 0, pad >= 0; got kernel={kernel}, "
                         f"stride={stride}, pad={pad}")
    return (C, H, W, small.shape[2], small.shape[3], kh, kw, sh, sw, pad_h, pad_w)


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


@functools.lru_cache(maxsize=1024)
def _fwd_plan(P: int, H: int, W: int, PH: int, PW: int, kh: int, sh: int, pad_h: int,
              band_floats: int, threads: int, max_grid_y: int) -> tuple | None:
    """v2 forward launch: (grid, block, R, SLOT) or None when v2 cannot take the shape (a plane or
    an index past int32, or not even one output row's input rows fit the tile: v1 runs instead).

    Block (TX, TY): TX threads along a plane's outputs (a power of two >= half the band's outputs,
    so each thread computes one or two outputs; 1 for global pooling), TY planes per block sharing
    the tile (small planes: their TY planes are one contiguous range, loaded by all TX*TY threads).
    R output rows per band: all PH when TY whole planes fit the tile, else (TY = 1) the most rows
    whose input rows ((R-1)*stride + kernel) * W fit."""
    if max(P + threads, H * W, PH * PW, (H + 2 * pad_h) * W) > INT32_MAX:   # P + TY - 1 too
        return None
    tx = min(threads, _pow2_at_least(ceil_div(PH * PW, 2)))
    if H * W <= band_floats:
        R = PH
        ty = max(1, min(threads // tx, band_floats // (H * W)))
        while tx * ty * 2 <= threads:       # the tile limits the planes: widen TX, so that the
            tx *= 2                         # whole block still shares the load
        slot = H * W
    else:
        tx, ty = threads, 1
        R = min(PH, (band_floats // W - kh) // sh + 1)
        if R < 1:
            return None
        slot = min((R - 1) * sh + kh, H) * W
    grid = (ceil_div(PH, R), min(ceil_div(P, ty), max_grid_y))
    return grid, (tx, ty), R, slot


@functools.lru_cache(maxsize=1024)
def _bwd_plan(P: int, H: int, W: int, PH: int, PW: int, threads: int,
              max_grid_y: int) -> tuple | None:
    """v2 backward launch: (grid, block), one thread per input element, TX along the plane (the
    fewest warps, up to ``threads``, that cover it in as few blocks as ``threads`` would: pool1's
    1540 input pairs run as 7 x 224, not 7 x 256), TY = threads // TX planes per block (small
    planes); None past int32 or
    with a side of 32768+ (the bounds table packs two 16-bit fields)."""
    # p + gridDim.y*TY must not wrap; the table packs two 16-bit fields
    if max(P + max_grid_y * threads, H * W, PH * PW) > INT32_MAX or max(H, W, PH, PW) >= 2**15:
        return None
    nx = ceil_div(H * W, threads)                     # blocks along the plane
    tx = 32 * ceil_div(H * W, 32 * nx)                # the fewest warps covering it in nx blocks
    ty = max(1, threads // tx)
    return (ceil_div(H * W, tx), min(ceil_div(P, ty), max_grid_y)), (tx, ty)


def _bwd_pairs_plan(P: int, H: int, W: int, PH: int, PW: int, threads: int,
                    max_grid_y: int) -> tuple | None:
    """max_pool_bwd_v2's launch: ``_bwd_plan`` over H x ceil(W/2) pairs of inputs."""
    if _bwd_plan(P, H, W, PH, PW, threads, max_grid_y) is None:
        return None
    return _bwd_plan(P, H, ceil_div(W, 2), PH, PW, threads, max_grid_y)


@functools.lru_cache(maxsize=256)
def _bounds_table(H: int, W: int, PH: int, PW: int, kh: int, kw: int, sh: int, sw: int,
                  pad_h: int, pad_w: int) -> tuple[Any, int, int, int]:
    """(table, pair_h, pair_w, pair_w2). table: device int32 (H+W,), entry h = phstart | phend << 16
    where [phstart, phend) are the outputs whose window covers input row h (Caffe's formulas),
    then the same for each column w. pair_*: 1 when some input is covered by 2+ windows along
    that axis (the kernels then visit outputs in pairs); pair_w2: the same for the union of the
    column pairs (2j, 2j+1) (max_pool_bwd_v2). Cached per geometry (uploaded once)."""
    def axis(size, k, s, pad, out):
        pos = np.arange(size, dtype=np.int64) + pad
        start = np.where(pos < k, 0, (pos - k) // s + 1)
        end = np.minimum(pos // s + 1, out)
        return start, end
    hs, he = axis(H, kh, sh, pad_h, PH)
    ws, we = axis(W, kw, sw, pad_w, PW)
    pair_w2 = (we[np.minimum(np.arange(0, W, 2) + 1, W - 1)] - ws[::2]).max(initial=0) > 1
    table = np.concatenate([hs | (he << 16), ws | (we << 16)]).astype(np.int32)
    return (cuda.to_device(table), int((he - hs).max(initial=0) > 1),
            int((we - ws).max(initial=0) > 1), int(pair_w2))


def _planes(a: Any, dtype: Any) -> Any:
    """The 4-D device array ``a`` viewed as (N*C, H*W), after checking its dtype."""
    if a.dtype != dtype:
        raise TypeError(f"expected a {np.dtype(dtype).name} array, got {a.dtype}")
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2] * a.shape[3])


def _i32(*values: int) -> list:
    return [np.int32(v) for v in values]


def _fwd_v2(kernel, big, small, geom, *extra) -> bool:
    """Launch a v2 forward kernel; False (nothing launched) when the shape needs v1."""
    C, H, W, PH, PW, kh, kw, sh, sw, pad_h, pad_w = geom
    P = big.shape[0] * C
    plan = _fwd_plan(P, H, W, PH, PW, kh, sh, pad_h, _BAND_FLOATS, V2_THREADS, _MAX_GRID_Y)
    if plan is None:
        return False
    if P * PH * PW == 0:
        return True
    grid, block, R, slot = plan
    kernel[grid, block](flat_checked("pooling", big), _planes(small, np.float32), *extra,
                        *_i32(P, H, W, PH, PW, kh, kw, sh, sw, pad_h, pad_w, R, slot))
    return True


def max_pool_fwd(x: Any, y: Any, mask: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Max pooling: y (N,C,PH,PW) = max of x (N,C,H,W) over each window (Caffe's clipping, first
    max on ties); mask (N,C,PH,PW) int32 receives the argmax as h*W+w in the input plane (-1 when
    a window holds nothing above -FLT_MAX). PH, PW are taken from y's shape. ``kernel``,
    ``stride``, ``pad``: an int or an (h, w) pair."""
    x, y, mask = as_device(x), as_device(y), as_device(mask)
    geom = _geometry(x, y, kernel, stride, pad)
    if tuple(mask.shape) != tuple(y.shape):
        raise ValueError(f"max pool mask shape {mask.shape} != output shape {y.shape}")
    yf = flat_checked("pooling", y)
    mf = flat_checked("pooling", mask, dtype=np.int32)
    xf = flat_checked("pooling", x)
    if PROMOTED["max_pool_fwd"] == "v2" and _fwd_v2(max_pool_fwd_v2, x, y, geom, _planes(mask, np.int32)):
        return
    launch_1d(max_pool_fwd_v1, yf.size, xf, yf, mf, *geom)


def max_pool_bwd(dy: Any, mask: Any, dx: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Max pooling backward: dx (N,C,H,W) = dy (N,C,PH,PW) routed to the argmax recorded in mask
    by ``max_pool_fwd`` (summed where windows overlap); dx is overwritten."""
    dy, mask, dx = as_device(dy), as_device(mask), as_device(dx)
    geom = _geometry(dx, dy, kernel, stride, pad)
    if tuple(mask.shape) != tuple(dy.shape):
        raise ValueError(f"max pool mask shape {mask.shape} != top diff shape {dy.shape}")
    dxf = flat_checked("pooling", dx)
    dyf = flat_checked("pooling", dy)
    mf = flat_checked("pooling", mask, dtype=np.int32)
    C, H, W, PH, PW = geom[:5]
    P = dx.shape[0] * C
    v2 = PROMOTED["max_pool_bwd"] == "v2"
    plan = _bwd_pairs_plan(P, H, W, PH, PW, V2_THREADS, _MAX_GRID_Y) if v2 else None
    if plan is None:
        launch_1d(max_pool_bwd_v1, dxf.size, dyf, mf, dxf, *geom)
    elif dxf.size:
        grid, block = plan
        table, pair_h, _, pair_w2 = _bounds_table(*geom[1:])
        max_pool_bwd_v2[grid, block](_planes(dy, np.float32), _planes(mask, np.int32),
                                     _planes(dx, np.float32), table,
                                     *_i32(P, H, W, PH, PW, ceil_div(W, 2), pair_h, pair_w2))


def ave_pool_fwd(x: Any, y: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Average pooling: y (N,C,PH,PW) = sum of x (N,C,H,W) over each clipped window divided by
    Caffe's pool_size (the window clipped to the padded extent H+pad, W+pad)."""
    x, y = as_device(x), as_device(y)
    geom = _geometry(x, y, kernel, stride, pad)
    yf = flat_checked("pooling", y)
    xf = flat_checked("pooling", x)
    if PROMOTED["ave_pool_fwd"] == "v2" and _fwd_v2(ave_pool_fwd_v2, x, y, geom):
        return
    launch_1d(ave_pool_fwd_v1, yf.size, xf, yf, *geom)


def ave_pool_bwd(dy: Any, dx: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Average pooling backward: dx (N,C,H,W) = sum over covering windows of dy / pool_size;
    dx is overwritten."""
    dy, dx = as_device(dy), as_device(dx)
    geom = _geometry(dx, dy, kernel, stride, pad)
    dxf = flat_checked("pooling", dx)
    dyf = flat_checked("pooling", dy)
    C, H, W, PH, PW = geom[:5]
    P = dx.shape[0] * C
    v2 = PROMOTED["ave_pool_bwd"] == "v2"
    plan = _bwd_plan(P, H, W, PH, PW, V2_THREADS, _MAX_GRID_Y) if v2 else None
    if plan is None:
        launch_1d(ave_pool_bwd_v1, dxf.size, dyf, dxf, *geom)
    elif dxf.size:
        grid, block = plan
        table, pair_h, pair_w, _ = _bounds_table(*geom[1:])
        ave_pool_bwd_v2[grid, block](_planes(dy, np.float32), _planes(dx, np.float32), table,
                                     *_i32(P, *geom[1:], pair_h, pair_w))


def uniform_host(n: int, seed: int, stream: int) -> np.ndarray:
    """The n float32 uniforms in (0, 1] the TRAIN kernel draws for outputs 0..n-1 of (seed,
    stream): cuRAND's r * 2^-32 + 2^-33 of the Philox words (for the cpu backend)."""
    r = random_uint32_host(n, seed, stream)
    return r.astype(np.float32) * TWO_POW_M32 + HALF_TWO_POW_M32


def sto_pool_fwd_train(x: Any, y: Any, idx: Any, kernel: tuple[int, int], stride: tuple[int, int],
                       seed: int, stream: int) -> None:
    """TRAIN forward: y (N,C,PH,PW) = the element of each window of x (N,C,H,W) picked with
    probability proportional to its value (Caffe's cumulative-sum rule, u from Philox(seed,
    stream)); idx (int32, y's shape) = its h*W + w (-1 when nothing was picked)."""
    x, y, idx = as_device(x), as_device(y), as_device(idx)
    geom = _i32(*_geometry(x, y, kernel, stride, 0)[:9])
    if tuple(idx.shape) != tuple(y.shape):
        raise ValueError(f"stochastic pooling index shape {idx.shape} != output shape {y.shape}")
    who = "sto_pool_fwd_train"
    launch_1d(sto_pool_fwd_train_v1, y.size, flat_checked(who, x), flat_checked(who, y),
              flat_checked(who, idx, dtype=np.int32), *geom, np.uint64(seed), np.uint64(stream))


def sto_pool_fwd_test(x: Any, y: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """TEST forward: y = sum(x^2) / (FLT_MIN + sum(x)) over each window."""
    x, y = as_device(x), as_device(y)
    geom = _i32(*_geometry(x, y, kernel, stride, 0)[:9])
    launch_1d(sto_pool_fwd_test_v1, y.size, flat_checked("sto_pool_fwd_test", x),
              flat_checked("sto_pool_fwd_test", y), *geom)


def sto_pool_bwd(dy: Any, idx: Any, dx: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """Backward: dx (N,C,H,W) = dy routed to the picked elements (summed where windows overlap);
    dx is overwritten."""
    dy, idx, dx = as_device(dy), as_device(idx), as_device(dx)
    geom = _i32(*_geometry(dx, dy, kernel, stride, 0)[:9])
    if tuple(idx.shape) != tuple(dy.shape):
        raise ValueError(f"stochastic pooling index shape {idx.shape} != top diff shape {dy.shape}")
    who = "sto_pool_bwd"
    launch_1d(sto_pool_bwd_v1, dx.size, flat_checked(who, dy), flat_checked(who, idx, dtype=np.int32),
              flat_checked(who, dx), *geom)
