"""Convolution / inner-product bias: forward add and backward reduction.

Shapes: ``y``/``dy`` (N, C, S) -- an NCHW blob viewed with S = H*W (4-D arrays are accepted and
viewed so); ``b``/``db`` (C,).

- forward: ``y[n, c, s] += b[c]``;
- backward: ``db[c] += sum_{n, s} dy[n, c, s]`` (parameter gradients accumulate, for iter_size).

Versions:

- ``bias_fwd_v1``: one thread per element, grid-stride, 256 threads per block.
- ``bias_bwd_v1``: one block of ``kernels._block.BLOCK_THREADS`` threads per channel (grid-stride
  over channels, at most ``MAX_BLOCKS_1D`` blocks); each thread sums a strided part of the
  channel's N*S values (reads in runs of S along s), then a shared-memory tree sums the partials
  and thread 0 adds the total to ``db[c]``. No atomics: each channel is owned by one block.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32

from kernels._block import BLOCK_THREADS, block_sum
from kernels._index import as_ncs
from kernels._launch import MAX_BLOCKS_1D, as_device, grid_1d


@cuda.jit
def bias_fwd_v1(y, b):
    """y[n, c, s] += b[c], one thread per element; grid-stride, 256 threads per block."""
    C = y.shape[1]
    S = y.shape[2]
    total = y.shape[0] * C * S
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        s = idx % S
        t = idx // S
        c = t % C
        n = t // C
        y[n, c, s] += b[c]


@cuda.jit
def bias_bwd_v1(dy, db):
    """db[c] += sum over n, s of dy[n, c, s]: a block per channel, shared-memory tree reduction;
    grid min(C, 4096), grid-stride over channels."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    N = dy.shape[0]
    C = dy.shape[1]
    S = dy.shape[2]
    tid = cuda.threadIdx.x
    count = N * S
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        acc = float32(0.0)
        for e in range(tid, count, BLOCK_THREADS):
            n = e // S
            s = e - n * S
            acc += dy[n, c, s]
        partial[tid] = acc
        total = block_sum(partial, tid)
        if tid == 0:
            db[c] += total
        cuda.syncthreads()  # every thread has read the sum before the next channel overwrites it


_SIG_FWD = "void(float32[:, :, ::1], float32[::1])"

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "bias_fwd_v1": (bias_fwd_v1, [_SIG_FWD]),
    "bias_bwd_v1": (bias_bwd_v1, [_SIG_FWD]),
}


def _check(y, b, who):
    if b.shape != (y.shape[1],):
        raise ValueError(f"{who}: bias shape {b.shape} != ({y.shape[1]},) for data {y.shape}")
    for name, arr in (("data", y), ("bias", b)):
        if np.dtype(arr.dtype) != np.float32:
            raise ValueError(f"{who}: {name} must be float32, got {arr.dtype}")


def bias_fwd(y, b) -> None:
    """``y[n, c, s] += b[c]`` in place; ``y`` (N, C, S) or (N, C, H, W), ``b`` (C,)."""
    y = as_ncs(y)
    b = as_device(b)
    _check(y, b, "bias_fwd")
    blocks, threads = grid_1d(y.shape[0] * y.shape[1] * y.shape[2])
    bias_fwd_v1[blocks, threads](y, b)


def bias_bwd(dy, db) -> None:
    """``db[c] += sum_{n, s} dy[n, c, s]`` (accumulates); ``dy`` (N, C, S) or (N, C, H, W), ``db`` (C,)."""
    dy = as_ncs(dy)
    db = as_device(db)
    _check(dy, db, "bias_bwd")
    C = dy.shape[1]
    bias_bwd_v1[max(1, min(C, MAX_BLOCKS_1D)), BLOCK_THREADS](dy, db)
