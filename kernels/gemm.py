"""GEMM: ``C = alpha * op(A) @ op(B) + beta * C`` in float32 (BLAS sgemm semantics, row-major).

Shapes: ``op(A)`` is (M, K) -- ``A`` is (M, K), or (K, M) when ``trans_a``; ``op(B)`` is (K, N) --
``B`` is (K, N), or (N, K) when ``trans_b``; ``C`` is (M, N). Any M, N, K >= 1 (edge tiles are
zero-filled). Each operand may be a row-strided 2-D view (a column slice of a wider array: the
leading dimension is ``strides[0] / 4``; the last stride must be 4 bytes). ``beta == 0`` never reads
``C`` (C may hold NaN/garbage, as in BLAS).

Versions (``KERNELS``; every version stays and is tested):

- ``gemm_v1``: naive, one thread per C element, a K-long dot product straight from global memory.
  Block 16x16, grid (ceil(N/16), ceil(M/16)).
- ``gemm_v2``: shared-memory tiling, 16x16 tiles of op(A) and op(B) staged through shared memory, one
  output per thread. Block 16x16.
- ``gemm_v3_<config>``: 2-D register blocking. A block computes a BM x BN tile of C with
  (BM/TM) x (BN/TN) threads; each thread owns TM x TN outputs in registers, strided so that every
  shared-memory read of a warp is conflict-free (rows ``ty + i*(BM/TM)``, columns ``tx + j*(BN/TN)``).
  The A tile is stored transposed in shared memory (``As[k][m]``) so both operands are read along
  the fast index; rows are padded by 4 floats (see ``PAD``). Grid (ceil(N/BN), ceil(M/BM)).
- ``gemm_v4_<config>``: v3 plus register prefetch (the next K-tile is loaded from global memory into
  registers while the current one is multiplied) and double-buffered shared memory, so one barrier
  per K-tile instead of two.
- ``gemm_v5_<config>`` (configs with TM, TN multiples of 4): v4 with each thread's outputs
  in runs of 4 consecutive rows/columns, so its A and B fragments are read from shared memory with
  128-bit ``ld.shared.v4`` loads (4x fewer shared-load instructions per FMA), and with
  transpose-independent global loads: a thread's tile elements share one column and step by a
  fixed number of rows in the operand's own layout, computed once, so the K loop has a single load
  path and few live address registers (128x128x8: ~110 registers -> 2 blocks per SM, vs 155 for v4).
  Blocks whose C tile has no ragged edge load whole K-tiles without bounds tests. The global loads
  stay scalar: operands may be any row-strided view, with no alignment guarantee for 128-bit
  global loads (they are 8 loads per thread per 512 FMAs at 128x128x8).
- ``gemm_v6_<config>`` (promoted): v5 with the BK steps of each K-tile written out as straight-line
  code (NVVM leaves v5's k loop rolled: ~13 loop/address instructions per 64 FMAs). At 128x128x8 the
  K-tile body is 512 FMAs + 32 ``ld.shared.v4`` + ~19 other instructions, 127 registers (2 blocks
  of 256 threads per SM). Promoted on instruction count, not yet on a measurement: the benchmark's
  autotune table (every ``KERNELS`` entry) decides between v5, v6 and v7.
- ``gemm_v7_<config>`` (128x128 tiles): v6 whose interior blocks read whole K-tiles with 128-bit
  global loads (``ld.global.v4.f32`` through a small numba ``@intrinsic`` emitting an aligned LLVM
  vector load; the simulator runs four scalar loads instead): each thread loads runs of 4
  consecutive elements, 2 loads per K-tile instead of 8 at 128x128x8 (128 registers). Needs A
  and B 16-byte aligned with 16-byte row pitches (``gemm_with`` runs v6 otherwise). Set
  ``PROMOTED = "v7"`` if the benchmark shows it faster: ``gemm`` then falls back to v6 for
  unaligned operands and to older versions for tiles without v7.

- ``gemm_v8_<config>`` (``V8_CONFIGS``; not launched by ``gemm`` until measured): warp tiling.
  v6 (register prefetch + double-buffered shared memory with one barrier per K-tile, A transposed
  in shared memory, 128-bit fragment loads, unrolled k) with a different ownership of C: each of
  the 8 warps computes a contiguous WM x WN sub-tile (32x64 at 128x128x8) and its lanes form a
  4 x 8 grid, each lane 2x2 runs of 4x4 outputs. Per k step a warp reads 32 + 64 floats of shared
  memory (v6's 16 x 128 warp footprint: 16 + 128) in 4 wavefronts instead of 6 (4 distinct As
  words = 64 B, 8 consecutive Bs words = 128 B; the rest are broadcasts). 1-D blocks of 256
  threads; 127 registers at 128x128x8 (2 blocks per SM). Predicted: a few % over v6 at 4096^3
  (shared-memory wavefronts were ~37 % of the LSU budget in v6, 25 % in v8; FFMA issue is the
  limit for both), i.e. ~83-86 % of cuBLAS.
- ``gemm_v8w_<config>`` (``V8_WIDE``): v8 with v7's 128-bit global loads of interior K-tiles
  (same alignment rule: ``gemm_with`` runs v8 for unaligned operands).
- ``gemm_v9_<config>`` (``V9_CONFIGS``; not launched by ``gemm`` until measured): v7 whose
  interior K-tiles are addressed by flat offsets set up once per thread and advanced by one add
  per K-tile (``flat_load4``), with every transposition choice made before the loop; launch
  bounds hold it to 128 registers (2 blocks per SM; 129 without). nvdisasm of one K-tile at
  128x128x8: 605 instructions for 512 FFMA (84.6 %) against v7's 620 (82.6 %): the
  global->shared staging drops from 59 to 42 instructions. v7 measured 82.8 % of cuBLAS at 4096^3,
  about its FFMA share (issue-bound), so v9 is predicted at ~85 %. ``gemm_v9k_64_64_32`` is the
  split-K twin of ``gemm_v7k_64_64_32``.

Dispatch (``kernel_for``): the measured per-shape winners of the H200 run in ``MEASURED_BEST``
(v7 at 2048^3 and on AlexNet conv1 fwd, v6 tiles other than ``select_config``'s at 1024^3 and conv2
fwd), v7 for conv1-like shapes (``_wide_n``: one row of 128-row tiles, >= 4 waves of blocks), else
the ``PROMOTED`` version of ``select_config``'s tile. v8/v8w stay out of it until a GPU run shows
them faster (then ``PROMOTED = "v8"`` or ``"v8w"``: the fallback order ``_VERSIONS`` already lists
them, and ``MEASURED_BEST`` entries that v8 beats should go).

Tile configurations are named in ``CONFIGS`` (``"128x128x8"``, ...); ``select_config(M, N, K)`` picks
one by shape (big tiles for big problems, small tiles when the grid would not fill the GPU), and a
benchmark can time every ``(version, config)`` through ``gemm_with(kernel_name, ...)``.

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
from numba import cuda, float32, int64, uint64

from ._launch import SIMULATOR, as_device, ceil_div, grid_1d

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
# v2: shared-memory tiles, one output per thread
# ----------------------------------------------------------------------------------------------

V2_TILE = 16    # 16x16 threads; two 16x17 float tiles = 2.2 KB shared memory
V2_ROW = V2_TILE + 1   # +1 float of padding per row: the transposed-operand stores write a
                       # column of the tile, and a 17-float row stride puts its 16 rows in 16 banks


@cuda.jit
def gemm_v2(trans_a, trans_b, alpha, A, B, beta, C):
    """Shared-memory tiled GEMM, 16x16 tiles of op(A) and op(B), one C element per thread; block 16x16,
    grid (N/16, M/16)."""
    As = cuda.shared.array((V2_TILE, V2_ROW), float32)
    Bs = cuda.shared.array((V2_TILE, V2_ROW), float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    i = cuda.blockIdx.y * V2_TILE + ty     # row of C
    j = cuda.blockIdx.x * V2_TILE + tx     # column of C
    M = C.shape[0]
    N = C.shape[1]
    K = A.shape[0] if trans_a else A.shape[1]
    acc = float32(0.0)
    for k0 in range(0, K, V2_TILE):
        # As[ty][tx] = op(A)[i, k0 + tx]; Bs[ty][tx] = op(B)[k0 + ty, j]; zero outside
        ka = k0 + tx
        if trans_a:
            # read A[k, m] along m (coalesced): thread (tx, ty) loads A[k0+ty, m0+tx] into As[tx][ty]
            ma = cuda.blockIdx.y * V2_TILE + tx
            kk = k0 + ty
            As[tx, ty] = A[kk, ma] if (kk < K and ma < M) else float32(0.0)
        else:
            As[ty, tx] = A[i, ka] if (i < M and ka < K) else float32(0.0)
        kb = k0 + ty
        if trans_b:
            # read B[n, k] along k (coalesced): thread (tx, ty) loads B[n0+ty, k0+tx] into Bs[tx][ty]
            nb = cuda.blockIdx.x * V2_TILE + ty
            kk = k0 + tx
            Bs[tx, ty] = B[nb, kk] if (nb < N and kk < K) else float32(0.0)
        else:
            Bs[ty, tx] = B[kb, j] if (kb < K and j < N) else float32(0.0)
        cuda.syncthreads()  # tiles complete before anyone reads them
        for k in range(V2_TILE):
            acc += As[ty, k] * Bs[k, tx]
        cuda.syncthreads()  # everyone done reading before the next iteration overwrites the tiles
    if i < M and j < N:
        if beta == float32(0.0):
            C[i, j] = alpha * acc
        else:
            C[i, j] = alpha * acc + beta * C[i, j]


# ----------------------------------------------------------------------------------------------
# v3 / v4: register blocking, one kernel per tile configuration (a closure over constants, since
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


def _load4_intrinsic():
    """``load4(X, i, j)`` -> ``(X[i, j], X[i, j+1], X[i, j+2], X[i, j+3])`` with one 128-bit
    ``ld.global.v4.f32`` (an LLVM ``<4 x float>`` load, align 16; no inline PTX needed). The caller
    guarantees 16-byte alignment of ``&X[i, j]`` and non-negative indices."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    @intrinsic
    def load4(typingctx, arr, i, j):
        if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 2):
            return None
        ret = types.UniTuple(types.float32, 4)

        def codegen(context, builder, signature, args):
            aty, ity, jty = signature.args
            ary = context.make_array(aty)(context, builder, args[0])
            inds = [context.cast(builder, args[1], ity, types.intp),
                    context.cast(builder, args[2], jty, types.intp)]
            ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                            shape=cgutils.unpack_tuple(builder, ary.shape),
                                            strides=cgutils.unpack_tuple(builder, ary.strides),
                                            layout=aty.layout, inds=inds, wraparound=False,
                                            boundscheck=False)
            vec = builder.load(builder.bitcast(ptr, ir.VectorType(ir.FloatType(), 4).as_pointer()),
                               align=16)
            vals = [builder.extract_element(vec, ir.Constant(ir.IntType(32), k)) for k in range(4)]
            return context.make_tuple(builder, ret, vals)

        return ret(arr, i, j), codegen

    return load4


@cuda.jit(device=True, inline=True)
def _load4_scalar(X, i, j):
    """Simulator stand-in for the 128-bit load: four scalar loads."""
    return X[i, j], X[i, j + uint64(1)], X[i, j + uint64(2)], X[i, j + uint64(3)]


load4 = _load4_scalar if SIMULATOR else _load4_intrinsic()


@dataclass(frozen=True)
class GemmConfig:
    """Tile configuration of the register-blocked kernels: block tile BM x BN, K step BK, each
    thread computing TM x TN outputs; ``threads = (BM/TM) * (BN/TN)``."""
    BM: int
    BN: int
    BK: int
    TM: int
    TN: int
    min_blocks: int = 0   # v5 launch bounds: ask ptxas to fit this many blocks per SM (0: none)

    @property
    def threads(self) -> int:
        return (self.BM // self.TM) * (self.BN // self.TN)

    @property
    def block(self) -> tuple[int, int]:
        """CUDA block (x, y) = (BN/TN, BM/TM)."""
        return self.BN // self.TN, self.BM // self.TM

    @property
    def smem_bytes(self) -> int:
        """Shared memory of one (single-buffered) A and B tile pair, padding included."""
        return 4 * self.BK * (self.BM + self.BN + 2 * PAD)


# No launch bounds by default: without them ptxas already gives v5 112 registers at 128x128 (2 blocks
# of 256 threads per SM) and 64 at 128x64 (4 blocks); bounds only made it use more (nvJitLink
# report, docs/kernels.md). min_blocks stays as a knob for benchmark experiments.
CONFIGS: dict[str, GemmConfig] = {
    "128x128x8": GemmConfig(128, 128, 8, 8, 8),       # 256 threads, 8x8 per thread: the big-GEMM tile
    "128x128x16": GemmConfig(128, 128, 16, 8, 8),     # same, half the barriers per K, 2x shared memory
    "128x64x8": GemmConfig(128, 64, 8, 8, 4),         # 256 threads, 8x4: tall C
    "64x128x8": GemmConfig(64, 128, 8, 4, 8),         # 256 threads, 4x8: wide C (conv: small Cout)
    "64x64x8": GemmConfig(64, 64, 8, 4, 4),           # 256 threads, 4x4: mid-size problems
    "32x32x8": GemmConfig(32, 32, 8, 2, 2),           # 256 threads, 2x2: small problems, many blocks
}


def _tile_functions(cfg: GemmConfig, vec: bool = False):
    """Device functions shared by v3, v4 and v5 for one configuration (closures over its constants):
    global -> registers loads of one K-tile of op(A)/op(B), registers -> shared stores, the
    BK-step outer-product update of the TM x TN accumulators, and the epilogue.

    Thread (tx, ty) owns the C rows ``ty*RI + (i // RI)*RO + i % RI`` (i < TM) and the columns
    ``tx*CI + (j // CI)*CO + j % CI`` (j < TN):
    - ``vec=False`` (v3/v4): RI = CI = 1, RO = BM/TM, CO = BN/TN -- outputs strided by the thread
      count, so each scalar shared read of a warp touches 16 consecutive floats (no bank conflict);
    - ``vec=True`` (v5): RI = CI = 4, RO = BM/(TM/4), CO = BN/(TN/4) -- runs of 4 consecutive outputs,
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
        # multiply_tile with the k steps written out 8 at a time: NVVM keeps the k loop of
        # multiply_tile rolled (~13 loop/address instructions per 64 FMAs at 8x8 per thread)
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

    if BK % 8 == 0:
        return gload_a, gload_b, sstore_a, sstore_b, (multiply_tile, multiply_tile_unrolled), epilogue
    return gload_a, gload_b, sstore_a, sstore_b, (multiply_tile, None), epilogue


def _make_v3(cfg: GemmConfig):
    """Register-blocked GEMM kernel for one configuration: per K-tile load, barrier, multiply,
    barrier."""
    BM, BN, BK, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.TM, cfg.TN
    TX = BN // TN
    LA = BM * BK // cfg.threads
    LB = BN * BK // cfg.threads
    NA = BK * (BM + PAD)           # shared floats per A tile
    NB = BK * (BN + PAD)
    gload_a, gload_b, sstore_a, sstore_b, (multiply_tile, _), epilogue = _tile_functions(cfg)

    def gemm_v3(trans_a, trans_b, alpha, A, B, beta, C):
        As = cuda.shared.array(NA, float32, alignment=SMEM_ALIGN)    # As[k*SA + m] = op(A)[m0+m, k0+k]
        Bs = cuda.shared.array(NB, float32, alignment=SMEM_ALIGN)    # Bs[k*SB + n] = op(B)[k0+k, n0+n]
        acc = cuda.local.array((TM, TN), float32)            # registers (loops fully unrolled)
        a_frag = cuda.local.array(TM, float32)
        b_frag = cuda.local.array(TN, float32)
        a_pre = cuda.local.array(LA, float32)
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
        for k0 in range(0, K, BK):
            gload_a(A, trans_a, a_pre, tid, m0, k0, M, K)
            gload_b(B, trans_b, b_pre, tid, n0, k0, N, K)
            sstore_a(As, 0, trans_a, a_pre, tid)
            sstore_b(Bs, 0, trans_b, b_pre, tid)
            cuda.syncthreads()  # both tiles complete before any thread reads them
            multiply_tile(As, Bs, uint64(ty), uint64(tx), acc, a_frag, b_frag)
            cuda.syncthreads()  # all reads of this K-tile done before the next stores overwrite it
        epilogue(C, acc, alpha, beta, m0, n0, tx, ty, M, N, 0)

    gemm_v3.__doc__ = (f"register-blocked GEMM, tile {BM}x{BN}x{BK}, {TM}x{TN} outputs per thread; "
                       f"block {cfg.block[0]}x{cfg.block[1]}, grid (N/{BN}, M/{BM})")
    return cuda.jit(gemm_v3)


def _make_v4(cfg: GemmConfig):
    """v3 + register prefetch of the next K-tile and double-buffered shared memory (one barrier
    per K-tile)."""
    BM, BN, BK, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.TM, cfg.TN
    TX = BN // TN
    LA = BM * BK // cfg.threads
    LB = BN * BK // cfg.threads
    NA = BK * (BM + PAD)
    NB = BK * (BN + PAD)
    NA2 = 2 * NA                   # two buffers per operand
    NB2 = 2 * NB
    gload_a, gload_b, sstore_a, sstore_b, (multiply_tile, _), epilogue = _tile_functions(cfg)

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


def _make_v5(cfg: GemmConfig, unroll: bool = False, wide: bool = False, split: bool = False,
             flat: bool = False):
    """v4 with 128-bit shared fragment loads (outputs in runs of 4) and transpose-independent
    global loads: each thread's tile coordinates (row/column in the operand's own layout) and
    shared-memory offsets are computed once, so the K loop has a single load path whatever
    trans_a/trans_b are (fewer live address registers than v4's two branches). With ``unroll``
    (v6) the BK steps of a tile are straight-line code; with ``wide`` too (v7) whole K-tiles of
    interior blocks are read with 128-bit global loads (runs of 4 consecutive elements).

    With ``split`` (split-K, the ``v6k`` kernels) the grid has a z dimension: block z multiplies the
    z-th slice of K (slices of whole BK tiles) and writes ``alpha * partial`` into rows
    [z*M, (z+1)*M) of C, which is then a (gridDim.z*M, N) workspace; ``splitk_reduce`` sums them.
    This is for problems whose M x N has too few tiles to fill the GPU but whose K is long (a
    convolution's weight gradient: K = batch x output pixels).

    With ``flat`` (v9, with ``wide``) the interior fast path addresses its loads by flat offsets
    computed once per thread -- the first run's offset, the step per K-tile and per run, all
    transposition choices made before the loop -- and advanced by one add per K-tile
    (``flat_load4``), instead of recomputing ``row * pitch + column`` with the transposition
    selects for every load of every K-tile (~38 of v7's ~59 staging instructions per K-tile,
    nvdisasm)."""
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
    _, _, _, _, (multiply_rolled, multiply_unrolled), epilogue = _tile_functions(cfg, vec=True)
    multiply_tile = multiply_unrolled if unroll else multiply_rolled
    assert multiply_tile is not None, cfg

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

    def gemm_v5(trans_a, trans_b, alpha, A, B, beta, C):
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

    gemm_v5.__doc__ = (f"register-blocked GEMM, prefetch + double buffer, 128-bit smem fragment loads, "
                       f"single-path global loads{', 128-bit' if wide else ''}"
                       f"{' by flat offsets' if flat else ''}{', k steps unrolled' if unroll else ''}, tile "
                       f"{BM}x{BN}x{BK}, {TM}x{TN} per thread; block {cfg.block[0]}x{cfg.block[1]}, "
                       f"grid (N/{BN}, M/{BM}{', K slices' if split else ''})")
    opts = {}
    if cfg.min_blocks and not SIMULATOR:   # the simulator has no launch_bounds option
        opts["launch_bounds"] = (cfg.threads, cfg.min_blocks)
    return cuda.jit(**opts)(gemm_v5)


# ----------------------------------------------------------------------------------------------
# v8: warp tiling (each warp owns a contiguous sub-tile of C)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarpConfig:
    """Tile configuration of the warp-tiled kernels (v8): block tile BM x BN, K step BK; the block's
    warps tile it as (BM/WM) x (BN/WN) sub-tiles of WM x WN, and inside a warp the 32 lanes form
    (WM/TM) x (WN/TN) threads, each owning TM x TN outputs as (TM/4) x (TN/4) runs of 4 x 4.
    ``threads = 32 * (BM/WM) * (BN/WN)``; the block is 1-D."""
    BM: int
    BN: int
    BK: int
    WM: int
    WN: int
    TM: int
    TN: int
    min_blocks: int = 0   # launch bounds: ask ptxas to fit this many blocks per SM (0: none)

    @property
    def threads(self) -> int:
        return 32 * (self.BM // self.WM) * (self.BN // self.WN)

    @property
    def block(self) -> tuple[int, int]:
        """CUDA block (x, y) = (threads, 1)."""
        return self.threads, 1

    @property
    def smem_bytes(self) -> int:
        """Shared memory of the two (double-buffered) A and B tile pairs, padding included."""
        return 2 * 4 * self.BK * (self.BM + self.BN + 2 * PAD)


# v8 tiles: 256 threads (8 warps) each, lanes arranged 4 (m) x 8 (n) in every config, so one
# 128-bit fragment read of a warp touches 4 distinct 16-byte words of As (64 B) and 8 consecutive
# ones of Bs (128 B): one shared-memory wavefront each, the other lanes get broadcasts.
V8_CONFIGS: dict[str, WarpConfig] = {
    "128x128x8": WarpConfig(128, 128, 8, 32, 64, 8, 8),   # 4 x 2 warps of 32x64; 8x8 per thread
    "128x64x8": WarpConfig(128, 64, 8, 32, 32, 8, 4),     # 4 x 2 warps of 32x32; 8x4
    "64x128x8": WarpConfig(64, 128, 8, 16, 64, 4, 8),     # 4 x 2 warps of 16x64; 4x8
    "64x64x8": WarpConfig(64, 64, 8, 16, 32, 4, 4),       # 4 x 2 warps of 16x32; 4x4
}
V8_WIDE = ("128x128x8",)   # configs that also get a v8w kernel (128-bit global loads, as v7)


def _make_v8(cfg: WarpConfig, wide: bool = False):
    """Warp-tiled GEMM kernel for one configuration (v8; ``wide``: v8w, 128-bit global loads of
    interior K-tiles as in v7).

    Same pipeline as v6: the next K-tile is loaded from global memory into registers while the
    current one is multiplied, registers -> the other shared buffer at the top of the next
    iteration, one barrier per K-tile; A is stored transposed (``As[k][m]``) so both fragments are
    read along the fast index; the BK steps of a K-tile are straight-line code. What changes is
    which outputs a thread owns: warp w computes the contiguous WM x WN sub-tile
    (w // (BN/WN), w % (BN/WN)) of the block's C tile and lane l the rows
    ``wm*WM + (l // LN)*4 + r*RO + (0..3)`` and columns ``wn*WN + (l % LN)*4 + c*CO + (0..3)``
    (LN = WN/TN lanes along n, RO = 4*WM/TM, CO = 4*WN/TN). Per k step a warp then reads
    WM + WN = 96 floats of shared memory for its 2048 products (v6: 16 + 128 = 144), in 4
    conflict-free wavefronts instead of 6.
    """
    BM, BN, BK, WM, WN, TM, TN = cfg.BM, cfg.BN, cfg.BK, cfg.WM, cfg.WN, cfg.TM, cfg.TN
    NT = cfg.threads
    WARPS_N = BN // WN             # warps along n
    LN = WN // TN                  # lanes along n inside a warp
    LM = WM // TM                  # lanes along m
    RO = 4 * LM                    # distance between a thread's row runs (= WM / (TM/4))
    CO = 4 * LN                    # distance between its column runs
    LA = BM * BK // NT             # A-tile elements per thread per K-tile
    LB = BN * BK // NT
    SA = BM + PAD
    SB = BN + PAD
    NA = BK * SA
    NB = BK * SB
    NA2 = 2 * NA
    NB2 = 2 * NB
    W = 4 if wide else 1           # consecutive elements per global load
    assert LM * LN == 32 and BM % WM == 0 and BN % WN == 0 and TM % 4 == 0 and TN % 4 == 0, cfg
    assert BK % 8 == 0 and NT % (BM // W) == 0 and NT % (BN // W) == 0 and NT % (BK // W) == 0, cfg
    assert LA % W == 0 and LB % W == 0 and NA % 4 == 0 and NB % 4 == 0, cfg

    # Global -> register -> shared staging: the same scheme as v5-v7 (a thread's runs of W
    # elements share one column of the operand and step by a fixed number of rows, so one load
    # path serves every transpose), repeated here so that v8 can change without touching v5-v7.
    @cuda.jit(device=True, inline=True)
    def tile_coords(trans, tid, BX, SX):
        # (first row, first column, row step, shared offset of the first element, shared step
        # per run, shared step per element of a run); shared offset = k*SX + x
        if trans:    # the operand is stored with K rows: its tile is BK x BX, read along BX
            r0 = tid // (BX // W)
            c0 = (tid - r0 * (BX // W)) * W
            return r0, c0, NT // (BX // W), r0 * SX + c0, (NT // (BX // W)) * SX, 1
        r0 = tid // (BK // W)       # BX rows, BK columns, read along k
        c0 = (tid - r0 * (BK // W)) * W
        return r0, c0, NT // (BK // W), c0 * SX + r0, NT // (BK // W), SX

    @cuda.jit(device=True, inline=True)
    def gload(X, row0, col0, rlim, clim, rstep, pre, L):
        # edge K-tiles / edge blocks: zero outside the operand
        for q in range(L // W):
            gr = row0 + q * rstep
            for u in range(W):
                gc = col0 + u
                pre[q * W + u] = X[gr, gc] if (gr < rlim and gc < clim) else float32(0.0)

    @cuda.jit(device=True, inline=True)
    def gload_full(X, row0, col0, rstep, pre, L):
        # a K-tile inside both operands: no bounds tests, non-negative indices; v8w reads each
        # run with one 128-bit load (the launcher checked 16-byte alignment)
        gc = uint64(col0)
        for q in range(L // W):
            gr = uint64(row0 + q * rstep)
            if W == 4:
                v0, v1, v2, v3 = load4(X, gr, gc)
                pre[q * 4] = v0
                pre[q * 4 + 1] = v1
                pre[q * 4 + 2] = v2
                pre[q * 4 + 3] = v3
            else:
                pre[q] = X[gr, gc]

    @cuda.jit(device=True, inline=True)
    def sstore(Xs, base, sstep, su, pre, L):
        for q in range(L // W):
            for u in range(W):
                Xs[uint64(base + q * sstep + u * su)] = pre[q * W + u]

    @cuda.jit(device=True, inline=True)
    def k_step(As, Bs, a, b, acc, a_frag, b_frag):
        # one k: a/b point at this lane's first A/B run in row k of the tiles (multiples of 4
        # floats, so each run of 4 is one 128-bit ld.shared.v4); TM*TN FMAs
        for i in range(TM):
            a_frag[i] = As[a + uint64((i // 4) * RO + i % 4)]
        for j in range(TN):
            b_frag[j] = Bs[b + uint64((j // 4) * CO + j % 4)]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] += a_frag[i] * b_frag[j]

    @cuda.jit(device=True, inline=True)
    def multiply_tile(As, Bs, abase, bbase, acc, a_frag, b_frag):
        # the BK steps of one K-tile written out 8 at a time (NVVM keeps a k loop rolled)
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
    def epilogue(C, acc, alpha, beta, gm0, gn0, M, N):
        # gm0/gn0: the lane's first row/column in C; beta == 0 never reads C (uniform branch)
        if beta == float32(0.0):
            for i in range(TM):
                gm = gm0 + (i // 4) * RO + i % 4
                if gm < M:
                    for j in range(TN):
                        gn = gn0 + (j // 4) * CO + j % 4
                        if gn < N:
                            C[gm, gn] = alpha * acc[i, j]
        else:
            for i in range(TM):
                gm = gm0 + (i // 4) * RO + i % 4
                if gm < M:
                    for j in range(TN):
                        gn = gn0 + (j // 4) * CO + j % 4
                        if gn < N:
                            C[gm, gn] = alpha * acc[i, j] + beta * C[gm, gn]

    def gemm_v8(trans_a, trans_b, alpha, A, B, beta, C):
        As = cuda.shared.array(NA2, float32, alignment=SMEM_ALIGN)   # buffer b at offset b*NA
        Bs = cuda.shared.array(NB2, float32, alignment=SMEM_ALIGN)
        acc = cuda.local.array((TM, TN), float32)            # registers (loops fully unrolled)
        a_frag = cuda.local.array(TM, float32)
        b_frag = cuda.local.array(TN, float32)
        a_pre = cuda.local.array(LA, float32)                # next K-tile, in registers
        b_pre = cuda.local.array(LB, float32)
        tid = cuda.threadIdx.x
        # this lane's first row (of As / of the C tile) and first column (of Bs / of the C tile).
        # Unsigned arithmetic: the divisions are shifts and LLVM can prove rb, cb multiples of 4,
        # which the 128-bit ld.shared.v4 fragment loads need (signed // hides it: scalar loads).
        utid = uint64(tid)
        warp = utid // uint64(32)
        lane = utid % uint64(32)
        # (in units of 4 floats: the "* 4" is applied last, where LLVM's known-bits analysis
        # sees it; deeper in the expression it gave up and split the first loads into scalars)
        rb4 = (warp // uint64(WARPS_N)) * uint64(WM // 4) + lane // uint64(LN)
        cb4 = (warp % uint64(WARPS_N)) * uint64(WN // 4) + lane % uint64(LN)
        rb = rb4 * uint64(4)
        cb = cb4 * uint64(4)
        m0 = cuda.blockIdx.y * BM
        n0 = cuda.blockIdx.x * BN
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        ar, ac, a_rstep, a_s, a_sstep, a_su = tile_coords(trans_a, tid, BM, SA)
        br, bc, b_rstep, b_s, b_sstep, b_su = tile_coords(not trans_b, tid, BN, SB)   # B (K, N): K rows
        a_rlim = K if trans_a else M
        a_clim = M if trans_a else K
        b_rlim = N if trans_b else K
        b_clim = K if trans_b else N
        interior = m0 + BM <= M and n0 + BN <= N    # this block's C tile has no ragged edge
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = float32(0.0)
        ntiles = (K + BK - 1) // BK
        gload(A, ar + (0 if trans_a else m0), ac + (m0 if trans_a else 0), a_rlim, a_clim, a_rstep,
              a_pre, LA)
        gload(B, br + (n0 if trans_b else 0), bc + (0 if trans_b else n0), b_rlim, b_clim, b_rstep,
              b_pre, LB)
        for t in range(ntiles):
            buf = t & 1
            # ONE barrier per K-tile is enough. The stores below write buffer `buf`, whose last
            # readers multiplied tile t-2; a thread gets here only after passing the barrier of
            # iteration t-1, which every thread reached after finishing that multiply -- so no
            # thread still reads `buf`. Threads still multiplying tile t-1 read the OTHER buffer,
            # which nobody can overwrite before all of them arrive at the barrier just below
            # (the next stores into it are in iteration t+1, after that barrier).
            sstore(As, buf * NA + a_s, a_sstep, a_su, a_pre, LA)
            sstore(Bs, buf * NB + b_s, b_sstep, b_su, b_pre, LB)
            cuda.syncthreads()  # buffer `buf` complete before anyone multiplies it
            k1 = (t + 1) * BK
            if interior and k1 + BK <= K:   # the common case: tile t+1 is whole, no bounds tests
                gload_full(A, ar + (k1 if trans_a else m0), ac + (m0 if trans_a else k1), a_rstep, a_pre, LA)
                gload_full(B, br + (n0 if trans_b else k1), bc + (k1 if trans_b else n0), b_rstep, b_pre, LB)
            elif k1 < K:        # global loads of tile t+1 are in flight during the multiply
                gload(A, ar + (k1 if trans_a else m0), ac + (m0 if trans_a else k1), a_rlim, a_clim,
                      a_rstep, a_pre, LA)
                gload(B, br + (n0 if trans_b else k1), bc + (k1 if trans_b else n0), b_rlim, b_clim,
                      b_rstep, b_pre, LB)
            multiply_tile(As, Bs, (uint64(buf * (NA // 4)) + rb4) * uint64(4),
                          (uint64(buf * (NB // 4)) + cb4) * uint64(4), acc, a_frag, b_frag)
        epilogue(C, acc, alpha, beta, m0 + int64(rb), n0 + int64(cb), M, N)

    gemm_v8.__doc__ = (f"warp-tiled GEMM{' with 128-bit global loads' if wide else ''}, prefetch + double "
                       f"buffer, tile {BM}x{BN}x{BK}, warp tile {WM}x{WN}, {TM}x{TN} per thread; block "
                       f"{NT}, grid (N/{BN}, M/{BM})")
    opts = {}
    if cfg.min_blocks and not SIMULATOR:   # the simulator has no launch_bounds option
        opts["launch_bounds"] = (cfg.threads, cfg.min_blocks)
    return cuda.jit(**opts)(gemm_v8)


# ----------------------------------------------------------------------------------------------
# registry, launch geometry, public API
# ----------------------------------------------------------------------------------------------

_SIG_C = "void(int32, int32, float32, float32[:, ::1], float32[:, ::1], float32, float32[:, ::1])"
_SIG_A = "void(int32, int32, float32, float32[:, :], float32[:, :], float32, float32[:, :])"
SIGNATURES = [_SIG_C, _SIG_A]

# name -> (kernel, block (x, y), tile (BM, BN)) ; the grid is (ceil(N/BN), ceil(M/BM))
_LAUNCH: dict[str, tuple[Any, tuple[int, int], tuple[int, int]]] = {
    "gemm_v1": (gemm_v1, (V1_BLOCK, V1_BLOCK), (V1_BLOCK, V1_BLOCK)),
    "gemm_v2": (gemm_v2, (V2_TILE, V2_TILE), (V2_TILE, V2_TILE)),
}
for _name, _cfg in CONFIGS.items():
    _LAUNCH[f"gemm_v3_{_name.replace('x', '_')}"] = (_make_v3(_cfg), _cfg.block, (_cfg.BM, _cfg.BN))
    _LAUNCH[f"gemm_v4_{_name.replace('x', '_')}"] = (_make_v4(_cfg), _cfg.block, (_cfg.BM, _cfg.BN))
    if _cfg.TM % 4 == 0 and _cfg.TN % 4 == 0:
        _LAUNCH[f"gemm_v5_{_name.replace('x', '_')}"] = (_make_v5(_cfg), _cfg.block, (_cfg.BM, _cfg.BN))
        _LAUNCH[f"gemm_v6_{_name.replace('x', '_')}"] = (_make_v5(_cfg, unroll=True), _cfg.block,
                                                           (_cfg.BM, _cfg.BN))
    if (_cfg.BM * _cfg.BK // _cfg.threads) % 4 == 0 and (_cfg.BN * _cfg.BK // _cfg.threads) % 4 == 0:
        _LAUNCH[f"gemm_v7_{_name.replace('x', '_')}"] = (_make_v5(_cfg, unroll=True, wide=True), _cfg.block,
                                                           (_cfg.BM, _cfg.BN))

# v9: v7 with flat-offset addressing on the interior fast path (see _make_v5); measured next to v7 by
# the benchmark's sweep, not launched by gemm() until a GPU run shows it faster
V9_CONFIGS = ("128x128x8",)
for _name in V9_CONFIGS:
    # launch bounds of 2 blocks per SM: ptxas otherwise gives v9 129 registers, 1 block per SM
    _cfg = dataclasses.replace(CONFIGS[_name], min_blocks=2)
    _LAUNCH[f"gemm_v9_{_name.replace('x', '_')}"] = (_make_v5(_cfg, unroll=True, wide=True, flat=True),
                                                       _cfg.block, (_cfg.BM, _cfg.BN))

# v8 (warp tiling) and v8w (v8 + 128-bit global loads): measured next to v6/v7 by the benchmark's
# sweep over KERNELS; not launched by gemm() until a GPU measurement promotes them
for _name, _wcfg in V8_CONFIGS.items():
    _LAUNCH[f"gemm_v8_{_name.replace('x', '_')}"] = (_make_v8(_wcfg), _wcfg.block, (_wcfg.BM, _wcfg.BN))
    if _name in V8_WIDE:
        _LAUNCH[f"gemm_v8w_{_name.replace('x', '_')}"] = (_make_v8(_wcfg, wide=True), _wcfg.block,
                                                            (_wcfg.BM, _wcfg.BN))

# split-K (weight gradients of convolutions: small M x N, K = batch x pixels). Both operands of a
# convolution's dW GEMM are K-contiguous (dY is (M, K); col is (N, K), read transposed), so one
# K-tile reads BK consecutive floats of every operand row it covers: at BK = 8 one 32-byte sector
# per row per tile, from rows ~K*4 bytes apart (a new DRAM page and TLB entry per row). The
# BK = 16 / 32 tiles read 64 / 128 bytes per row per tile; v7k reads them as 128-bit loads (runs
# of 4 consecutive k). v6k runs on any operands, v7k needs the v7 alignment (else v6k runs).
SPLITK_CONFIGS: dict[str, GemmConfig] = {
    "64x64x8": CONFIGS["64x64x8"],               # the split kernel of sessions 1-2
    "64x64x32": GemmConfig(64, 64, 32, 4, 4),    # a 128-byte line per operand row per K-tile
    "128x128x16": CONFIGS["128x128x16"],         # 8x8 per thread: twice the FMAs per shared read
}
for _name, _cfg in SPLITK_CONFIGS.items():
    _key = _name.replace("x", "_")
    _LAUNCH[f"gemm_v6k_{_key}"] = (_make_v5(_cfg, unroll=True, split=True), _cfg.block, (_cfg.BM, _cfg.BN))
    if (_cfg.BM * _cfg.BK // _cfg.threads) % 4 == 0 and (_cfg.BN * _cfg.BK // _cfg.threads) % 4 == 0:
        _LAUNCH[f"gemm_v7k_{_key}"] = (_make_v5(_cfg, unroll=True, wide=True, split=True), _cfg.block,
                                       (_cfg.BM, _cfg.BN))
        if _name == "64x64x32":     # + v9's flat-offset addressing
            _LAUNCH[f"gemm_v9k_{_key}"] = (_make_v5(_cfg, unroll=True, wide=True, split=True, flat=True),
                                           _cfg.block, (_cfg.BM, _cfg.BN))
SPLITK_KERNEL = "gemm_v6k_64_64_8"   # gemm()'s split kernel where MEASURED_SPLITK has no entry

# Per-shape split-K plans measured on a GPU: (M, N, K) -> (split kernel, slices). Empty until the
# benchmark's split sweep (bench/bench_gemm.py, the *_bwd_w shapes: every split kernel at half,
# once and twice splitk_slices' count) has run on a card; gemm() uses SPLITK_KERNEL and
# splitk_slices elsewhere.
MEASURED_SPLITK: dict[tuple[int, int, int], tuple[str, int]] = {}


def _splitk_launched() -> set[str]:
    """Split kernels that gemm() may launch: the default, the measured ones, their v6k fallbacks."""
    names = {SPLITK_KERNEL} | {k for k, _ in MEASURED_SPLITK.values()}
    return names | {_unaligned(n) for n in names}


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


_SIG_REDUCE = ["void(float32[:, ::1], int32, float32, float32[:, ::1])",
               "void(float32[:, ::1], int32, float32, float32[:, :])"]

PROMOTED = "v6"   # the version gemm() launches (with select_config's tile; older where there is none)
# fallback order below the promoted version (PROMOTED = "v8" or "v8w" promotes the warp-tiled
# kernels where V8_CONFIGS has the tile, v7/v6 elsewhere)
_VERSIONS = ("v9", "v8w", "v8", "v7", "v6", "v5", "v4")
_UNALIGNED = {"gemm_v7_": "gemm_v6_", "gemm_v7k_": "gemm_v6k_", "gemm_v9_": "gemm_v6_",  # 128-bit -> scalar
              "gemm_v9k_": "gemm_v6k_",
              "gemm_v8w_": "gemm_v8_"}


# Per-shape winners measured on an H200 (bench/results/2026-11-28-h200.json, gemm_autotune rows),
# kept where the best kernel beat the promoted kernel of select_config's tile by >= 5 % (smaller
# margins are within the run-to-run spread of the sweep's 10 repetitions). TFLOP/s best vs default:
MEASURED_BEST: dict[tuple[int, int, int], str] = {
    (2048, 2048, 2048): "gemm_v7_128_128_8",     # 33.4 vs v6_128_64_8 30.1 (+11 %; v6_128_128_8 33.1)
    (1024, 1024, 1024): "gemm_v6_64_128_8",      # 13.9 vs v6_64_64_8 12.1 (+14 %)
    (96, 184525, 363): "gemm_v7_128_128_8",      # AlexNet conv1 fwd: 20.5 vs v6_128_128_8 18.9 (+8 %)
    (128, 27702, 1200): "gemm_v6_128_128_16",    # AlexNet conv2 fwd: 22.3 vs v6_128_64_8 21.1 (+5 %)
    # session 2 (1 GiB im2col workspace: 2 chunks of 128 images, so other N), H200:
    (192, 43264, 1728): "gemm_v6_64_128_8",      # AlexNet conv4 fwd/group: 28.6 vs v6_128_128_8 22.2 (+29 %)
}
# conv1-like shapes (one row of 128-row tiles, N so wide that the grid is >= 4 waves of 128x128
# blocks, short K): v7's 128-bit global loads won by 8 % at (96, 184525, 363); the rule covers the
# same layer at other batch chunk sizes. Deeper-M squares (4096^3: v6 +1.6 %, conv3 fwd: v6 +2.4 %)
# stay on v6.
WIDE_N_KERNEL = "gemm_v7_128_128_8"
WIDE_N_MIN_WAVES = 4


def _wide_n(M: int, N: int, cfg: str) -> bool:
    """True for a conv1-like shape: select_config chose 128x128x8, M fits one tile row, and the
    grid has at least WIDE_N_MIN_WAVES waves of blocks."""
    return cfg == "128x128x8" and M <= 128 and ceil_div(N, 128) >= WIDE_N_MIN_WAVES * SMS


def _promoted_for(cfg: str) -> str:
    """Kernel gemm() launches for a configuration key ("128_128_8"): the promoted version, or the
    next older one that exists for this tile (32x32x8 has only v3/v4)."""
    for version in _VERSIONS[_VERSIONS.index(PROMOTED):]:
        if f"gemm_{version}_{cfg}" in _LAUNCH:
            return f"gemm_{version}_{cfg}"
    raise KeyError(cfg)


def _launched_by_gemm(name: str) -> bool:
    """True for the kernels gemm() itself may launch: the promoted version of every config, the
    per-shape choices of ``kernel_for``, and the scalar-load kernels that v7/v8w fall back to on
    unaligned operands."""
    if name in ("gemm_v1", "gemm_v2"):
        return False
    if name in _splitk_launched():
        return True
    chosen = {_promoted_for(cfg.replace("x", "_")) for cfg in CONFIGS}
    chosen |= set(MEASURED_BEST.values()) | {WIDE_N_KERNEL}
    chosen |= {_unaligned(n) for n in chosen}
    return name in chosen


def _unaligned(name: str) -> str:
    """The kernel ``gemm_with`` runs instead of ``name`` when A or B is not 16-byte aligned with
    16-byte row pitches (v7 -> v6, v8w -> v8; others unchanged)."""
    for wide, scalar in _UNALIGNED.items():
        if name.startswith(wide):
            return scalar + name[len(wide):]
    return name


# signatures: C-contiguous operands for every kernel (what tests/benchmarks launch through
# gemm_with on fresh arrays); row-strided views too for the kernels gemm() launches (conv weight
# groups and column slices). The PTX check compiles exactly these.
KERNELS: dict[str, tuple[Any, list[str]]] = {
    name: (k, SIGNATURES if _launched_by_gemm(name) else [_SIG_C]) for name, (k, _, _) in _LAUNCH.items()}
KERNELS["splitk_reduce_v1"] = (splitk_reduce_v1, _SIG_REDUCE)

SMS = 132          # streaming multiprocessors of an H100 SXM (H200: also 132); for wave counts
_BY_SIZE = ("128x128x8", "128x64x8", "64x128x8", "64x64x8")


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
def _grid(name: str, M: int, N: int) -> tuple[tuple[int, int], tuple[int, int]]:
    _, block, (bm, bn) = _LAUNCH[name]
    return (ceil_div(N, bn), ceil_div(M, bm)), block


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


def _aligned16(X) -> bool:
    """True when X's data pointer and row pitch are multiples of 16 bytes (128-bit loads of runs
    of 4 floats starting at columns that are multiples of 4 are then aligned)."""
    ptr = X.ctypes.data if SIMULATOR else X.__cuda_array_interface__["data"][0]
    return ptr % 16 == 0 and (X.shape[0] <= 1 or X.strides[0] % 16 == 0)


def gemm_with(name: str, trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> None:
    """Launch GEMM kernel ``name`` (a key of ``KERNELS``): ``C = alpha*op(A)@op(B) + beta*C`` in place.

    For tests and benchmarks (time every version/config); ``gemm`` picks the kernel itself.
    A v7 kernel needs A and B 16-byte aligned with row pitches a multiple of 16 bytes; for other
    operands the same configuration's v6 runs instead.
    """
    A = as_device(A)
    B = as_device(B)
    C = as_device(C)
    M, N, K = _check(trans_a, trans_b, A, B, C)
    if M == 0 or N == 0:
        return
    if name.startswith(tuple(_UNALIGNED)) and not (_aligned16(A) and _aligned16(B)):
        name = _unaligned(name)
    kernel = _LAUNCH[name][0]
    grid, block = _grid(name, M, N)
    kernel[grid, block](np.int32(bool(trans_a)), np.int32(bool(trans_b)), np.float32(alpha), A, B,
                        np.float32(beta), C)


SPLITK_MIN_K = 2048      # below this a K slice is too short to pay for the reduction
SPLITK_MIN_SLICE = 256   # K values per slice at least
SPLITK_MAX = 64

def _tile_of(name: str) -> tuple[int, int]:
    """(BM, BN) of a kernel name in ``_LAUNCH``."""
    return _LAUNCH[name][2]


@functools.lru_cache(maxsize=4096)
def splitk_slices(M: int, N: int, K: int, kernel: str = SPLITK_KERNEL) -> int:
    """How many K slices to cut a problem into for split kernel ``kernel``: 1 when its (M, N)
    tiles already fill the GPU or K is short; else enough slices for about two waves of blocks
    (``2 * SMS``), each slice at least ``SPLITK_MIN_SLICE`` long, at most ``SPLITK_MAX``."""
    bm, bn = _tile_of(kernel)
    blocks = ceil_div(M, bm) * ceil_div(N, bn)
    if blocks >= SMS or K < SPLITK_MIN_K:
        return 1
    return max(1, min(ceil_div(2 * SMS, blocks), K // SPLITK_MIN_SLICE, SPLITK_MAX))


def splitk_plan(M: int, N: int, K: int) -> tuple[str, int]:
    """(split kernel, slices) that ``gemm`` uses for an (M, N, K) problem; slices == 1: no split
    (``kernel_for`` then names the kernel). A measured entry of ``MEASURED_SPLITK`` first."""
    measured = MEASURED_SPLITK.get((M, N, K))
    if measured is not None:
        return measured
    return SPLITK_KERNEL, splitk_slices(M, N, K, SPLITK_KERNEL)


def describe_plan(M: int, N: int, K: int) -> str:
    """What ``gemm`` launches for an (M, N, K) problem, in words (benchmark tables, logs): the
    kernel name, or ``"<split kernel> x<slices> + splitk_reduce_v1"``. Operand alignment is not
    known here: a v7/v8w/v7k name runs as its scalar twin on unaligned operands."""
    kname, slices = splitk_plan(M, N, K)
    if slices > 1:
        return f"{kname} x{slices} + splitk_reduce_v1"
    return kernel_for(M, N, K)


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
                kernel: str = SPLITK_KERNEL) -> None:
    """``C = alpha*op(A)@op(B) + beta*C`` as ``slices`` K-slice products (one launch of the split
    kernel ``kernel`` -- a ``gemm_v6k_*`` / ``gemm_v7k_*`` / ``gemm_v9k_*`` name -- with a z grid,
    partials in a workspace) summed by ``splitk_reduce_v1`` (a second launch). Same contract as
    ``gemm``; the sum over slices runs in a fixed order (deterministic). A v7k/v9k kernel on
    operands without 16-byte alignment runs as the v6k kernel of its tile."""
    A = as_device(A)
    B = as_device(B)
    C = as_device(C)
    M, N, K = _check(trans_a, trans_b, A, B, C)
    if M == 0 or N == 0:
        return
    if not kernel.startswith(("gemm_v6k_", "gemm_v7k_", "gemm_v9k_")):
        raise ValueError(f"gemm_splitk: {kernel!r} is not a split-K kernel (gemm_v6k_/v7k_/v9k_*)")
    if kernel.startswith(("gemm_v7k_", "gemm_v9k_")) and not (_aligned16(A) and _aligned16(B)):
        kernel = _unaligned(kernel)
    slices = max(1, int(slices))
    W = _splitk_workspace(slices * M, N)
    kern, block, (bm, bn) = _LAUNCH[kernel]
    kern[(ceil_div(N, bn), ceil_div(M, bm), slices), block](
        np.int32(bool(trans_a)), np.int32(bool(trans_b)), np.float32(alpha), A, B, np.float32(0.0), W)
    blocks, threads = grid_1d(M * N)
    splitk_reduce_v1[blocks, threads](W, np.int32(slices), np.float32(beta), C)


def kernel_for(M: int, N: int, K: int) -> str:
    """Name of the kernel ``gemm`` launches for an (M, N, K) problem (without split-K, which
    ``gemm`` decides first through ``splitk_slices``): a measured per-shape winner from
    ``MEASURED_BEST``, v7 for conv1-like shapes (``_wide_n``), else the promoted version of
    ``select_config``'s tile."""
    measured = MEASURED_BEST.get((M, N, K))
    if measured is not None:
        return measured
    cfg = select_config(M, N, K)
    if _wide_n(M, N, cfg):
        return WIDE_N_KERNEL
    return _promoted_for(cfg.replace("x", "_"))


def gemm(trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> None:
    """``C = alpha * op(A) @ op(B) + beta * C`` in place (float32, device arrays, returns None).

    ``op(A)`` is (M, K): ``A`` (M, K) or, with ``trans_a``, (K, M); ``op(B)`` is (K, N): ``B`` (K, N)
    or, with ``trans_b``, (N, K); ``C`` is (M, N). Operands may be row-strided views; with
    ``beta == 0`` C is not read. Launches the promoted version with the tile from ``select_config``,
    or split-K (``gemm_splitk``) when M x N has too few tiles for the GPU and K is long.
    """
    A = as_device(A)
    B = as_device(B)
    C = as_device(C)
    M, N, K = _check(trans_a, trans_b, A, B, C)
    split_kernel, slices = splitk_plan(M, N, K)
    if slices > 1:
        gemm_splitk(trans_a, trans_b, alpha, A, B, beta, C, slices, split_kernel)
        return
    gemm_with(kernel_for(M, N, K), trans_a, trans_b, alpha, A, B, beta, C)
