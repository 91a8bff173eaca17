"""Dropout (Caffe's DropoutLayer, TRAIN phase) with a counter-based random generator.

Math (x, y, dy, dx float32, any shape with the same number of elements, flattened C order;
mask uint8 of the same size):
    r[i]    = 32-bit random integer for element i (below)
    mask[i] = r[i] > uint_thres,   uint_thres = (unsigned)(UINT_MAX * ratio) computed in float32
              as Caffe does (so P(keep) = 1 - ratio up to 2^-24)
    y[i]    = x[i] * mask[i] * scale,   scale = 1 / (1 - ratio)  (rounded to float32)
    dx[i]   = dy[i] * mask[i] * scale
(TEST phase is the identity; the layer copies.)

Random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC'11; checked against Random123's known-answer vectors). Element i takes word (i mod 4) of
    Philox4x32-10(counter = (g lo, g hi, stream lo, stream hi), key = (seed lo, seed hi)),
    g = i div 4,
so r[i] depends only on (seed, stream, i): the same seed gives the same mask for any launch
geometry, on any GPU, and on the host: ``philox4x32_10`` / ``random_uint32_host`` /
``dropout_mask_host`` below run the identical integer arithmetic in vectorized numpy, so the CPU
backend produces the SAME mask bit for bit (tested). ``stream`` (64 bits) separates independent
sequences under one seed (e.g. layer index and iteration). The bits are not Caffe's (Caffe draws
from cuRAND's generator state, which no other program reproduces); the distribution is the same.

All Philox arithmetic uses uint64 values holding 32-bit words: the 32x32-bit products fit in 64
bits and sums are masked to 32 bits, so nothing overflows (also in the simulator and numpy).

Versions (``PROMOTED``: v2 for both; v1 runs for 2**31 elements or more, past v2's uint32 indices):
    dropout_fwd_v1   one thread per group of 4 consecutive elements: one Philox call gives the 4
                     words; writes mask and y
    dropout_bwd_v1   one thread per element: dx = dy * mask * scale
    dropout_fwd_v2   the same stream bit for bit (same counter/key -> same words -> same mask),
                     with Philox in 32-bit words: each 32x32 product is one mul.wide.u32
                     (uint64(a) * uint64(b) of zero-extended words) whose halves are taken with a
                     shift and a truncation, key bumps and XORs are 32-bit, the group loop index is a
                     uint32 -- v1 keeps every word in a uint64 (64-bit multiplies, masks, compares).
                     The 4 x loads of a group are issued before the Philox rounds so their latency
                     hides behind the integer math
    dropout_bwd_v2   the ``kernels._elementwise`` map2 template (uint32, unrolled by 4)

Launch geometry: 1-D grid-stride loops, DROPOUT_THREADS threads per block over ceil(n/4) groups
(forward) or n elements (backward), block counts from ``kernels._launch.grid_1d`` (v2 backward:
``kernels._elementwise.configured_v2``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, uint8, uint32, uint64, void
from numba.cuda import libdevice

from kernels import _elementwise as ew
from kernels._launch import SIMULATOR, as_device, grid_1d

DROPOUT_THREADS = 256       # threads per block for both kernels
PHILOX_ROUNDS = 10
_ZERO32 = float32(0.0)

# Philox-4x32 constants (Random123): multipliers and Weyl key increments, as uint64 so that numba
# keeps every operation in unsigned 64-bit integers
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
# v2: the same constants as 32-bit words
PHILOX_M0_32 = np.uint32(0xD2511F53)
PHILOX_M1_32 = np.uint32(0xCD9E8D57)
PHILOX_W0_32 = np.uint32(0x9E3779B9)
PHILOX_W1_32 = np.uint32(0xBB67AE85)


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit(device=True, inline=True)
def philox_words(g, seed, stream):
    """The four 32-bit words (each held in a uint64) of Philox4x32-10 at counter (g lo, g hi,
    stream lo, stream hi), key (seed lo, seed hi): the device twin of ``philox4x32_10``."""
    gu = uint64(g)
    c0 = gu & MASK32
    c1 = gu >> SHIFT32
    c2 = stream & MASK32
    c3 = stream >> SHIFT32
    k0 = seed & MASK32
    k1 = seed >> SHIFT32
    for _ in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> SHIFT32) ^ c1 ^ k0, p1 & MASK32,
                          (p0 >> SHIFT32) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + PHILOX_W0) & MASK32          # key schedule (the last bump is unused)
        k1 = (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


@cuda.jit(device=True, inline=True)
def random_word(i, seed, stream):
    """Element i's 32-bit draw: word (i mod 4) of ``philox_words(i div 4, seed, stream)`` (the
    device twin of ``random_uint32_host``; stochastic pooling draws from it too)."""
    c0, c1, c2, c3 = philox_words(uint64(i) >> uint64(2), seed, stream)
    j = uint64(i) & uint64(3)
    if j == 0:
        return c0
    if j == 1:
        return c1
    if j == 2:
        return c2
    return c3


@cuda.jit
def dropout_fwd_v1(x, y, mask, uint_thres, scale, seed, stream):
    """mask[i] = philox word (i mod 4) of group i div 4 > uint_thres; y = x * mask * scale."""
    n = x.size
    groups = (n + 3) // 4
    for g in range(cuda.grid(1), groups, cuda.gridsize(1)):
        c0, c1, c2, c3 = philox_words(g, seed, stream)
        base = g * 4
        for j in range(4):
            i = base + j
            if i < n:
                if j == 0:
                    r = c0
                elif j == 1:
                    r = c1
                elif j == 2:
                    r = c2
                else:
                    r = c3
                keep = r > uint_thres
                mask[i] = uint8(1) if keep else uint8(0)
                y[i] = x[i] * float32(keep) * scale


@cuda.jit
def dropout_bwd_v1(dy, mask, dx, scale):
    """dx = dy * mask * scale."""
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * float32(mask[i]) * scale


if SIMULATOR:   # libdevice has no simulator implementation: the same value in integer Python
    @cuda.jit(device=True)
    def _umulhi(a, b):
        """High 32 bits of the 64-bit product of two 32-bit words."""
        return uint32((uint64(a) * uint64(b)) >> SHIFT32)
else:
    @cuda.jit(device=True, inline=True)
    def _umulhi(a, b):
        """High 32 bits of the 64-bit product of two 32-bit words (one mul.hi.u32)."""
        return uint32(libdevice.umulhi(a, b))


@cuda.jit
def dropout_fwd_v2(x, y, mask, n, uint_thres, scale, seed, stream):
    """Same mask as v1: word (i mod 4) of Philox4x32-10(ctr (i div 4, 0, stream), key seed) >
    uint_thres; 32-bit Philox words (mul.wide.u32), uint32 group index; y = x * mask * scale."""
    n = uint32(n)
    thres = uint32(uint_thres)
    groups = uint32((n + uint32(3)) >> uint32(2))
    stride = uint32(cuda.gridDim.x * cuda.blockDim.x)
    c2_0 = uint32(stream & MASK32)
    c3_0 = uint32(stream >> SHIFT32)
    k0_0 = uint32(seed & MASK32)
    k1_0 = uint32(seed >> SHIFT32)
    g = uint32(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x)
    while g < groups:
        base = uint32(g << uint32(2))
        full = uint32(base + uint32(3)) < n
        # the group's x loads go out before the Philox rounds (their latency hides behind them)
        x0 = x[base]
        x1 = x[uint32(base + uint32(1))] if full else _ZERO32
        x2 = x[uint32(base + uint32(2))] if full else _ZERO32
        x3 = x[uint32(base + uint32(3))] if full else _ZERO32
        c0 = g
        c1 = uint32(0)              # the high word of the group index (g < 2**30)
        c2 = c2_0
        c3 = c3_0
        k0 = k0_0
        k1 = k1_0
        for _ in range(PHILOX_ROUNDS):
            # high and low halves of the two 32x32-bit products as 32-bit ops (mul.hi.u32 and
            # mul.lo.u32); every word re-wrapped in uint32 (numba would widen the XORs to uint64)
            hi0 = _umulhi(PHILOX_M0_32, c0)
            lo0 = uint32(uint64(PHILOX_M0_32) * uint64(c0))   # (the uint64 casts only keep
            hi1 = _umulhi(PHILOX_M1_32, c2)
            lo1 = uint32(uint64(PHILOX_M1_32) * uint64(c2))   # numpy from warning in the simulator)
            c0, c1, c2, c3 = (uint32(hi1 ^ c1 ^ k0), lo1, uint32(hi0 ^ c3 ^ k1), lo0)
            k0 = uint32(uint64(k0) + uint64(PHILOX_W0_32))    # key schedule, wrapping in 32 bits
            k1 = uint32(uint64(k1) + uint64(PHILOX_W1_32))
        if full:
            keep0 = c0 > thres
            keep1 = c1 > thres
            keep2 = c2 > thres
            keep3 = c3 > thres
            mask[base] = uint8(1) if keep0 else uint8(0)
            mask[uint32(base + uint32(1))] = uint8(1) if keep1 else uint8(0)
            mask[uint32(base + uint32(2))] = uint8(1) if keep2 else uint8(0)
            mask[uint32(base + uint32(3))] = uint8(1) if keep3 else uint8(0)
            y[base] = x0 * float32(keep0) * scale
            y[uint32(base + uint32(1))] = x1 * float32(keep1) * scale
            y[uint32(base + uint32(2))] = x2 * float32(keep2) * scale
            y[uint32(base + uint32(3))] = x3 * float32(keep3) * scale
        else:                       # the last, partial group (n not a multiple of 4)
            for j in range(4):
                i = uint32(base + uint32(j))
                if i < n:
                    if j == 0:
                        r = c0
                    elif j == 1:
                        r = c1
                    elif j == 2:
                        r = c2
                    else:
                        r = c3
                    keep = r > thres
                    mask[i] = uint8(1) if keep else uint8(0)
                    y[i] = x[i] * float32(keep) * scale
        g = uint32(g + stride)


@cuda.jit(device=True, inline=True)
def _masked(g, m, scale, p1, p2):
    return g * float32(m) * scale


dropout_bwd_v2 = ew.map2_v2(_masked, "dx = dy * mask * scale (a = dy, b = uint8 mask, p0 = scale); "
                         "uint32 indices, unrolled by 4.")

_F = float32[::1]
_M = uint8[::1]

PROMOTED: dict[str, str] = {"dropout_fwd": "v2", "dropout_bwd": "v2"}

KERNELS: dict[str, tuple[Any, list]] = {
    "dropout_fwd_v1": (dropout_fwd_v1, [void(_F, _F, _M, uint64, float32, uint64, uint64)]),
    "dropout_bwd_v1": (dropout_bwd_v1, [void(_F, _M, _F, float32)]),
    "dropout_fwd_v2": (dropout_fwd_v2, [void(_F, _F, _M, uint32, uint32, float32, uint64, uint64)]),
    "dropout_bwd_v2": (dropout_bwd_v2, [void(_F, _M, _F, uint32, float32, float32, float32)]),
}


# ----------------------------------------------------------------------------- host constants

def _check_ratio(ratio: float) -> np.float32:
    r = np.float32(ratio)
    if not 0 <= r < 1:
        raise ValueError(f"dropout_ratio must be in [0, 1) (Caffe CHECKs it), got {ratio}")
    return r


def uint_threshold(ratio: float) -> int:
    """Caffe's uint_thres_ = static_cast<unsigned int>(UINT_MAX * threshold_), in float32."""
    return int(np.float32(np.uint32(0xFFFFFFFF)) * _check_ratio(ratio))


def dropout_scale(ratio: float) -> float:
    """Caffe's scale_ = 1. / (1. - threshold_), stored as float32."""
    return float(np.float32(1.0 / (1.0 - float(_check_ratio(ratio)))))


def _u64(v: int, name: str) -> np.uint64:
    v = int(v)
    if not 0 <= v < 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return np.uint64(v)


# ------------------------------------------------------------------------------- host generator

def philox4x32_10(counter: np.ndarray, key: np.ndarray, rounds: int = PHILOX_ROUNDS) -> np.ndarray:
    """Philox-4x32 in vectorized numpy: counter (4, ...) and key (2, ...) arrays of 32-bit values
    (any unsigned dtype, broadcastable) -> (4, ...) uint32 outputs."""
    c0, c1, c2, c3 = (np.asarray(w, np.uint64) for w in counter)
    k0, k1 = (np.asarray(w, np.uint64) for w in key)
    for _ in range(rounds):
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> SHIFT32) ^ c1 ^ k0, p1 & MASK32,
                          (p0 >> SHIFT32) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3)).astype(np.uint32)


def random_uint32_host(n: int, seed: int, stream: int = 0) -> np.ndarray:
    """The n 32-bit words the dropout kernel draws for (seed, stream): element i is word i mod 4 of
    Philox4x32-10 at counter (i div 4, stream), key seed."""
    seed, stream = _u64(seed, "seed"), _u64(stream, "stream")
    g = np.arange((n + 3) // 4, dtype=np.uint64)
    out = philox4x32_10((g & MASK32, g >> SHIFT32, stream & MASK32, stream >> SHIFT32),
                        (seed & MASK32, seed >> SHIFT32))
    return out.T.reshape(-1)[:n]


def dropout_mask_host(n: int, ratio: float, seed: int, stream: int = 0) -> np.ndarray:
    """The uint8 keep mask (1 = kept) the device kernel produces for n elements, computed on the
    host with the same integer arithmetic (for the CPU backend: same seed, same mask)."""
    return (random_uint32_host(n, seed, stream) > np.uint32(uint_threshold(ratio))).astype(np.uint8)


# ------------------------------------------------------------------------------------- public API

def _flat(arr: Any, dtype: Any, n: int | None = None) -> Any:
    d = as_device(arr)
    if d.dtype != dtype:
        raise TypeError(f"dropout expects a {np.dtype(dtype).name} array, got {d.dtype}")
    if n is not None and d.size != n:
        raise ValueError(f"dropout arrays differ in size ({d.size} != {n})")
    return d.reshape(d.size)


def dropout_fwd(x: Any, y: Any, mask: Any, ratio: float, seed: int, stream: int = 0) -> None:
    """TRAIN-phase dropout: mask (uint8, 1 = kept) from Philox(seed, stream) and
    y = x * mask / (1 - ratio); x, y float32 and mask of the same size (y may be x). Every
    version draws the same mask for the same (seed, stream)."""
    xf = _flat(x, np.float32)
    yf = _flat(y, np.float32, xf.size)
    mf = _flat(mask, np.uint8, xf.size)
    if xf.size == 0:
        return
    if ew.runnable(PROMOTED["dropout_fwd"], xf.size) == "v2":
        blocks, threads = grid_1d((xf.size + 3) // 4, DROPOUT_THREADS)
        dropout_fwd_v2[blocks, threads](xf, yf, mf, np.uint32(xf.size),
                                        np.uint32(uint_threshold(ratio)),
                                        np.float32(dropout_scale(ratio)), _u64(seed, "seed"),
                                        _u64(stream, "stream"))
        return
    blocks, threads = grid_1d((xf.size + 3) // 4, DROPOUT_THREADS)
    dropout_fwd_v1[blocks, threads](xf, yf, mf, np.uint64(uint_threshold(ratio)),
                                    np.float32(dropout_scale(ratio)), _u64(seed, "seed"),
                                    _u64(stream, "stream"))


def dropout_bwd(dy: Any, mask: Any, dx: Any, ratio: float) -> None:
    """Dropout backward: dx = dy * mask / (1 - ratio) (dx may be dy)."""
    dyf = _flat(dy, np.float32)
    mf = _flat(mask, np.uint8, dyf.size)
    dxf = _flat(dx, np.float32, dyf.size)
    if dyf.size == 0:
        return
    if ew.runnable(PROMOTED["dropout_bwd"], dyf.size) == "v2":
        z = np.float32(0)
        ew.configured_v2(dropout_bwd_v2, dyf.size, DROPOUT_THREADS)(
            dyf, mf, dxf, np.uint32(dyf.size), np.float32(dropout_scale(ratio)), z, z)
        return
    blocks, threads = grid_1d(dyf.size, DROPOUT_THREADS)
    dropout_bwd_v1[blocks, threads](dyf, mf, dxf, np.float32(dropout_scale(ratio)))
