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

Versions:

- ``cn_to_nc_v1`` / ``nc_to_cn_v1``: one thread per element, grid-stride in destination order
  (writes fully coalesced, reads in runs of S). 256 threads per block.
- ``cn_to_nc_v2`` / ``nc_to_cn_v2`` (used when S == 1): 32x32 tile transpose through shared memory
  (padded to 33 columns), block 32x8, each thread moving 4 elements in and 4 out; grid
  (ceil(cols/32), ceil(rows/32)).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32

from ._launch import as_device, ceil_div, grid_1d

TILE = 32        # transpose tile (TILE x TILE elements per block)
TILE_ROWS = 8    # block is TILE x TILE_ROWS threads; each thread moves TILE/TILE_ROWS = 4 elements
TILE_LD = TILE + 1   # +1 float per shared row: column reads of the tile hit 32 distinct banks


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


_SIG_CN_NC = "void(float32[:, ::1], float32[:, :, ::1], int32, float32[::1], int32)"
_SIG_NC_CN = "void(float32[:, :, ::1], int32, float32[:, ::1])"

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "cn_to_nc_v1": (cn_to_nc_v1, [_SIG_CN_NC]),
    "cn_to_nc_v2": (cn_to_nc_v2, [_SIG_CN_NC]),
    "nc_to_cn_v1": (nc_to_cn_v1, [_SIG_NC_CN]),
    "nc_to_cn_v2": (nc_to_cn_v2, [_SIG_NC_CN]),
}

_dummy: dict[str, Any] = {}


def _no_bias():
    """A 1-element device array standing in for a missing bias (has_bias = 0 never reads it)."""
    if "b" not in _dummy:
        _dummy["b"] = cuda.to_device(np.zeros(1, np.float32))
    return _dummy["b"]


def as_ncs(arr) -> Any:
    """View a C-contiguous (N, C, ...) device array as (N, C, S), S = product of the rest."""
    arr = as_device(arr)
    if len(arr.shape) == 3:
        return arr
    if len(arr.shape) < 2:
        raise ValueError(f"layout: expected an (N, C, ...) array, got shape {arr.shape}")
    S = int(np.prod(arr.shape[2:], dtype=np.int64))
    return arr.reshape(arr.shape[0], arr.shape[1], S)


def cn_to_nc(src, dst, n0: int, bias=None, version: str | None = None) -> None:
    """``dst[n0 + n, c, s] = src[c, n*S + s] (+ bias[c])``: channel-major (C, Nc*S) -> rows
    n0..n0+Nc-1 of the NCHW array ``dst`` (N, C, S) or (N, C, H, W). ``bias`` is (C,) or None.
    ``version`` forces "v1"/"v2" (v2 needs S == 1); default: v2 when S == 1, else v1."""
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
    version = version or ("v2" if S == 1 else "v1")
    if version == "v2" and S != 1:
        raise ValueError(f"cn_to_nc: v2 is the S == 1 transpose, got S = {S}")
    if version == "v2":
        grid = (max(1, ceil_div(Nc, TILE)), max(1, ceil_div(C, TILE)))
        cn_to_nc_v2[grid, (TILE, TILE_ROWS)](src, dst, np.int32(n0), b, has_bias)
    else:
        blocks, threads = grid_1d(Nc * C * S)
        cn_to_nc_v1[blocks, threads](src, dst, np.int32(n0), b, has_bias)


def nc_to_cn(src, n0: int, dst, version: str | None = None) -> None:
    """``dst[c, n*S + s] = src[n0 + n, c, s]``: rows n0..n0+Nc-1 of the NCHW array ``src``
    (N, C, S) or (N, C, H, W) -> channel-major ``dst`` (C, Nc*S). Default v2 when S == 1."""
    src = as_ncs(src)
    dst = as_device(dst)
    N, C, S = src.shape
    if dst.shape[0] != C or dst.shape[1] % S or n0 < 0 or n0 + dst.shape[1] // S > N:
        raise ValueError(f"nc_to_cn: src {src.shape} at n0={n0} does not fit dst {dst.shape}")
    Nc = dst.shape[1] // S
    version = version or ("v2" if S == 1 else "v1")
    if version == "v2" and S != 1:
        raise ValueError(f"nc_to_cn: v2 is the S == 1 transpose, got S = {S}")
    if version == "v2":
        grid = (max(1, ceil_div(C, TILE)), max(1, ceil_div(Nc, TILE)))
        nc_to_cn_v2[grid, (TILE, TILE_ROWS)](src, np.int32(n0), dst)
    else:
        blocks, threads = grid_1d(C * Nc * S)
        nc_to_cn_v1[blocks, threads](src, np.int32(n0), dst)
