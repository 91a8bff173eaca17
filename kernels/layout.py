"""Layout moves between the convolution GEMM's channel-major output and NCHW blobs.

A convolution GEMM over a chunk of Nc images produces ``Y`` (C, Nc*S) -- row c, column n*S + s,
with S = OH*OW ("channel-major", CN). Blobs are NCHW, i.e. (N, C, S).

- ``cn_to_nc(src, dst, n0, bias=None)``: ``dst[n0 + n, c, s] = src[c, n*S + s] (+ bias[c])`` for
  n < Nc, where ``src`` is (C, Nc*S) and ``dst`` is (N, C, S) or (N, C, H, W) with H*W = S.
- ``nc_to_cn(src, n0, dst)``: the reverse, ``dst[c, n*S + s] = src[n0 + n, c, s]`` (the backward
  pass brings dY into the GEMM's layout).

Both index orders keep s innermost, so for S >= 32 a plain elementwise kernel reads and writes whole
coalesced runs; only S == 1 (1x1 outputs, inner-product-like convolutions) is a true matrix
transpose, done through a 32x32 shared-memory tile.

Versions (``PROMOTED``: v3 for both; where a version does not apply the next older one runs):

- ``cn_to_nc_v1`` / ``nc_to_cn_v1``: one thread per element, grid-stride in destination order
  (writes fully coalesced, reads in runs of S). 256 threads per block.
- ``cn_to_nc_v2`` / ``nc_to_cn_v2`` (S == 1 only): 32x32 tile transpose through shared memory
  (padded to 33 columns), block 32x8, each thread moving 4 elements in and 4 out; grid
  (ceil(cols/32), ceil(rows/32)).
- ``cn_to_nc_v3`` / ``nc_to_cn_v3`` (S > 1, C-contiguous arrays of fewer than 2**31 elements):
  v1's destination-order walk with 32-bit index math and no hardware division: the flat index is
  split into (n, c, s) with multiply-and-shift by host-computed magic numbers
  (``kernels._index.magic_div``), 4 elements per thread (i, i+256, i+512, i+768: four independent
  loads in flight before the stores; each warp access is still 32 consecutive floats).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int32, uint32

from kernels._index import INT32_LIMIT, as_ncs, magic_div, udiv31
from kernels._launch import as_device, ceil_div, grid_1d

TILE = 32        # transpose tile (TILE x TILE elements per block)
TILE_ROWS = 8    # block is TILE x TILE_ROWS threads; each thread moves TILE/TILE_ROWS = 4 elements
TILE_LD = TILE + 1   # +1 float per shared row: column reads of the tile hit 32 distinct banks
V3_THREADS = 256  # v3: threads per block
V3_UNROLL = 4     # v3: elements per thread per grid-stride step (independent loads in flight)

PROMOTED: dict[str, str] = {"cn_to_nc": "v3", "nc_to_cn": "v3"}


@cuda.jit
def cn_to_nc_v1(src, dst, n0, bias, has_bias):
    """dst[n0+n, c, s] = src[c, n*S + s] (+ bias[c]), one thread per element in dst order;
    grid-stride, 256 threads per block."""
    C = dst.shape[1]
    S = dst.shape[2]
    Nc = src.shape[1] // S
    total = Nc * C * S
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        s = idx % S
        t = idx // S
        c = t % C
        n = t // C
        v = src[c, n * S + s]
        if has_bias:
            v += bias[c]
        dst[n0 + n, c, s] = v


@cuda.jit
def nc_to_cn_v1(src, n0, dst):
    """dst[c, n*S + s] = src[n0+n, c, s], one thread per element in dst order; grid-stride,
    256 threads per block."""
    C = src.shape[1]
    S = src.shape[2]
    cols = dst.shape[1]
    total = C * cols
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = idx // cols
        q = idx - c * cols
        n = q // S
        s = q - n * S
        dst[c, q] = src[n0 + n, c, s]


@cuda.jit
def cn_to_nc_v2(src, dst, n0, bias, has_bias):
    """S == 1 transpose: dst[n0+n, c, 0] = src[c, n] (+ bias[c]) through a 32x33 shared tile;
    block 32x8, grid (ceil(Nc/32), ceil(C/32))."""
    tile = cuda.shared.array((TILE, TILE_LD), float32)
    C = src.shape[0]
    Nc = src.shape[1]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c0 = cuda.blockIdx.y * TILE
    q0 = cuda.blockIdx.x * TILE
    for r in range(ty, TILE, TILE_ROWS):          # read rows c of src along n (coalesced)
        c = c0 + r
        q = q0 + tx
        if c < C and q < Nc:
            v = src[c, q]
            if has_bias:
                v += bias[c]
            tile[r, tx] = v
    cuda.syncthreads()  # the whole tile is loaded before it is read transposed
    for r in range(ty, TILE, TILE_ROWS):          # write rows n of dst along c (coalesced)
        q = q0 + r
        c = c0 + tx
        if c < C and q < Nc:
            dst[n0 + q, c, 0] = tile[tx, r]


@cuda.jit
def nc_to_cn_v2(src, n0, dst):
    """S == 1 transpose: dst[c, n] = src[n0+n, c, 0] through a 32x33 shared tile; block 32x8,
    grid (ceil(C/32), ceil(Nc/32))."""
    tile = cuda.shared.array((TILE, TILE_LD), float32)
    C = src.shape[1]
    Nc = dst.shape[1]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    q0 = cuda.blockIdx.y * TILE
    c0 = cuda.blockIdx.x * TILE
    for r in range(ty, TILE, TILE_ROWS):          # read rows n of src along c (coalesced)
        q = q0 + r
        c = c0 + tx
        if c < C and q < Nc:
            tile[r, tx] = src[n0 + q, c, 0]
    cuda.syncthreads()  # the whole tile is loaded before it is read transposed
    for r in range(ty, TILE, TILE_ROWS):          # write rows c of dst along n (coalesced)
        c = c0 + r
        q = q0 + tx
        if c < C and q < Nc:
            dst[c, q] = tile[tx, r]


@cuda.jit
def cn_to_nc_v3(src, dst, n0, C, S, cols, total, mS, sS, mC, sC, bias, has_bias):
    """dst[n0+n, c, s] = src[c, n*S + s] (+ bias[c]) on flat arrays, int32 indices, 4 elements per
    thread (stride 256 inside a 1024-element block tile); grid-stride over total = Nc*C*S."""
    dbase = int32(n0 * C * S)        # dst rows n0.. are one contiguous run
    tile = int32(V3_THREADS * V3_UNROLL)
    i0 = int32(int32(cuda.blockIdx.x) * tile + int32(cuda.threadIdx.x))
    step = int32(int32(cuda.gridDim.x) * tile)
    while i0 < total:
        # four independent loads first (memory-level parallelism), then the four stores
        i1 = int32(i0 + V3_THREADS)
        i2 = int32(i1 + V3_THREADS)
        i3 = int32(i2 + V3_THREADS)
        v0 = _cn_load(src, i0, total, C, S, cols, mS, sS, mC, sC, bias, has_bias)
        v1 = _cn_load(src, i1, total, C, S, cols, mS, sS, mC, sC, bias, has_bias)
        v2 = _cn_load(src, i2, total, C, S, cols, mS, sS, mC, sC, bias, has_bias)
        v3 = _cn_load(src, i3, total, C, S, cols, mS, sS, mC, sC, bias, has_bias)
        # uint32 indices: non-negative by construction, and numba skips the negative-index
        # wraparound (compare + select per access) for unsigned indices
        dst[uint32(dbase + i0)] = v0
        if i1 < total:
            dst[uint32(dbase + i1)] = v1
        if i2 < total:
            dst[uint32(dbase + i2)] = v2
        if i3 < total:
            dst[uint32(dbase + i3)] = v3
        i0 = int32(i0 + step)


@cuda.jit(device=True)
def _cn_load(src, i, total, C, S, cols, mS, sS, mC, sC, bias, has_bias):
    """src value for dst flat index i = (n*C + c)*S + s (0 when i >= total)."""
    v = float32(0.0)
    if i < total:
        plane = udiv31(i, mS, sS)               # n*C + c
        s = int32(i - plane * S)
        n = udiv31(plane, mC, sC)
        c = int32(plane - n * C)
        v = src[uint32(c * cols + n * S + s)]
        if has_bias:
            v += bias[uint32(c)]
    return v


@cuda.jit
def nc_to_cn_v3(src, n0, C, S, cols, total, mcols, scols, mS, sS, dst):
    """dst[c, n*S + s] = src[n0+n, c, s] on flat arrays, int32 indices, 4 elements per thread
    (stride 256 inside a 1024-element block tile); grid-stride over total = C*Nc*S."""
    sbase = int32(n0 * C * S)
    tile = int32(V3_THREADS * V3_UNROLL)
    j0 = int32(int32(cuda.blockIdx.x) * tile + int32(cuda.threadIdx.x))
    step = int32(int32(cuda.gridDim.x) * tile)
    while j0 < total:
        # four independent loads first (memory-level parallelism), then the four stores
        j1 = int32(j0 + V3_THREADS)
        j2 = int32(j1 + V3_THREADS)
        j3 = int32(j2 + V3_THREADS)
        v0 = _nc_load(src, j0, total, sbase, C, S, cols, mcols, scols, mS, sS)
        v1 = _nc_load(src, j1, total, sbase, C, S, cols, mcols, scols, mS, sS)
        v2 = _nc_load(src, j2, total, sbase, C, S, cols, mcols, scols, mS, sS)
        v3 = _nc_load(src, j3, total, sbase, C, S, cols, mcols, scols, mS, sS)
        dst[uint32(j0)] = v0             # uint32 index: no negative-index wraparound code
        if j1 < total:
            dst[uint32(j1)] = v1
        if j2 < total:
            dst[uint32(j2)] = v2
        if j3 < total:
            dst[uint32(j3)] = v3
        j0 = int32(j0 + step)


@cuda.jit(device=True)
def _nc_load(src, j, total, sbase, C, S, cols, mcols, scols, mS, sS):
    """src value for dst flat index j = c*cols + n*S + s (0 when j >= total)."""
    v = float32(0.0)
    if j < total:
        c = udiv31(j, mcols, scols)
        q = int32(j - c * cols)
        n = udiv31(q, mS, sS)
        s = int32(q - n * S)
        v = src[uint32(sbase + (n * C + c) * S + s)]
    return v


_SIG_CN_NC = "void(float32[:, ::1], float32[:, :, ::1], int32, float32[::1], int32)"
_SIG_NC_CN = "void(float32[:, :, ::1], int32, float32[:, ::1])"
# v3: flat arrays; the int32 geometry is (n0, C, S, cols = Nc*S, total) then the magic numbers
_SIG_CN_NC3 = ("void(float32[::1], float32[::1], int32, int32, int32, int32, int32, uint32, int32, uint32, "
               "int32, float32[::1], int32)")
_SIG_NC_CN3 = ("void(float32[::1], int32, int32, int32, int32, int32, uint32, int32, uint32, int32, "
               "float32[::1])")

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "cn_to_nc_v1": (cn_to_nc_v1, [_SIG_CN_NC]),
    "cn_to_nc_v2": (cn_to_nc_v2, [_SIG_CN_NC]),
    "nc_to_cn_v1": (nc_to_cn_v1, [_SIG_NC_CN]),
    "nc_to_cn_v2": (nc_to_cn_v2, [_SIG_NC_CN]),
    "cn_to_nc_v3": (cn_to_nc_v3, [_SIG_CN_NC3]),
    "nc_to_cn_v3": (nc_to_cn_v3, [_SIG_NC_CN3]),
}

_dummy: dict[str, Any] = {}


def _no_bias():
    """A 1-element device array standing in for a missing bias (has_bias = 0 never reads it)."""
    if "b" not in _dummy:
        _dummy["b"] = cuda.to_device(np.zeros(1, np.float32))
    return _dummy["b"]


def _fits_int32(*arrays) -> bool:
    """True when the v3 kernels can take these arrays: C-contiguous (they index flat views) and
    every flat index fits their int32 math."""
    return all(a.size < INT32_LIMIT and a.is_c_contiguous() for a in arrays)


def _grid_v3(total: int) -> tuple[int, int]:
    """Blocks of V3_THREADS threads, each block covering V3_THREADS*V3_UNROLL elements per step."""
    return grid_1d(ceil_div(total, V3_UNROLL), V3_THREADS)


def _version(op: str, S: int, fits: bool) -> str:
    """``PROMOTED[op]`` where it applies, else the next older version that does: v3 needs S > 1
    and int32 indices (``fits``), v2 is the S == 1 transpose, v1 takes anything."""
    version = PROMOTED[op]
    if version == "v3" and not (S > 1 and fits):
        version = "v2"
    if version == "v2" and S != 1:
        version = "v1"
    return version


def cn_to_nc(src, dst, n0: int, bias=None) -> None:
    """``dst[n0 + n, c, s] = src[c, n*S + s] (+ bias[c])``: channel-major (C, Nc*S) -> rows
    n0..n0+Nc-1 of the NCHW array ``dst`` (N, C, S) or (N, C, H, W). ``bias`` is (C,) or None."""
    src = as_device(src)
    dst = as_ncs(dst)
    N, C, S = dst.shape
    if src.shape[0] != C or src.shape[1] % S or n0 < 0 or n0 + src.shape[1] // S > N:
        raise ValueError(f"cn_to_nc: src {src.shape} does not fit dst {dst.shape} at n0={n0}")
    b = _no_bias() if bias is None else as_device(bias)
    if bias is not None and b.shape != (C,):
        raise ValueError(f"cn_to_nc: bias shape {b.shape} != ({C},)")
    Nc = src.shape[1] // S
    has_bias = np.int32(bias is not None)
    version = _version("cn_to_nc", S, _fits_int32(src, dst))
    if version == "v2":
        grid = (max(1, ceil_div(Nc, TILE)), max(1, ceil_div(C, TILE)))
        cn_to_nc_v2[grid, (TILE, TILE_ROWS)](src, dst, np.int32(n0), b, has_bias)
    elif version == "v3":
        total = Nc * C * S
        blocks, threads = _grid_v3(total)
        cn_to_nc_v3[blocks, threads](src.reshape(src.size), dst.reshape(dst.size), np.int32(n0), np.int32(C),
                                     np.int32(S), np.int32(Nc * S), np.int32(total), *magic_div(S),
                                     *magic_div(C), b, has_bias)
    else:
        blocks, threads = grid_1d(Nc * C * S)
        cn_to_nc_v1[blocks, threads](src, dst, np.int32(n0), b, has_bias)


def nc_to_cn(src, n0: int, dst) -> None:
    """``dst[c, n*S + s] = src[n0 + n, c, s]``: rows n0..n0+Nc-1 of the NCHW array ``src``
    (N, C, S) or (N, C, H, W) -> channel-major ``dst`` (C, Nc*S)."""
    src = as_ncs(src)
    dst = as_device(dst)
    N, C, S = src.shape
    if dst.shape[0] != C or dst.shape[1] % S or n0 < 0 or n0 + dst.shape[1] // S > N:
        raise ValueError(f"nc_to_cn: src {src.shape} at n0={n0} does not fit dst {dst.shape}")
    Nc = dst.shape[1] // S
    version = _version("nc_to_cn", S, _fits_int32(src, dst))
    if version == "v2":
        grid = (max(1, ceil_div(C, TILE)), max(1, ceil_div(Nc, TILE)))
        nc_to_cn_v2[grid, (TILE, TILE_ROWS)](src, np.int32(n0), dst)
    elif version == "v3":
        total = C * Nc * S
        blocks, threads = _grid_v3(total)
        nc_to_cn_v3[blocks, threads](src.reshape(src.size), np.int32(n0), np.int32(C), np.int32(S),
                                     np.int32(Nc * S), np.int32(total), *magic_div(Nc * S), *magic_div(S),
                                     dst.reshape(dst.size))
    else:
        blocks, threads = grid_1d(C * Nc * S)
        nc_to_cn_v1[blocks, threads](src, np.int32(n0), dst)
