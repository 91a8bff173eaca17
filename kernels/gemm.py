"""GEMM: ``C = alpha * op(A) @ op(B) + beta * C`` in float32 (BLAS sgemm semantics, row-major).

Shapes: ``op(A)`` is (M, K) -- ``A`` is (M, K), or (K, M) when ``trans_a``; ``op(B)`` is (K, N) --
``B`` is (K, N), or (N, K) when ``trans_b``; ``C`` is (M, N). Any M, N, K >= 1 (edge tiles are
zero-filled). Each operand may be a row-strided 2-D view (a column slice of a wider array: the
leading dimension is ``strides[0] / 4``; the last stride must be 4 bytes). ``beta == 0`` never reads
``C`` (C may hold NaN/garbage, as in BLAS).

Versions (``KERNELS``; register-blocked ones are named ``gemm_v<N>_<BM>_<BN>_<BK>`` per tile):

- ``gemm_v1``: naive, one thread per C element, a K-long dot product straight from global memory.
  Block 16x16, grid (ceil(N/16), ceil(M/16)). The readable baseline.
- ``gemm_v4_<tile>`` (32x32x8: 2x2 outputs per thread): 2-D register blocking. A block computes a
  BM x BN tile of C with (BM/TM) x (BN/TN) threads; each thread owns TM x TN outputs in registers,
  strided so that every shared-memory read of a warp is conflict-free (rows ``ty + i*(BM/TM)``,
  columns ``tx + j*(BN/TN)``). The A tile is stored transposed in shared memory (``As[k][m]``) so
  both operands are read along the fast index; rows are padded by 4 floats (see ``PAD``). The next
  K-tile is loaded from global memory into registers while the current one is multiplied, into
  double-buffered shared memory: one barrier per K-tile. Grid (ceil(N/BN), ceil(M/BM)).
- ``gemm_v6_<tile>`` (TM, TN multiples of 4): v4 with each thread's outputs in runs of 4 consecutive
  rows/columns, so its A and B fragments are read from shared memory with 128-bit ``ld.shared.v4``
  loads; transpose-independent global loads (a thread's tile elements share one column and step by
  a fixed number of rows in the operand's own layout, computed once: one load path in the K loop);
  blocks whose C tile has no ragged edge load whole K-tiles without bounds tests; the BK steps of
  each K-tile written out as straight-line code. The global loads are scalar: operands may be any
  row-strided view.
- ``gemm_v7_<tile>``: v6 whose interior blocks read whole K-tiles with 128-bit global loads
  (``kernels._vec.load4``): each thread loads runs of 4 consecutive elements. Needs A and B 16-byte
  aligned with 16-byte row pitches; on other operands the v6 kernel of the same tile runs (its
  "scalar twin").
- ``gemm_v9_<tile>``: v7 whose interior K-tiles are addressed by flat offsets set up once per
  thread and advanced by one add per K-tile (``flat_load4``), with every transposition choice made
  before the loop; launch bounds hold it to 2 blocks per SM. Scalar twin: v6.
- split-K ``gemm_v6k_<tile>`` / ``gemm_v7k_<tile>`` / ``gemm_v9k_<tile>``: v6 / v7 / v9 with a z grid
  dimension: block z multiplies the z-th slice of K into rows [z*M, (z+1)*M) of a workspace, and
  ``splitk_reduce_v1`` sums the slices in order (deterministic). For problems whose M x N has too
  few tiles to fill the GPU but whose K is long (a convolution's weight gradient). v7k/v9k's
  scalar twin is the v6k kernel of their tile.

Planner (``plan(M, N, K, aligned) -> Plan(kernel, slices)``): the one place a GEMM's kernel is
chosen, used by ``gemm()`` (so by ``kernels.conv`` and the cuda backend) and named by the
benchmarks (``str(plan)``). Its inputs, consulted in order: ``MEASURED`` (per-shape winners of a GPU
sweep), split-K with ``SPLIT_KERNEL`` over ``splitk_slices`` slices when M x N leaves the GPU idle
and K is long, ``WIDE_N_KERNEL`` for conv1-like shapes (one row of 128-row tiles, many waves), else
``TILE_KERNEL`` of ``select_config``'s tile; then the scalar twin when the operands are not
16-byte aligned. gemm() launches only what this table names; every other kernel in ``KERNELS``
(gemm_v1 aside) is a candidate that only the benchmark's sweep runs (``launch(Plan(...))``), until
a GPU measurement puts it in the table.

Use in convolution (see ``kernels/conv.py``): with ``col = im2col(x)`` of shape (C*kh*kw, Nc*OH*OW)
and ``W`` viewed as (Cout, C*kh*kw), the forward is ``gemm(False, False, 1, W, col, 0, Y)`` giving
``Y`` (Cout, Nc*OH*OW) (channel-major; ``layout.cn_to_nc`` moves it to NCHW and adds the bias).
Backward with ``dY`` in the same channel-major layout (``layout.nc_to_cn``):
``dW += dY @ col^T`` is ``gemm(False, True, 1, dY, col, 1, dW)`` (parameter gradients accumulate)
and ``dcol = W^T @ dY`` is ``gemm(True, False, 1, W, dY, 0, dcol)`` followed by ``col2im``.

All kernels take ``(trans_a: int32, trans_b: int32, alpha: float32, A, B, beta: float32, C)``; the
transpose flags are runtime values (uniform branches in the tile loads only).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, uint64

from kernels._launch import SIMULATOR, as_device, ceil_div, grid_1d, scratch
from kernels._vec import aligned16, load4

# ----------------------------------------------------------------------------------------------
# v1: naive
# ----------------------------------------------------------------------------------------------

V1_BLOCK = 16   # 16x16 = 256 threads per block


@cuda.jit
def gemm_v1(trans_a, trans_b, alpha, A, B, beta, C):
    """Naive GEMM, one C[i, j] per thread, K-long dot product from global memory; block 16x16,
    grid (N/16, M/16)."""
    j, i = cuda.grid(2)
    M = C.shape[0]
    N = C.shape[1]
    if i >= M or j >= N:
        return
    K = A.shape[0] if trans_a else A.shape[1]
    acc = float32(0.0)
    for k in range(K):
        a = A[k, i] if trans_a else A[i, k]
        b = B[j, k] if trans_b else B[k, j]
        acc += a * b
    if beta == float32(0.0):
        C[i, j] = alpha * acc
    else:
        C[i, j] = alpha * acc + beta * C[i, j]


# ----------------------------------------------------------------------------------------------
# register blocking: one kernel per tile configuration (a closure over constants, since
# shared-array shapes and unrolled loop bounds must be compile-time constants)
# ----------------------------------------------------------------------------------------------
#
# Indexing note: numba wraps negative signed indices (``a[-1]``), which costs a compare/select and
# 64-bit arithmetic per access. The hot loops index the 1-D shared tiles with ``uint64`` offsets
# (never negative), for which numba emits a plain address computation.

SMEM_ALIGN = None if SIMULATOR else 16   # 16-byte aligned shared tiles (the simulator rejects alignment)
PAD = 4   # floats of padding per shared row: keeps rows 16-byte aligned (vector loads) and makes the
          # transposed stores ``As[k][m]`` of 32 consecutive elements hit 32 distinct banks
          # (row stride BM+4 == 4 (mod 32) banks, and a warp's stores span 8 k values x 4 m values)


@dataclass(frozen=True)
class GemmConfig:
    """Tile configuration of the register-blocked kernels: block tile BM x BN, K step BK, each
    thread computing TM x TN outputs; ``threads = (BM/TM) * (BN/TN)``."""
    BM: int
    BN: int
    BK: int
    TM: int
    TN: int
    min_blocks: int = 0   # launch bounds: ask ptxas to fit this many blocks per SM (0: none)

    @property
    def threads(self) -> int:
        return (self.BM // self.TM) * (self.BN // self.TN)

    @property
    def block(self) -> tuple[int, int]:
        """CUDA block (x, y) = (BN/TN, BM/TM)."""
        return self.BN // self.TN, self.BM // self.TM


CONFIGS: dict[str, GemmConfig] = {
    "128x128x8": GemmConfig(128, 128, 8, 8, 8),       # 256 threads, 8x8 per thread: the big-GEMM tile
    "128x128x16": GemmConfig(128, 128, 16, 8, 8),     # same, half the barriers per K, 2x shared memory
    "128x64x8": GemmConfig(128, 64, 8, 8, 4),         # 256 threads, 8x4: tall C
    "64x128x8": GemmConfig(64, 128, 8, 4, 8),         # 256 threads, 4x8: wide C (conv: small Cout)
    "64x64x8": GemmConfig(64, 64, 8, 4, 4),           # 256 threads, 4x4: mid-size problems
    "64x64x32": GemmConfig(64, 64, 32, 4, 4),         # split-K: a 128-byte line per operand row per K-tile
    "32x32x8": GemmConfig(32, 32, 8, 2, 2),           # 256 threads, 2x2: small problems, many blocks
}


def _tile_functions(cfg: GemmConfig, vec: bool = False):
    """Device functions of v4 and v6 for one configuration (closures over its constants): global ->
    registers loads of one K-tile of op(A)/op(B) and registers -> shared stores (v4), the BK-step
    outer-product update of the TM x TN accumulators (rolled for v4, unrolled for v6), and the
    epilogue.

    Thread (tx, ty) owns the C rows ``ty*RI + (i // RI)*RO + i % RI`` (i < TM) and the columns
    ``tx*CI + (j // CI)*CO + j % CI`` (j < TN):
    - ``vec=False`` (v4): RI = CI = 1, RO = BM/TM, CO = BN/TN -- outputs strided by the thread
      count, so each scalar shared read of a warp touches 16 consecutive floats (no bank conflict);
    - ``vec=True`` (v6): RI = CI = 4, RO = BM/(TM/4), CO = BN/(TN/4) -- runs of 4 consecutive outputs,
      so the fragments are read from shared memory with 128-bit loads (ld.shared.v4: a warp reads
      16 x 16 contiguous bytes of Bs and 2 broadcast 16-byte words of As per instruction).
    """
    BM, BN, BK, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.TM, cfg.TN
    TX = BN // TN                  # threads along N
    TY = BM // TM                  # threads along M
    NT = TX * TY
    LA = BM * BK // NT             # A-tile elements per thread per K-tile
    LB = BN * BK // NT             # B-tile elements per thread per K-tile
    SA = BM + PAD                  # shared row lengths (floats)
    SB = BN + PAD
    assert BM % TM == 0 and BN % TN == 0 and (BM * BK) % NT == 0 and (BN * BK) % NT == 0, cfg
    if vec:
        assert TM % 4 == 0 and TN % 4 == 0, cfg
    RI = 4 if vec else 1           # consecutive rows per run
    CI = 4 if vec else 1           # consecutive columns per run
    RO = BM // (TM // RI)          # distance between a thread's row runs
    CO = BN // (TN // CI)          # distance between a thread's column runs

    @cuda.jit(device=True, inline=True)
    def gload_a(A, trans_a, pre, tid, m0, k0, M, K):
        # element e = tid + l*NT of the tile; consecutive threads read consecutive addresses:
        # along m when A is (K, M) (trans_a), along k when A is (M, K)
        for l in range(LA):
            e = tid + l * NT
            if trans_a:
                gk = k0 + e // BM
                gm = m0 + e % BM
                pre[l] = A[gk, gm] if (gk < K and gm < M) else float32(0.0)
            else:
                gm = m0 + e // BK
                gk = k0 + e % BK
                pre[l] = A[gm, gk] if (gk < K and gm < M) else float32(0.0)

    @cuda.jit(device=True, inline=True)
    def gload_b(B, trans_b, pre, tid, n0, k0, N, K):
        for l in range(LB):
            e = tid + l * NT
            if trans_b:
                gn = n0 + e // BK
                gk = k0 + e % BK
                pre[l] = B[gn, gk] if (gk < K and gn < N) else float32(0.0)
            else:
                gk = k0 + e // BN
                gn = n0 + e % BN
                pre[l] = B[gk, gn] if (gk < K and gn < N) else float32(0.0)

    @cuda.jit(device=True, inline=True)
    def sstore_a(As, base, trans_a, pre, tid):
        # As[base + k*SA + m] = op(A)[m0+m, k0+k] (same element mapping as gload_a)
        for l in range(LA):
            e = tid + l * NT
            if trans_a:
                As[uint64(base + (e // BM) * SA + e % BM)] = pre[l]
            else:
                As[uint64(base + (e % BK) * SA + e // BK)] = pre[l]

    @cuda.jit(device=True, inline=True)
    def sstore_b(Bs, base, trans_b, pre, tid):
        for l in range(LB):
            e = tid + l * NT
            if trans_b:
                Bs[uint64(base + (e % BK) * SB + e // BK)] = pre[l]
            else:
                Bs[uint64(base + (e // BN) * SB + e % BN)] = pre[l]

    @cuda.jit(device=True, inline=True)
    def multiply_tile(As, Bs, abase, bbase, acc, a_frag, b_frag):
        # abase = buffer offset + ty*RI, bbase = buffer offset + tx*CI (uint64, never negative)
        for kk in range(BK):
            for i in range(TM):
                a_frag[i] = As[abase + uint64(kk * SA + (i // RI) * RO + i % RI)]
            for j in range(TN):
                b_frag[j] = Bs[bbase + uint64(kk * SB + (j // CI) * CO + j % CI)]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a_frag[i] * b_frag[j]

    @cuda.jit(device=True, inline=True)
    def k_step(As, Bs, abase, bbase, acc, a_frag, b_frag):
        # one k of multiply_tile: abase/bbase already point at row k of the tiles
        for i in range(TM):
            a_frag[i] = As[abase + uint64((i // RI) * RO + i % RI)]
        for j in range(TN):
            b_frag[j] = Bs[bbase + uint64((j // CI) * CO + j % CI)]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] += a_frag[i] * b_frag[j]

    @cuda.jit(device=True, inline=True)
    def multiply_tile_unrolled(As, Bs, abase, bbase, acc, a_frag, b_frag):
        # multiply_tile with the k steps written out 8 at a time (NVVM keeps a k loop rolled)
        for k8 in range(0, BK, 8):
            a = abase + uint64(k8 * SA)
            b = bbase + uint64(k8 * SB)
            k_step(As, Bs, a, b, acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(SA), b + uint64(SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(2 * SA), b + uint64(2 * SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(3 * SA), b + uint64(3 * SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(4 * SA), b + uint64(4 * SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(5 * SA), b + uint64(5 * SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(6 * SA), b + uint64(6 * SB), acc, a_frag, b_frag)
            k_step(As, Bs, a + uint64(7 * SA), b + uint64(7 * SB), acc, a_frag, b_frag)

    @cuda.jit(device=True, inline=True)
    def epilogue(C, acc, alpha, beta, m0, n0, tx, ty, M, N, crow):
        # a warp stores 16 (or 16 runs of 4) consecutive columns of 2 rows; beta == 0 never reads C.
        # Row gm of the product lands in row crow + gm of C (crow > 0 only for split-K partials).
        for i in range(TM):
            gm = m0 + ty * RI + (i // RI) * RO + i % RI
            if gm < M:
                for j in range(TN):
                    gn = n0 + tx * CI + (j // CI) * CO + j % CI
                    if gn < N:
                        if beta == float32(0.0):
                            C[crow + gm, gn] = alpha * acc[i, j]
                        else:
                            C[crow + gm, gn] = alpha * acc[i, j] + beta * C[crow + gm, gn]

    return gload_a, gload_b, sstore_a, sstore_b, multiply_tile, multiply_tile_unrolled, epilogue




def _make_v4(cfg: GemmConfig):
    """Register-blocked GEMM kernel for one configuration, with register prefetch of the next
    K-tile and double-buffered shared memory (one barrier per K-tile)."""
    BM, BN, BK, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.TM, cfg.TN
    TX = BN // TN
    LA = BM * BK // cfg.threads
    LB = BN * BK // cfg.threads
    NA = BK * (BM + PAD)
    NB = BK * (BN + PAD)
    NA2 = 2 * NA                   # two buffers per operand
    NB2 = 2 * NB
    gload_a, gload_b, sstore_a, sstore_b, multiply_tile, _, epilogue = _tile_functions(cfg)

    def gemm_v4(trans_a, trans_b, alpha, A, B, beta, C):
        As = cuda.shared.array(NA2, float32, alignment=SMEM_ALIGN)   # buffer b at offset b*NA
        Bs = cuda.shared.array(NB2, float32, alignment=SMEM_ALIGN)
        acc = cuda.local.array((TM, TN), float32)
        a_frag = cuda.local.array(TM, float32)
        b_frag = cuda.local.array(TN, float32)
        a_pre = cuda.local.array(LA, float32)                # next K-tile, in registers
        b_pre = cuda.local.array(LB, float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        m0 = cuda.blockIdx.y * BM
        n0 = cuda.blockIdx.x * BN
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = float32(0.0)
        ntiles = (K + BK - 1) // BK
        gload_a(A, trans_a, a_pre, tid, m0, 0, M, K)         # prologue: K-tile 0 -> registers
        gload_b(B, trans_b, b_pre, tid, n0, 0, N, K)
        for t in range(ntiles):
            buf = t & 1
            # registers -> buffer `buf`. Its last readers multiplied tile t-2, and every thread
            # passed the barrier of iteration t-1 after that, so nobody reads it any more.
            sstore_a(As, buf * NA, trans_a, a_pre, tid)
            sstore_b(Bs, buf * NB, trans_b, b_pre, tid)
            cuda.syncthreads()  # buffer `buf` complete before anyone multiplies it
            if t + 1 < ntiles:  # global loads of tile t+1 are in flight during the multiply
                gload_a(A, trans_a, a_pre, tid, m0, (t + 1) * BK, M, K)
                gload_b(B, trans_b, b_pre, tid, n0, (t + 1) * BK, N, K)
            multiply_tile(As, Bs, uint64(buf * NA + ty), uint64(buf * NB + tx), acc, a_frag, b_frag)
        epilogue(C, acc, alpha, beta, m0, n0, tx, ty, M, N, 0)

    gemm_v4.__doc__ = (f"register-blocked GEMM + register prefetch, double-buffered smem, tile "
                       f"{BM}x{BN}x{BK}, {TM}x{TN} per thread; block {cfg.block[0]}x{cfg.block[1]}, "
                       f"grid (N/{BN}, M/{BM})")
    return cuda.jit(gemm_v4)



def _flat_loaders():
    """``flat_load(X, o, ld)`` / ``flat_load4(X, o, ld)``: element(s) at flat offset ``o`` of a
    row-strided 2-D array with row pitch ``ld`` elements (element (r, c) sits at r*ld + c). On a GPU
    they index ``X[0, o]`` -- numba computes ``data + 0*stride0 + o*4`` with no bounds or
    wraparound code, one 64-bit add per load; the simulator's numpy arrays check bounds, so there
    the offset is split back into (row, column)."""
    if SIMULATOR:
        @cuda.jit(device=True, inline=True)
        def flat_load(X, o, ld):
            r = o // ld
            return X[r, o - r * ld]

        @cuda.jit(device=True, inline=True)
        def flat_load4(X, o, ld):
            r = o // ld
            return load4(X, r, o - r * ld)
    else:
        @cuda.jit(device=True, inline=True)
        def flat_load(X, o, ld):
            return X[uint64(0), o]

        @cuda.jit(device=True, inline=True)
        def flat_load4(X, o, ld):
            return load4(X, uint64(0), o)
    return flat_load, flat_load4


flat_load, flat_load4 = _flat_loaders()


def _make_v6(cfg: GemmConfig, wide: bool = False, split: bool = False, flat: bool = False):
    """v4 with 128-bit shared fragment loads (outputs in runs of 4), transpose-independent global
    loads (each thread's tile coordinates, in the operand's own layout, and shared-memory offsets
    are computed once, so the K loop has a single load path whatever trans_a/trans_b are) and the
    BK steps of a tile as straight-line code. With ``wide`` (v7) whole K-tiles of interior blocks
    are read with 128-bit global loads (runs of 4 consecutive elements).

    With ``split`` (split-K, the ``v6k`` kernels) the grid has a z dimension: block z multiplies the
    z-th slice of K (slices of whole BK tiles) and writes ``alpha * partial`` into rows
    [z*M, (z+1)*M) of C, which is then a (gridDim.z*M, N) workspace; ``splitk_reduce`` sums them.
    This is for problems whose M x N has too few tiles to fill the GPU but whose K is long (a
    convolution's weight gradient: K = batch x output pixels).

    With ``flat`` (v9, with ``wide``) the interior fast path addresses its loads by flat offsets
    computed once per thread -- the first run's offset, the step per K-tile and per run, all
    transposition choices made before the loop -- and advanced by one add per K-tile
    (``flat_load4``), instead of recomputing ``row * pitch + column`` with the transposition
    selects for every load of every K-tile."""
    BM, BN, BK, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.TM, cfg.TN
    TX = BN // TN
    NT = cfg.threads
    LA = BM * BK // NT
    LB = BN * BK // NT
    SA = BM + PAD
    SB = BN + PAD
    NA = BK * SA
    NB = BK * SB
    NA2 = 2 * NA
    NB2 = 2 * NB
    assert BK % 8 == 0, cfg
    _, _, _, _, _, multiply_tile, epilogue = _tile_functions(cfg, vec=True)

    W = 4 if wide else 1           # consecutive elements per global load (v7: one 128-bit load)
    assert NT % (BM // W) == 0 and NT % (BN // W) == 0 and NT % (BK // W) == 0, cfg
    assert LA % W == 0 and LB % W == 0, cfg

    @cuda.jit(device=True, inline=True)
    def tile_coords(trans, tid, BX, SX):
        # Runs of W consecutive elements of an operand tile of BX (m or n) x BK values, run
        # q = tid + l*NT. Transposed source (K rows): the tile is BK x BX, read along BX; otherwise
        # (BX rows) it is BX x BK, read along k. NT is a multiple of the runs per row, so the
        # thread's runs share a first column c0 and step by a fixed number of rows. Returns
        # (r0, c0, row step, shared offset of the first element, shared step per run, shared
        # step per element of a run); shared offset = k*SX + x.
        if trans:
            r0 = tid // (BX // W)
            c0 = (tid - r0 * (BX // W)) * W
            return r0, c0, NT // (BX // W), r0 * SX + c0, (NT // (BX // W)) * SX, 1
        r0 = tid // (BK // W)
        c0 = (tid - r0 * (BK // W)) * W
        return r0, c0, NT // (BK // W), c0 * SX + r0, NT // (BK // W), SX

    @cuda.jit(device=True, inline=True)
    def gload(X, row0, col0, rlim, clim, rstep, pre, L):
        # runs of W elements from rows row0 + q*rstep, columns col0.., zero outside the operand
        for q in range(L // W):
            gr = row0 + q * rstep
            for u in range(W):
                gc = col0 + u
                pre[q * W + u] = X[gr, gc] if (gr < rlim and gc < clim) else float32(0.0)

    @cuda.jit(device=True, inline=True)
    def gload_full(X, row0, col0, rstep, pre, L):
        # gload for a K-tile lying inside both operands (no bounds tests, indices >= 0); v7 reads
        # each run with one 128-bit load (the launcher checked 16-byte alignment)
        gc = uint64(col0)
        for q in range(L // W):
            gr = uint64(row0 + q * rstep)
            if W == 4:
                pre[q * 4], pre[q * 4 + 1], pre[q * 4 + 2], pre[q * 4 + 3] = load4(X, gr, gc)
            else:
                pre[q] = X[gr, gc]

    @cuda.jit(device=True, inline=True)
    def gload_flat(X, off, rs, ld, pre, L):
        # gload_full by flat offsets: run q starts at off + q*rs (uint64, inside the operand)
        for q in range(L // W):
            o = off + uint64(q) * rs
            if W == 4:
                pre[q * 4], pre[q * 4 + 1], pre[q * 4 + 2], pre[q * 4 + 3] = flat_load4(X, o, ld)
            else:
                pre[q] = flat_load(X, o, ld)

    @cuda.jit(device=True, inline=True)
    def sstore(Xs, base, sstep, su, pre, L):
        for q in range(L // W):
            for u in range(W):
                Xs[uint64(base + q * sstep + u * su)] = pre[q * W + u]

    def gemm_v6(trans_a, trans_b, alpha, A, B, beta, C):
        As = cuda.shared.array(NA2, float32, alignment=SMEM_ALIGN)   # buffer b at offset b*NA
        Bs = cuda.shared.array(NB2, float32, alignment=SMEM_ALIGN)
        acc = cuda.local.array((TM, TN), float32)
        a_frag = cuda.local.array(TM, float32)
        b_frag = cuda.local.array(TN, float32)
        a_pre = cuda.local.array(LA, float32)                # next K-tile, in registers
        b_pre = cuda.local.array(LB, float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        m0 = cuda.blockIdx.y * BM
        n0 = cuda.blockIdx.x * BN
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        if split:
            # K slice of this block: [kb, K) in whole BK tiles; its partial goes to C rows z*M..
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
        ar, ac, a_rstep, a_s, a_sstep, a_su = tile_coords(trans_a, tid, BM, SA)
        br, bc, b_rstep, b_s, b_sstep, b_su = tile_coords(not trans_b, tid, BN, SB)   # B (K, N): K rows
        # operand origin (row, column) and limits in the operand's own layout, per K-tile k0:
        # A: (k0, m0) in (K, M) when trans_a else (m0, k0) in (M, K); B likewise with n
        a_rlim = K if trans_a else M
        a_clim = M if trans_a else K
        b_rlim = N if trans_b else K
        b_clim = K if trans_b else N
        interior = m0 + BM <= M and n0 + BN <= N    # this block's C tile has no ragged edge
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = float32(0.0)
        ntiles = (K - kb + BK - 1) // BK
        if flat:
            # flat offsets (element (r, c) at r*pitch + c) of this thread's first run in K-tile 0,
            # and the steps: one K-tile (BK columns, or BK rows when the operand has K rows), one run
            lda = uint64(A.strides[0] // 4)
            ldb = uint64(B.strides[0] // 4)
            a_cur = uint64(ar + (kb if trans_a else m0)) * lda + uint64(ac + (m0 if trans_a else kb))
            b_cur = uint64(br + (n0 if trans_b else kb)) * ldb + uint64(bc + (kb if trans_b else n0))
            a_step = uint64(BK) * lda if trans_a else uint64(BK)
            b_step = uint64(BK) if trans_b else uint64(BK) * ldb
            a_rs = uint64(a_rstep) * lda
            b_rs = uint64(b_rstep) * ldb
        gload(A, ar + (kb if trans_a else m0), ac + (m0 if trans_a else kb), a_rlim, a_clim, a_rstep,
              a_pre, LA)
        gload(B, br + (n0 if trans_b else kb), bc + (kb if trans_b else n0), b_rlim, b_clim, b_rstep,
              b_pre, LB)
        for t in range(ntiles):
            buf = t & 1
            # registers -> buffer `buf`. Its last readers multiplied tile t-2, and every thread
            # passed the barrier of iteration t-1 after that, so nobody reads it any more.
            sstore(As, buf * NA + a_s, a_sstep, a_su, a_pre, LA)
            sstore(Bs, buf * NB + b_s, b_sstep, b_su, b_pre, LB)
            cuda.syncthreads()  # buffer `buf` complete before anyone multiplies it
            k1 = kb + (t + 1) * BK
            if flat:
                a_cur += a_step         # the offsets of tile t+1
                b_cur += b_step
            if interior and k1 + BK <= K:   # the common case: tile t+1 is whole, no bounds tests
                if flat:
                    gload_flat(A, a_cur, a_rs, lda, a_pre, LA)
                    gload_flat(B, b_cur, b_rs, ldb, b_pre, LB)
                else:
                    gload_full(A, ar + (k1 if trans_a else m0), ac + (m0 if trans_a else k1), a_rstep,
                               a_pre, LA)
                    gload_full(B, br + (n0 if trans_b else k1), bc + (k1 if trans_b else n0), b_rstep,
                               b_pre, LB)
            elif k1 < K:        # global loads of tile t+1 are in flight during the multiply
                gload(A, ar + (k1 if trans_a else m0), ac + (m0 if trans_a else k1), a_rlim, a_clim,
                      a_rstep, a_pre, LA)
                gload(B, br + (n0 if trans_b else k1), bc + (k1 if trans_b else n0), b_rlim, b_clim,
                      b_rstep, b_pre, LB)
            multiply_tile(As, Bs, uint64(buf * NA + ty * 4), uint64(buf * NB + tx * 4), acc, a_frag,
                          b_frag)
        epilogue(C, acc, alpha, beta, m0, n0, tx, ty, M, N, crow)

    gemm_v6.__doc__ = (f"register-blocked GEMM, prefetch + double buffer, 128-bit smem fragment loads, "
                       f"single-path global loads{', 128-bit' if wide else ''}"
                       f"{' by flat offsets' if flat else ''}, k steps unrolled, tile "
                       f"{BM}x{BN}x{BK}, {TM}x{TN} per thread; block {cfg.block[0]}x{cfg.block[1]}, "
                       f"grid (N/{BN}, M/{BM}{', K slices' if split else ''})")
    opts = {}
    if cfg.min_blocks and not SIMULATOR:   # the simulator has no launch_bounds option
        opts["launch_bounds"] = (cfg.threads, cfg.min_blocks)
    return cuda.jit(**opts)(gemm_v6)


@cuda.jit
def splitk_reduce_v1(W, S, beta, C):
    """C[m, n] = sum_z W[z*M + m, n] + beta * C[m, n] (beta == 0 never reads C), z = 0..S-1 in
    order (deterministic); W is the (S*M, N) split-K workspace. One thread per element of C,
    grid-stride; consecutive threads take consecutive n (coalesced)."""
    M = C.shape[0]
    N = C.shape[1]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for idx in range(start, M * N, stride):
        m = idx // N
        n = idx - m * N
        total = float32(0.0)
        for z in range(S):
            total += W[z * M + m, n]
        if beta == float32(0.0):
            C[m, n] = total
        else:
            C[m, n] = total + beta * C[m, n]


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------

_SIG_C = "void(int32, int32, float32, float32[:, ::1], float32[:, ::1], float32, float32[:, ::1])"
_SIG_A = "void(int32, int32, float32, float32[:, :], float32[:, :], float32, float32[:, :])"
_SIG_REDUCE = ["void(float32[:, ::1], int32, float32, float32[:, ::1])",
               "void(float32[:, ::1], int32, float32, float32[:, :])"]

# name -> (kernel, block (x, y), tile (BM, BN)) ; the grid is (ceil(N/BN), ceil(M/BM)[, slices])
_LAUNCH: dict[str, tuple[Any, tuple[int, int], tuple[int, int]]] = {
    "gemm_v1": (gemm_v1, (V1_BLOCK, V1_BLOCK), (V1_BLOCK, V1_BLOCK)),
}


def _add(version: str, tile: str, make, **options) -> None:
    cfg = CONFIGS[tile]
    if version.startswith("v9"):    # ptxas otherwise gives v9 129 registers: 1 block per SM
        cfg = dataclasses.replace(cfg, min_blocks=2)
    _LAUNCH[f"gemm_{version}_{tile.replace('x', '_')}"] = (make(cfg, **options), cfg.block, (cfg.BM, cfg.BN))


_add("v4", "32x32x8", _make_v4)
for _tile in ("128x128x8", "128x128x16", "128x64x8", "64x128x8", "64x64x8"):
    _add("v6", _tile, _make_v6)
_add("v7", "128x128x8", _make_v6, wide=True)
_add("v9", "128x128x8", _make_v6, wide=True, flat=True)
_add("v6k", "64x64x8", _make_v6, split=True)
for _tile in ("64x64x32", "128x128x16"):
    _add("v6k", _tile, _make_v6, split=True)
    _add("v7k", _tile, _make_v6, wide=True, split=True)
_add("v9k", "64x64x32", _make_v6, wide=True, split=True, flat=True)


def _is_split(name: str) -> bool:
    return name.startswith(("gemm_v6k_", "gemm_v7k_", "gemm_v9k_"))


def _scalar_twin(name: str) -> str:
    """The kernel that runs for ``name`` on operands without 16-byte alignment: the v6 (v6k)
    kernel of the same tile for a 128-bit v7/v9 (v7k/v9k) one; any other kernel itself."""
    parts = name.split("_", 2)
    if len(parts) < 3:
        return name
    twin = {"v7": "v6", "v9": "v6", "v7k": "v6k", "v9k": "v6k"}.get(parts[1], parts[1])
    return f"gemm_{twin}_{parts[2]}"


# ----------------------------------------------------------------------------------------------
# the planner
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One way to compute a GEMM: ``kernel`` (a key of ``KERNELS``) launched once or, for a split-K
    kernel, over ``slices`` K slices summed by ``splitk_reduce_v1``."""
    kernel: str
    slices: int = 1

    def __str__(self) -> str:
        return f"{self.kernel} x{self.slices} + splitk_reduce_v1" if _is_split(self.kernel) else self.kernel


# The planner's table (plan() consults it in this order; the H200 measurements behind each entry
# are in BENCHMARKS.md). gemm() launches only the kernels it names and their scalar twins.
MEASURED: dict[tuple[int, int, int], Plan] = {      # (M, N, K): a GPU sweep's winner
    (2048, 2048, 2048): Plan("gemm_v7_128_128_8"),
    (1024, 1024, 1024): Plan("gemm_v6_64_128_8"),
    (96, 184525, 363): Plan("gemm_v7_128_128_8"),   # AlexNet conv1 forward
    (128, 27702, 1200): Plan("gemm_v6_128_128_16"),  # AlexNet conv2 forward (one group)
    (192, 43264, 1728): Plan("gemm_v6_64_128_8"),    # AlexNet conv4 forward (one group, 2 chunks)
}
SPLIT_KERNEL = "gemm_v6k_64_64_8"      # split-K where splitk_slices() > 1
WIDE_N_KERNEL = "gemm_v7_128_128_8"    # one row of 128-row tiles and >= WIDE_N_MIN_WAVES waves
WIDE_N_MIN_WAVES = 4
TILE_KERNEL: dict[str, str] = {        # otherwise: select_config's tile -> the kernel
    "128x128x8": "gemm_v6_128_128_8", "128x64x8": "gemm_v6_128_64_8", "64x128x8": "gemm_v6_64_128_8",
    "64x64x8": "gemm_v6_64_64_8", "32x32x8": "gemm_v4_32_32_8",
}

SMS = 132          # streaming multiprocessors of an H100 SXM (H200: also 132); for wave counts
_BY_SIZE = ("128x128x8", "128x64x8", "64x128x8", "64x64x8")
SPLITK_MIN_K = 2048      # below this a K slice is too short to pay for the reduction
SPLITK_MIN_SLICE = 256   # K values per slice at least
SPLITK_MAX = 64


@functools.lru_cache(maxsize=4096)
def select_config(M: int, N: int, K: int) -> str:
    """Tile configuration name for an (M, N, K) problem (K does not change the choice).

    The largest tile that gives at least two waves of blocks (2 x 132 SMs) while wasting at most a
    quarter of the tile area on the ragged edges; else the largest filling one wave at half use;
    else 64x64 (or 32x32 for tiny problems), which maximise the number of blocks.
    """
    def fit(name: str) -> tuple[int, float]:
        cfg = CONFIGS[name]
        blocks = ceil_div(M, cfg.BM) * ceil_div(N, cfg.BN)
        return blocks, (M * N) / (blocks * cfg.BM * cfg.BN)

    for min_blocks, min_use in ((2 * SMS, 0.75), (SMS, 0.5)):
        for name in _BY_SIZE:
            blocks, use = fit(name)
            if blocks >= min_blocks and use >= min_use:
                return name
    return "64x64x8" if fit("64x64x8")[0] >= SMS // 2 else "32x32x8"


@functools.lru_cache(maxsize=4096)
def splitk_slices(M: int, N: int, K: int, kernel: str = SPLIT_KERNEL) -> int:
    """How many K slices to cut a problem into for split kernel ``kernel``: 1 when its (M, N)
    tiles already fill the GPU or K is short; else enough slices for about two waves of blocks
    (``2 * SMS``), each slice at least ``SPLITK_MIN_SLICE`` long, at most ``SPLITK_MAX``."""
    bm, bn = _LAUNCH[kernel][2]
    blocks = ceil_div(M, bm) * ceil_div(N, bn)
    if blocks >= SMS or K < SPLITK_MIN_K:
        return 1
    return max(1, min(ceil_div(2 * SMS, blocks), K // SPLITK_MIN_SLICE, SPLITK_MAX))


@functools.lru_cache(maxsize=4096)
def _rule(M: int, N: int, K: int) -> Plan:
    """The plan of the rules that follow ``MEASURED`` in the table."""
    slices = splitk_slices(M, N, K, SPLIT_KERNEL)
    if slices > 1:
        return Plan(SPLIT_KERNEL, slices)
    tile = select_config(M, N, K)
    if tile == "128x128x8" and M <= 128 and ceil_div(N, 128) >= WIDE_N_MIN_WAVES * SMS:
        return Plan(WIDE_N_KERNEL)
    return Plan(TILE_KERNEL[tile])


def plan(M: int, N: int, K: int, aligned: bool = True) -> Plan:
    """What ``gemm`` launches for an (M, N, K) problem: ``MEASURED``'s entry, else split-K where
    ``splitk_slices`` > 1, else the wide-N kernel or the kernel of ``select_config``'s tile.
    ``aligned``: A and B are 16-byte aligned with 16-byte row pitches (``kernels._vec.aligned16``),
    as the 128-bit kernels need; else their scalar twin runs. The transposes do not change the
    choice."""
    chosen = MEASURED.get((M, N, K)) or _rule(M, N, K)
    return chosen if aligned else Plan(_scalar_twin(chosen.kernel), chosen.slices)


def _launched() -> set[str]:
    """The kernels gemm() may launch: those the planner's table names and their scalar twins."""
    names = {p.kernel for p in MEASURED.values()} | set(TILE_KERNEL.values()) | {SPLIT_KERNEL, WIDE_N_KERNEL}
    return names | {_scalar_twin(n) for n in names}


# signatures: C-contiguous operands for every kernel (what tests and the benchmark's sweep launch
# on fresh arrays), row-strided views too for the kernels gemm() launches (conv weight groups and
# column slices). The PTX check compiles exactly these.
KERNELS: dict[str, tuple[Any, list[str]]] = {
    name: (k, [_SIG_C, _SIG_A] if name in _launched() else [_SIG_C]) for name, (k, _, _) in _LAUNCH.items()}
KERNELS["splitk_reduce_v1"] = (splitk_reduce_v1, _SIG_REDUCE)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------

def _check(trans_a: bool, trans_b: bool, A, B, C) -> tuple[int, int, int]:
    for nm, X in (("A", A), ("B", B), ("C", C)):
        if len(X.shape) != 2 or np.dtype(X.dtype) != np.float32:
            raise ValueError(f"gemm: {nm} must be a 2-D float32 array, got shape {X.shape} dtype {X.dtype}")
        if X.shape[1] > 1 and X.strides[1] != 4:
            raise ValueError(f"gemm: {nm} must have unit stride along its last axis (strides {X.strides})")
    M, N = C.shape
    am, ak = (A.shape[1], A.shape[0]) if trans_a else A.shape
    bk, bn = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if am != M or bn != N or ak != bk:
        raise ValueError(f"gemm: shapes do not agree: op(A) {am}x{ak}, op(B) {bk}x{bn}, C {M}x{N}")
    return M, N, ak


def _run(kernel: str, slices: int, trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C,
         M: int, N: int) -> None:
    """Launch ``kernel`` (checked operands): directly into C, or for a split-K kernel over
    ``slices`` K slices into a workspace (partials with beta 0) summed into C by
    splitk_reduce_v1, in a fixed order (deterministic)."""
    kern, block, (bm, bn) = _LAUNCH[kernel]
    ta, tb = np.int32(bool(trans_a)), np.int32(bool(trans_b))
    if not _is_split(kernel):
        kern[(ceil_div(N, bn), ceil_div(M, bm)), block](ta, tb, np.float32(alpha), A, B, np.float32(beta), C)
        return
    W = scratch("gemm.splitk", slices * M * N).reshape(slices * M, N)
    grid = (ceil_div(N, bn), ceil_div(M, bm), slices)
    kern[grid, block](ta, tb, np.float32(alpha), A, B, np.float32(0.0), W)
    blocks, threads = grid_1d(M * N)
    splitk_reduce_v1[blocks, threads](W, np.int32(slices), np.float32(beta), C)


def launch(p: Plan, trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> None:
    """Run plan ``p`` (any kernel of ``KERNELS`` but splitk_reduce_v1; slices > 1 only for a split
    kernel): ``C = alpha*op(A)@op(B) + beta*C`` in place, as ``gemm``. On operands without 16-byte
    alignment a 128-bit kernel's scalar twin runs. For tests and the benchmark's sweep; ``gemm``
    runs ``plan``'s choice."""
    if p.kernel not in _LAUNCH or p.slices < 1 or (p.slices > 1 and not _is_split(p.kernel)):
        raise ValueError(f"gemm: {p!r} is not a plan of KERNELS (slices > 1 needs a split-K kernel)")
    A, B, C = as_device(A), as_device(B), as_device(C)
    M, N, _ = _check(trans_a, trans_b, A, B, C)
    if M and N:
        kernel = p.kernel if aligned16(A, B) else _scalar_twin(p.kernel)
        _run(kernel, p.slices, trans_a, trans_b, alpha, A, B, beta, C, M, N)


def gemm(trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> None:
    """``C = alpha * op(A) @ op(B) + beta * C`` in place (float32, device arrays, returns None).

    ``op(A)`` is (M, K): ``A`` (M, K) or, with ``trans_a``, (K, M); ``op(B)`` is (K, N): ``B`` (K, N)
    or, with ``trans_b``, (N, K); ``C`` is (M, N). Operands may be row-strided views; with
    ``beta == 0`` C is not read. Launches ``plan(M, N, K, aligned)``.
    """
    A, B, C = as_device(A), as_device(B), as_device(C)
    M, N, K = _check(trans_a, trans_b, A, B, C)
    if M and N:
        p = plan(M, N, K, aligned16(A, B))
        _run(p.kernel, p.slices, trans_a, trans_b, alpha, A, B, beta, C, M, N)
