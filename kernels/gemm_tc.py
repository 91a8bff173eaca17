"""Tensor-core GEMM: ``C = alpha * op(A) @ op(B) + beta * C`` with FP32 operands and result, the
products on the tensor cores (``mma.sync``) with TF32, FP16 or BF16 inputs and FP32 accumulation.

Same contract as ``kernels.gemm.gemm`` (row-major BLAS sgemm semantics; ``op(A)`` (M, K), ``op(B)``
(K, N), ``C`` (M, N); any M, N, K >= 1; operands may be row-strided 2-D views with unit last
stride; ``beta == 0`` never reads C) plus ``precision``:

- ``"tf32"``: each FP32 input is rounded to TF32 (``cvt.rna.tf32.f32``: 10 explicit mantissa bits,
  FP32's exponent range) and multiplied with ``mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32``
  (what cuBLAS/cuDNN do when PyTorch's ``allow_tf32`` is on);
- ``"fp16"`` / ``"bf16"``: the FP32 inputs are converted to FP16 / BF16 (round to nearest even)
  when they are staged into shared memory -- the caller's arrays stay FP32 -- and multiplied with
  ``mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}``. FP16 overflows beyond 65504 (inf) and
  loses relative precision below 6.1e-5; BF16 keeps FP32's range with 7 mantissa bits.

The primitives (intrinsics emitting inline PTX, and their simulator emulation with the PTX ISA's
fragment layouts) are in ``kernels/_mma.py``.

Versions (``KERNELS``; names ``gemm_tc_v<N>_<precision>_<BM>_<BN>_<BK>``, BK in k values):

- ``v1``: readable baseline (TF32 only). Block tile BM x BN; K-tiles of 16 32-bit words per row
  in shared memory (16 k for TF32, 32 for FP16/BF16 -- 8 words = 16 k for FP16/BF16 on the 128x128
  tile, whose prefetch of two FP32 values per word would not fit 128 registers otherwise); register
  prefetch of the next K-tile while the current one is multiplied and double-buffered shared memory
  (one barrier per K-tile, as ``kernels.gemm`` v4-v9). Warps tile the block as (BM/WM) x (BN/WN)
  sub-tiles, each an (WM/16) x (WN/8) grid of m16n8 mma tiles whose FP32 accumulators stay in
  registers. Fragments are read with scalar ``ld.shared.u32`` (4 per A tile, 2 per B tile per
  mma step).
- ``v2`` (launched by ``gemm``): v1 reading the fragments with ``ldmatrix.x4`` -- one instruction
  per A tile (16 x 8 words) and per pair of B tiles, 4x fewer shared-load instructions -- and
  loading whole K-tiles of interior blocks by flat offsets (as ``kernels.gemm`` v9: the offset of
  the thread's first value set up once, the K-tile's start one multiply-add away, the other values
  walked by adds) instead of v1's ``row * pitch + column`` per load.
- ``v2k``: v2 with split-K (grid z = K slices, partials into a workspace summed in a fixed order by
  ``kernels.gemm.splitk_reduce_v1``), for the small M x N, long-K GEMMs of convolution weight
  gradients.

Fragment layouts (PTX ISA, g = lane >> 2, t = lane % 4). m16n8k8 .tf32: a0..a3 = A[g][t],
A[g+8][t], A[g][t+4], A[g+8][t+4]; b0, b1 = B[t][g], B[t+4][g]. m16n8k16 .f16/.bf16: the same
positions counted in 32-bit words of two k values (lower k in the low half): A words A[g][2t..2t+1],
A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]; B words B[2t..2t+1][g], B[2t+8..][g]. C/D (.f32, both):
c0..c3 = C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1].

Shared-memory layout: both operands k-contiguous, ``As[m][kw]`` and ``Bs[n][kw]`` (kw = word along
k), rows padded by 4 words (a row stride SW of 20, or 12). A lane's fragment words are then
``As[(g (+8)) * SW + t (+4)]`` and ``Bs[g * SW + t (+4)]`` for every precision, and ``ldmatrix``
reads 8 rows of 16 bytes per matrix: with a row stride of 4 times an odd number of words the 8
rows of a group start in 8 distinct 4-bank groups, so both are conflict-free. Staging: a thread
owns L = BX * words / threads words of an operand tile in one word column, rows x0 + l *
threads / words. When the operand is k-contiguous in global memory (A not transposed, B
transposed) consecutive threads take consecutive words of a row (coalesced); otherwise a warp
takes 8 rows x 4 words (8 consecutive m or n of each of 4 k rows: whole 32-byte sectors, and the
warp's shared stores hit 32 distinct banks). The conversion (TF32 rounding, FP16/BF16 pair
packing) happens on the register -> shared store, once per element; this is why there is no
``cp.async`` (global -> shared without registers): it cannot convert, so every fragment word
would be rounded again at each of its reads (each A word is read by every warp along n).

Launch geometry: grid (ceil(N/BN), ceil(M/BM)[, slices]), 1-D blocks of 32 * (BM/WM) * (BN/WN)
threads; tiles in ``CONFIGS`` (128x128 with 8 warps of 64x32 and launch bounds for 2 blocks per
SM, 64x64 with 4 warps of 32x32, 32x32 with 4 of 16x16). ``plan(M, N, K)`` picks the tile with
``kernels.gemm.select_config``'s rule (the largest filling two waves of 132 SMs at 75 % use, ...)
and split-K with ``kernels.gemm``'s rule (slices for about two waves when the 64x64 tiles are
fewer than the SMs and K >= 2048).

Error bound (the tests use it; ``tests/reference/mma.py: gemm_error_bound``). Let u be the input
format's unit roundoff (TF32 and FP16: 2^-11, 10 explicit mantissa bits with round to nearest;
BF16: 2^-8), eta half its subnormal spacing (FP16: 2^-25; TF32/BF16: below FP32's own, < 2^-133),
u32 = 2^-23 (one FP32 operation with truncation: the tensor cores' alignment may truncate; round
to nearest would be 2^-24), gamma_n = n u32 / (1 - n u32). Rounding an input a gives
|a' - a| <= u|a| + eta, so one product obeys |a'b' - ab| <= (2u + u^2)|a||b| + eta(1 + u)(|a| + |b|)
+ eta^2. The tensor core forms the products exactly and adds a k-deep block of them (k = 8 TF32,
16 FP16/BF16) to the accumulator with at most k + 1 FP32 roundings, each bounded by u32 times the
sum of the magnitudes so far; over ceil(K/k) + S blocks (S split-K slices, each padded to whole
blocks), the S - 1 additions of the split-K reduction and the epilogue's multiply and add, the
computed C' satisfies, elementwise,

    |C' - C| <= |alpha| [ (2u + u^2 + gamma_n) (|op(A)| |op(B)|) + eta (1 + u)(rowsum|op(A)| +
                colsum|op(B)|) + K eta^2 ] + gamma_2 |beta| |C|,   n = (k+1)(ceil(K/k) + S) + S + 2.

For TF32 at K = 4096 this is about (9.8e-4 + 5.5e-4) (|A||B|): a relative error of ~1.5e-3 of
|A||B|, against ~K u32/2 = 2.4e-4 (worst case) for an FP32 GEMM.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, uint32, uint64

from . import gemm as _fp32
from ._launch import SIMULATOR, as_device, ceil_div, grid_1d
from ._mma import ldmatrix_x4, mma_bf16, mma_f16, mma_tf32, pack_bf16x2, pack_f16x2, tf32_round
from .gemm import SMS, SPLITK_MAX, SPLITK_MIN_K, SPLITK_MIN_SLICE

PRECISIONS = ("tf32", "fp16", "bf16")
KPW = {"tf32": 1, "fp16": 2, "bf16": 2}     # k values per 32-bit word of a fragment

BKW = 16           # 32-bit words per shared row of a K-tile (two mma k-steps of 8 words) ...
BKW_HALF_128 = 8   # ... except FP16/BF16 on the 128x128 tile: one k-step (16 k), so that the
                   # prefetched FP32 values (two per word) fit 128 registers as TF32's do
SW_PAD = 4         # words of padding per shared row: a row stride of 20 (or 12) words puts the
                   # 8 rows an mma fragment / ldmatrix reads in 8 distinct 4-bank groups
SMEM_ALIGN = None if SIMULATOR else 16   # ldmatrix reads 16-byte rows


@dataclass(frozen=True)
class TcConfig:
    """Block tile BM x BN of the tensor-core kernels, split into warp tiles WM x WN (each warp an
    (WM/16) x (WN/8) grid of m16n8 mma tiles). ``threads = 32 * (BM/WM) * (BN/WN)``."""
    BM: int
    BN: int
    WM: int
    WN: int
    min_blocks: int = 0     # launch bounds: ask ptxas to fit this many blocks per SM (0: none)

    @property
    def threads(self) -> int:
        return 32 * (self.BM // self.WM) * (self.BN // self.WN)

    @property
    def block(self) -> tuple[int, int]:
        return self.threads, 1

    def smem_bytes(self, precision: str) -> int:
        """Shared memory: two buffers of the A and B tiles (32-bit words, padded rows)."""
        return 2 * 4 * (tile_words(self, precision) + SW_PAD) * (self.BM + self.BN)


CONFIGS: dict[str, TcConfig] = {
    "128x128": TcConfig(128, 128, 64, 32, min_blocks=2),  # 8 warps of 64x32 (4x4 mma tiles), 40 KiB
    "64x64": TcConfig(64, 64, 32, 32),                    # 4 warps of 32x32 (2x4), 20 KiB
    "32x32": TcConfig(32, 32, 16, 16),                    # 4 warps of 16x16 (1x2): tiny problems
}
_BY_SIZE = ("128x128", "64x64")


def tile_words(cfg: TcConfig, precision: str) -> int:
    """32-bit words per shared row of a K-tile (BKW, or BKW_HALF_128 for FP16/BF16 at 128x128)."""
    return BKW_HALF_128 if (precision != "tf32" and cfg.BM == cfg.BN == 128) else BKW

_MMA = {"tf32": mma_tf32, "fp16": mma_f16, "bf16": mma_bf16}


def _flat_load():
    """``flat_load(X, o, ld)``: the element at flat offset ``o`` of a row-strided 2-D array with row
    pitch ``ld`` elements (element (r, c) at r*ld + c). On a GPU ``X[0, o]``: numba computes
    ``data + o*4`` with no bounds or wraparound code. The simulator splits the offset back into
    (row, column) with the array's own pitch, not ``ld``, and indexes with bounds checks, so an
    offset computed with a wrong pitch, or past the view's columns, fails there."""
    if SIMULATOR:
        @cuda.jit(device=True, inline=True)
        def flat_load(X, o, ld):
            pitch = X.strides[0] // 4
            r = o // pitch
            return X[r, o - r * pitch]
    else:
        @cuda.jit(device=True, inline=True)
        def flat_load(X, o, ld):
            return X[uint64(0), o]
    return flat_load


flat_load = _flat_load()


def _converter(precision: str):
    """Device function ``to_word(pre, u)``: the 32-bit operand word of staged unit u (KPW FP32
    values at pre[u*KPW ...]): a TF32 bit pattern, or two FP16/BF16 values (lower k low)."""
    if precision == "tf32":
        @cuda.jit(device=True, inline=True)
        def to_word(pre, u):
            return tf32_round(pre[u])
    elif precision == "fp16":
        @cuda.jit(device=True, inline=True)
        def to_word(pre, u):
            return pack_f16x2(pre[2 * u], pre[2 * u + 1])
    else:
        @cuda.jit(device=True, inline=True)
        def to_word(pre, u):
            return pack_bf16x2(pre[2 * u], pre[2 * u + 1])
    return to_word


def _make_tc(cfg: TcConfig, precision: str, ldm: bool, split: bool = False):
    """Tensor-core GEMM kernel for one tile and precision (module docstring): v1 (``ldm`` False,
    scalar fragment loads), v2 (``ldm``, ldmatrix), v2k (``split``)."""
    BM, BN, WM, WN = cfg.BM, cfg.BN, cfg.WM, cfg.WN
    NT = cfg.threads
    NW = NT // 32
    WARPS_N = BN // WN
    MT = WM // 16                  # mma tiles per warp along m
    NT8 = WN // 8                  # ... along n
    KP = KPW[precision]
    KW = tile_words(cfg, precision)    # 32-bit words per shared row of a K-tile
    RS = KW + SW_PAD               # shared row stride (words)
    BK = KW * KP                   # k values per K-tile
    XSTEP = NT // KW              # tile rows between a thread's staged words
    LA = BM // XSTEP               # staged words per thread per K-tile: A
    LB = BN // XSTEP               # ... and B
    NA = BM * RS                   # words per A buffer
    NB = BN * RS
    NA2 = 2 * NA
    NB2 = 2 * NB
    PA = LA * KP                   # prefetched FP32 values per thread: A
    PB = LB * KP
    assert NT % KW == 0 and BM % XSTEP == 0 and BN % XSTEP == 0 and NW % (KW // 4) == 0, cfg
    assert BM % WM == 0 and BN % WN == 0 and WM % 16 == 0 and WN % 16 == 0, cfg
    mma = _MMA[precision]
    to_word = _converter(precision)
    flat = ldm                     # v2/v2k: fast-path loads by flat offsets

    @cuda.jit(device=True, inline=True)
    def stage_coords(kcontig, tid):
        # (x0, kw): the thread's first tile row (m or n) and its word column. k-contiguous source:
        # consecutive threads take consecutive words of a row; else a warp takes an 8-row x
        # 4-word patch (8 consecutive m/n of each of 4 k rows), warps w and w + KW/4 stacked
        if kcontig:
            return tid // KW, tid % KW
        w = tid // 32
        lane = tid % 32
        return (w // (KW // 4)) * 8 + lane % 8, (w % (KW // 4)) * 4 + lane // 8

    @cuda.jit(device=True, inline=True)
    def gload(X, r0, c0, kc, rlim, clim, pre, L):
        # word l, value j of the thread's share of a K-tile whose first value is X[r0, c0]:
        # k-contiguous operand X[r0 + l*XSTEP, c0 + j], else X[r0 + j, c0 + l*XSTEP]; zero outside
        for l in range(L):
            for j in range(KP):
                r = r0 + (l * XSTEP if kc else j)
                c = c0 + (j if kc else l * XSTEP)
                pre[l * KP + j] = X[r, c] if (r < rlim and c < clim) else float32(0.0)

    @cuda.jit(device=True, inline=True)
    def gload_full(X, r0, c0, kc, pre, L):
        # gload for a K-tile inside the operand: no bounds tests, non-negative indices (v1)
        for l in range(L):
            for j in range(KP):
                r = r0 + (l * XSTEP if kc else j)
                c = c0 + (j if kc else l * XSTEP)
                pre[l * KP + j] = X[uint64(r), uint64(c)]

    @cuda.jit(device=True, inline=True)
    def gload_flat(X, o, us, js, ld, pre, L):
        # gload_full by flat offsets (v2): value (l, j) at o + l*us + j*js, walked by adds
        for l in range(L):
            p = o
            for j in range(KP):
                pre[l * KP + j] = flat_load(X, p, ld)
                p += js
            o += us

    @cuda.jit(device=True, inline=True)
    def sstore(Xs, base, pre, L):
        # registers -> shared, converted to operand words (TF32 rounding / FP16 or BF16 pairs)
        for l in range(L):
            Xs[uint64(base + l * (XSTEP * RS))] = to_word(pre, l)

    @cuda.jit(device=True, inline=True)
    def b_fragments(Bs, b, b_frag):
        # the warp's NT8 B tiles of one k-step: ldmatrix.x4 gives tiles 2jj and 2jj+1 (matrices:
        # tile, words +0 / +4 -> b0, b1 of each); v1: scalar loads Bs[g*RS + t (+4)]
        for jj in range(NT8 // 2):
            if ldm:
                b_frag[2 * jj, 0], b_frag[2 * jj, 1], b_frag[2 * jj + 1, 0], b_frag[2 * jj + 1, 1] = \
                    ldmatrix_x4(Bs, b + uint64(jj * 16 * RS))
            else:
                for h in range(2):
                    o = b + uint64((2 * jj + h) * 8 * RS)
                    b_frag[2 * jj + h, 0] = Bs[o]
                    b_frag[2 * jj + h, 1] = Bs[o + uint64(4)]

    @cuda.jit(device=True, inline=True)
    def mma_row(As, a, acc, i, a_frag, b_frag):
        # A tile i of one k-step (ldmatrix.x4: rows +0/+8, words +0/+4 -> a0..a3; v1: scalar
        # loads As[(g (+8))*RS + t (+4)]), then its NT8 mma tiles. Loading A tile by tile keeps
        # 4 fragment registers live instead of 4*MT.
        if ldm:
            a_frag[0], a_frag[1], a_frag[2], a_frag[3] = ldmatrix_x4(As, a)
        else:
            a_frag[0] = As[a]
            a_frag[1] = As[a + uint64(8 * RS)]
            a_frag[2] = As[a + uint64(4)]
            a_frag[3] = As[a + uint64(8 * RS + 4)]
        for j in range(NT8):
            acc[i, j, 0], acc[i, j, 1], acc[i, j, 2], acc[i, j, 3] = mma(
                a_frag[0], a_frag[1], a_frag[2], a_frag[3], b_frag[j, 0], b_frag[j, 1],
                acc[i, j, 0], acc[i, j, 1], acc[i, j, 2], acc[i, j, 3])

    @cuda.jit(device=True, inline=True)
    def epilogue(C, acc, alpha, beta, rb, cb, M, N, crow):
        # acc[i, j, 2h + e] is C[rb + 16i + 8h, cb + 8j + e]; beta == 0 never reads C (uniform
        # branch). Row gm of the product goes to row crow + gm of C (split-K partials).
        if beta == float32(0.0):
            for i in range(MT):
                for h in range(2):
                    gm = rb + i * 16 + h * 8
                    if gm < M:
                        for j in range(NT8):
                            for e in range(2):
                                gn = cb + j * 8 + e
                                if gn < N:
                                    C[crow + gm, gn] = alpha * acc[i, j, 2 * h + e]
        else:
            for i in range(MT):
                for h in range(2):
                    gm = rb + i * 16 + h * 8
                    if gm < M:
                        for j in range(NT8):
                            for e in range(2):
                                gn = cb + j * 8 + e
                                if gn < N:
                                    C[crow + gm, gn] = alpha * acc[i, j, 2 * h + e] + beta * C[crow + gm, gn]

    def gemm_tc(trans_a, trans_b, alpha, A, B, beta, C):
        As = cuda.shared.array(NA2, uint32, alignment=SMEM_ALIGN)    # As[buf*NA + m*RS + kw]
        Bs = cuda.shared.array(NB2, uint32, alignment=SMEM_ALIGN)    # Bs[buf*NB + n*RS + kw]
        acc = cuda.local.array((MT, NT8, 4), float32)                # registers (loops unrolled)
        a_frag = cuda.local.array(4, uint32)
        b_frag = cuda.local.array((NT8, 2), uint32)
        a_pre = cuda.local.array(PA, float32)                        # next K-tile, in registers
        b_pre = cuda.local.array(PB, float32)
        tid = cuda.threadIdx.x
        warp = tid // 32
        lane = tid % 32
        wm = (warp // WARPS_N) * WM
        wn = (warp % WARPS_N) * WN
        m0 = cuda.blockIdx.y * BM
        n0 = cuda.blockIdx.x * BN
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        if split:
            # K slice of this block: [kb, K) in whole K-tiles; its partial goes to C rows z*M..
            nz = cuda.gridDim.z
            M = C.shape[0] // nz
            kper = ((K + nz - 1) // nz + BK - 1) // BK * BK
            kb = cuda.blockIdx.z * kper
            K = min(K, kb + kper)
            crow = cuda.blockIdx.z * M
        else:
            M = C.shape[0]
            kb = 0
            crow = 0
        # staging: A is k-contiguous unless transposed, B only when transposed. Word l, value j of
        # the thread's share of an operand tile sits at (row, col) = (r0 + l*rsu + j*rsj,
        # c0 + l*csu + j*csj) of the operand as stored; the K-tile origin moves c0 (k-contiguous)
        # or r0 (k rows) by BK per K-tile.
        a_kc = not trans_a
        b_kc = trans_b
        ax0, akw = stage_coords(a_kc, tid)
        bx0, bkw = stage_coords(b_kc, tid)
        a_rlim = M if a_kc else K
        a_clim = K if a_kc else M
        b_rlim = N if b_kc else K
        b_clim = K if b_kc else N
        # the thread's first staged value at k = 0 is (a_br, a_bc) of A as stored; a K-tile at k
        # starts at (a_br, a_bc + k) (k-contiguous) or (a_br + k, a_bc)
        a_br = m0 + ax0 if a_kc else akw * KP
        a_bc = akw * KP if a_kc else m0 + ax0
        b_br = n0 + bx0 if b_kc else bkw * KP
        b_bc = bkw * KP if b_kc else n0 + bx0
        if flat:
            # flat offsets (element (r, c) at r*pitch + c): at k = 0, per staged word l, per value
            # j (one step along k); a K-tile at k starts k*js further
            lda = uint64(A.strides[0] // 4)
            ldb = uint64(B.strides[0] // 4)
            a_js = uint64(1) if a_kc else lda
            b_js = uint64(1) if b_kc else ldb
            a_us = uint64(XSTEP) * lda if a_kc else uint64(XSTEP)
            b_us = uint64(XSTEP) * ldb if b_kc else uint64(XSTEP)
            a_base = uint64(a_br) * lda + uint64(a_bc)
            b_base = uint64(b_br) * ldb + uint64(b_bc)
        a_s = ax0 * RS + akw            # shared offset of the thread's first staged word
        b_s = bx0 * RS + bkw
        # fragment addresses inside a buffer: ldmatrix row of this lane (matrix q = lane // 8,
        # row r = lane % 8), or the scalar-load word (g, t)
        q = lane // 8
        r = lane % 8
        if ldm:
            a_fr = (wm + (q % 2) * 8 + r) * RS + (q // 2) * 4
            b_fr = (wn + (q // 2) * 8 + r) * RS + (q % 2) * 4
        else:
            a_fr = (wm + lane // 4) * RS + lane % 4
            b_fr = (wn + lane // 4) * RS + lane % 4
        interior = m0 + BM <= M and n0 + BN <= N    # this block's C tile has no ragged edge
        for i in range(MT):
            for j in range(NT8):
                for e in range(4):
                    acc[i, j, e] = float32(0.0)
        ntiles = (K - kb + BK - 1) // BK
        gload(A, a_br + (0 if a_kc else kb), a_bc + (kb if a_kc else 0), a_kc, a_rlim, a_clim, a_pre, LA)
        gload(B, b_br + (0 if b_kc else kb), b_bc + (kb if b_kc else 0), b_kc, b_rlim, b_clim, b_pre, LB)
        for t in range(ntiles):
            buf = t & 1
            # registers -> buffer `buf`. Its last readers multiplied tile t-2, and every thread
            # passed the barrier of iteration t-1 after that, so nobody reads it any more.
            sstore(As, buf * NA + a_s, a_pre, LA)
            sstore(Bs, buf * NB + b_s, b_pre, LB)
            cuda.syncthreads()  # buffer `buf` complete before any warp reads its fragments
            k1 = kb + (t + 1) * BK
            if interior and k1 + BK <= K:   # the common case: tile t+1 is whole, no bounds tests
                if flat:
                    gload_flat(A, a_base + uint64(k1) * a_js, a_us, a_js, lda, a_pre, LA)
                    gload_flat(B, b_base + uint64(k1) * b_js, b_us, b_js, ldb, b_pre, LB)
                else:
                    gload_full(A, a_br + (0 if a_kc else k1), a_bc + (k1 if a_kc else 0), a_kc, a_pre, LA)
                    gload_full(B, b_br + (0 if b_kc else k1), b_bc + (k1 if b_kc else 0), b_kc, b_pre, LB)
            elif k1 < K:        # global loads of tile t+1 are in flight during the mma steps
                gload(A, a_br + (0 if a_kc else k1), a_bc + (k1 if a_kc else 0), a_kc, a_rlim, a_clim,
                      a_pre, LA)
                gload(B, b_br + (0 if b_kc else k1), b_bc + (k1 if b_kc else 0), b_kc, b_rlim, b_clim,
                      b_pre, LB)
            abuf = uint64(buf * NA + a_fr)
            bbuf = uint64(buf * NB + b_fr)
            for ks in range(0, KW, 8):      # mma k-steps of 8 words (two per K-tile, or one), the same
                b_fragments(Bs, bbuf + uint64(ks), b_frag)     # order in every lane of the warp
                for i in range(MT):
                    mma_row(As, abuf + uint64(ks + i * 16 * RS), acc, i, a_frag, b_frag)
        epilogue(C, acc, alpha, beta, m0 + wm + lane // 4, n0 + wn + (lane % 4) * 2, M, N, crow)

    version = "v2k" if split else ("v2" if ldm else "v1")
    gemm_tc.__doc__ = (f"tensor-core GEMM {version} ({precision}, mma.sync m16n8k{8 * KP}"
                       f"{', ldmatrix' if ldm else ''}), tile {BM}x{BN}x{BK}, {NW} warps of {WM}x{WN}; "
                       f"block {NT}, grid (N/{BN}, M/{BM}{', K slices' if split else ''})")
    opts = {}
    if cfg.min_blocks and not SIMULATOR:   # the simulator has no launch_bounds option
        opts["launch_bounds"] = (NT, cfg.min_blocks)
    return cuda.jit(**opts)(gemm_tc)


# ----------------------------------------------------------------------------------------------
# registry, planner, public API
# ----------------------------------------------------------------------------------------------

_SIG_C = "void(int32, int32, float32, float32[:, ::1], float32[:, ::1], float32, float32[:, ::1])"
_SIG_A = "void(int32, int32, float32, float32[:, :], float32[:, :], float32, float32[:, :])"
SIGNATURES = [_SIG_C, _SIG_A]

SPLIT_CONFIG = "64x64"       # the split-K kernels' tile
PROMOTED = "v2"


def kernel_name(version: str, precision: str, cfg: str) -> str:
    """``gemm_tc_<version>_<precision>_<BM>_<BN>_<BK>`` (BK in k values of that precision)."""
    c = CONFIGS[cfg]
    return f"gemm_tc_{version}_{precision}_{c.BM}_{c.BN}_{tile_words(c, precision) * KPW[precision]}"


# name -> (kernel, block, (BM, BN))
_LAUNCH: dict[str, tuple[Any, tuple[int, int], tuple[int, int]]] = {}
for _prec in PRECISIONS:
    for _name, _cfg in CONFIGS.items():
        if _prec == "tf32":
            _LAUNCH[kernel_name("v1", _prec, _name)] = (_make_tc(_cfg, _prec, ldm=False), _cfg.block,
                                                        (_cfg.BM, _cfg.BN))
        _LAUNCH[kernel_name("v2", _prec, _name)] = (_make_tc(_cfg, _prec, ldm=True), _cfg.block,
                                                    (_cfg.BM, _cfg.BN))
    _cfg = CONFIGS[SPLIT_CONFIG]
    _LAUNCH[kernel_name("v2k", _prec, SPLIT_CONFIG)] = (_make_tc(_cfg, _prec, ldm=True, split=True),
                                                        _cfg.block, (_cfg.BM, _cfg.BN))

# every kernel with C-contiguous operands (tests, benchmarks); the ones plan() launches with any
# row-strided views too. tests/test_ptx.py compiles exactly these.
KERNELS: dict[str, tuple[Any, list[str]]] = {
    name: (k, SIGNATURES if f"_{PROMOTED}" in name else [_SIG_C]) for name, (k, _, _) in _LAUNCH.items()}


@functools.lru_cache(maxsize=4096)
def select_config(M: int, N: int, K: int) -> str:
    """Tile configuration for an (M, N, K) problem (``kernels.gemm.select_config``'s rule over the
    tensor-core tiles): the largest giving >= 2 waves of blocks at >= 75 % use of the tile area,
    else the largest giving one wave at >= 50 %, else 64x64 when it gives half a wave, else 32x32."""
    def fit(name: str) -> tuple[int, float]:
        cfg = CONFIGS[name]
        blocks = ceil_div(M, cfg.BM) * ceil_div(N, cfg.BN)
        return blocks, (M * N) / (blocks * cfg.BM * cfg.BN)

    for min_blocks, min_use in ((2 * SMS, 0.75), (SMS, 0.5)):
        for name in _BY_SIZE:
            blocks, use = fit(name)
            if blocks >= min_blocks and use >= min_use:
                return name
    return "64x64" if fit("64x64")[0] >= SMS // 2 else "32x32"


@functools.lru_cache(maxsize=4096)
def plan(M: int, N: int, K: int, precision: str = "tf32") -> tuple[str, int]:
    """(kernel, slices) that ``gemm`` launches for an (M, N, K) problem: split-K over the 64x64
    tile (``kernels.gemm``'s rule: when its tiles are fewer than the SMs and K >= SPLITK_MIN_K,
    enough slices of >= SPLITK_MIN_SLICE for about two waves) or, with slices == 1, the promoted
    version of ``select_config``'s tile."""
    _check_precision(precision)
    cfg = CONFIGS[SPLIT_CONFIG]
    blocks = ceil_div(M, cfg.BM) * ceil_div(N, cfg.BN)
    if blocks < SMS and K >= SPLITK_MIN_K:
        slices = max(1, min(ceil_div(2 * SMS, blocks), K // SPLITK_MIN_SLICE, SPLITK_MAX))
        if slices > 1:
            return kernel_name("v2k", precision, SPLIT_CONFIG), slices
    return kernel_name(PROMOTED, precision, select_config(M, N, K)), 1


def describe_plan(M: int, N: int, K: int, precision: str = "tf32") -> str:
    """What ``gemm`` launches, in words: a kernel name or ``"<split kernel> x<S> + splitk_reduce_v1"``."""
    name, slices = plan(M, N, K, precision)
    return f"{name} x{slices} + splitk_reduce_v1" if slices > 1 else name


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"gemm_tc: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _check(trans_a: bool, trans_b: bool, A, B, C) -> tuple[int, int, int]:
    for nm, X in (("A", A), ("B", B), ("C", C)):
        if len(X.shape) != 2 or np.dtype(X.dtype) != np.float32:
            raise ValueError(f"gemm_tc: {nm} must be a 2-D float32 array, got shape {X.shape} "
                             f"dtype {X.dtype}")
        if X.shape[1] > 1 and X.strides[1] != 4:
            raise ValueError(f"gemm_tc: {nm} must have unit stride along its last axis (strides {X.strides})")
    M, N = C.shape
    am, ak = (A.shape[1], A.shape[0]) if trans_a else A.shape
    bk, bn = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if am != M or bn != N or ak != bk:
        raise ValueError(f"gemm_tc: shapes do not agree: op(A) {am}x{ak}, op(B) {bk}x{bn}, C {M}x{N}")
    return M, N, ak


@functools.lru_cache(maxsize=4096)
def _grid(name: str, M: int, N: int) -> tuple[tuple[int, int], tuple[int, int]]:
    _, block, (bm, bn) = _LAUNCH[name]
    return (ceil_div(N, bn), ceil_div(M, bm)), block


def gemm_with(name: str, trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> None:
    """Launch tensor-core kernel ``name`` (a key of ``KERNELS``, not a split one):
    ``C = alpha*op(A)@op(B) + beta*C`` in place. For tests and benchmarks; ``gemm`` plans itself."""
    A, B, C = as_device(A), as_device(B), as_device(C)
    M, N, _ = _check(trans_a, trans_b, A, B, C)
    if "_v2k_" in name:
        raise ValueError(f"gemm_with: {name} is a split-K kernel (use gemm_splitk)")
    if M == 0 or N == 0:
        return
    grid, block = _grid(name, M, N)
    _LAUNCH[name][0][grid, block](np.int32(bool(trans_a)), np.int32(bool(trans_b)), np.float32(alpha),
                                  A, B, np.float32(beta), C)


_workspace: dict[int, Any] = {}


def _splitk_workspace(rows: int, cols: int):
    """A (rows, cols) float32 view of a device buffer kept between calls (grown when too small)."""
    need = rows * cols
    buf = _workspace.get(0)
    if buf is None or buf.shape[0] < need:
        buf = cuda.device_array(max(need, 1 << 16), dtype=np.float32)
        _workspace[0] = buf
    return buf[:need].reshape(rows, cols)


def gemm_splitk(trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C, slices: int,
                precision: str = "tf32") -> None:
    """``C = alpha*op(A)@op(B) + beta*C`` as ``slices`` K-slice products (one launch of the
    precision's v2k kernel with a z grid, partials in a workspace) summed in a fixed order by
    ``kernels.gemm.splitk_reduce_v1``. Same contract as ``gemm``."""
    _check_precision(precision)
    A, B, C = as_device(A), as_device(B), as_device(C)
    M, N, _ = _check(trans_a, trans_b, A, B, C)
    if M == 0 or N == 0:
        return
    slices = max(1, int(slices))
    name = kernel_name("v2k", precision, SPLIT_CONFIG)
    W = _splitk_workspace(slices * M, N)
    kern, block, (bm, bn) = _LAUNCH[name]
    kern[(ceil_div(N, bn), ceil_div(M, bm), slices), block](
        np.int32(bool(trans_a)), np.int32(bool(trans_b)), np.float32(alpha), A, B, np.float32(0.0), W)
    blocks, threads = grid_1d(M * N)
    _fp32.splitk_reduce_v1[blocks, threads](W, np.int32(slices), np.float32(beta), C)


def gemm(trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C, precision: str = "tf32") -> None:
    """``C = alpha * op(A) @ op(B) + beta * C`` in place on the tensor cores (float32 device arrays,
    returns None): inputs rounded to ``precision`` ("tf32", "fp16", "bf16") as they are staged in
    shared memory, FP32 accumulation. ``op(A)`` (M, K): ``A`` (M, K) or, with ``trans_a``, (K, M);
    ``op(B)`` (K, N): ``B`` (K, N) or, with ``trans_b``, (N, K); ``C`` (M, N). Operands may be
    row-strided views; with ``beta == 0`` C is not read. The kernel and split-K come from ``plan``;
    the error bound is in the module docstring."""
    _check_precision(precision)
    A, B, C = as_device(A), as_device(B), as_device(C)
    M, N, K = _check(trans_a, trans_b, A, B, C)
    name, slices = plan(M, N, K, precision)
    if slices > 1:
        gemm_splitk(trans_a, trans_b, alpha, A, B, beta, C, slices, precision)
        return
    gemm_with(name, trans_a, trans_b, alpha, A, B, beta, C)
