"""Mean-variance normalization (Caffe's MVNLayer), forward and backward.

Math: x is viewed as (rows, dim) (rows = N*C and dim = H*W, or rows = N and dim = C*H*W with
``across_channels``), each row normalized on its own:

    mean = sum(x) / dim
    forward without variance:  y = x - mean
    forward with variance:     std = sqrt(sum((x - mean)^2) / dim) + eps    (eps after the root)
                               y = (x - mean) / std
    backward with variance:    dx = (dy - (y*sum(y*dy) + sum(dy)) / dim) / std
    backward without:          dx = dy - sum(dy) / dim

(Caffe's MVNLayer computes exactly these; its backward with variance is Caffe's expression, which
treats std as a constant in eps.) ``mean`` and ``std`` (rows,) are written by the forward; the
backward reads ``std``. Forward and backward may run in place (y is x, dx is dy): each row's sums
are complete (a barrier) before any of its elements is written, and each thread writes only the
elements it read.

Versions: v1 ``mvn_fwd_v1`` / ``mvn_bwd_v1``: one block per row; threads stride over the row,
``kernels._block.block_sum`` adds the partials (one shared array per sum, so no barrier between
them); the forward makes two passes for mean and variance, then writes.

Launch geometry: ``rows`` blocks of ``kernels._block.BLOCK_THREADS`` threads.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._block import BLOCK_THREADS, block_sum
from kernels._index import flat_checked

_ZERO = float32(0.0)


@cuda.jit
def mvn_fwd_v1(x, y, mean, std, dim, normalize, eps):
    """Row r (this block): mean[r], std[r] (sqrt(var) + eps, when normalizing), y."""
    partial_sum = cuda.shared.array(BLOCK_THREADS, float32)
    partial_sq = cuda.shared.array(BLOCK_THREADS, float32)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * dim
    inv = float32(1.0) / float32(dim)
    acc = _ZERO
    for j in range(tid, dim, BLOCK_THREADS):
        acc += x[base + j]
    partial_sum[tid] = acc
    m = block_sum(partial_sum, tid) * inv
    s = float32(1.0)
    if normalize != 0:
        acc = _ZERO
        for j in range(tid, dim, BLOCK_THREADS):
            d = x[base + j] - m
            acc += d * d
        partial_sq[tid] = acc
        s = math.sqrt(block_sum(partial_sq, tid) * inv) + eps
    if tid == 0:
        mean[cuda.blockIdx.x] = m
        std[cuda.blockIdx.x] = s
    for j in range(tid, dim, BLOCK_THREADS):
        d = x[base + j] - m
        y[base + j] = d / s if normalize != 0 else d


@cuda.jit
def mvn_bwd_v1(y, dy, std, dx, dim, normalize):
    """Row r: dx from the row's sums of dy and y*dy (see the module docstring)."""
    partial_dy = cuda.shared.array(BLOCK_THREADS, float32)
    partial_ydy = cuda.shared.array(BLOCK_THREADS, float32)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * dim
    inv = float32(1.0) / float32(dim)
    acc = _ZERO
    for j in range(tid, dim, BLOCK_THREADS):
        acc += dy[base + j]
    partial_dy[tid] = acc
    s_dy = block_sum(partial_dy, tid)
    if normalize != 0:
        acc = _ZERO
        for j in range(tid, dim, BLOCK_THREADS):
            acc += y[base + j] * dy[base + j]
        partial_ydy[tid] = acc
        s_ydy = block_sum(partial_ydy, tid)
        sd = std[cuda.blockIdx.x]
        for j in range(tid, dim, BLOCK_THREADS):
            v = y[base + j]
            dx[base + j] = (dy[base + j] - (v * s_ydy + s_dy) * inv) / sd
    else:
        m = s_dy * inv
        for j in range(tid, dim, BLOCK_THREADS):
            dx[base + j] = dy[base + j] - m


_F = float32[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "mvn_fwd_v1": (mvn_fwd_v1, [void(_F, _F, _F, _F, _I, _I, float32)]),
    "mvn_bwd_v1": (mvn_bwd_v1, [void(_F, _F, _F, _F, _I, _I)]),
}


def mvn_fwd(x: Any, y: Any, mean: Any, std: Any, rows: int, dim: int, normalize_variance: bool,
            eps: float) -> None:
    """MVN forward on x viewed as (rows, dim); writes y, mean (rows,), std (rows,) (std = 1 when
    not normalizing the variance)."""
    n = rows * dim
    xf, yf = flat_checked("mvn_fwd", x, n), flat_checked("mvn_fwd", y, n)
    mf, sf = flat_checked("mvn_fwd", mean, rows), flat_checked("mvn_fwd", std, rows)
    if n:
        mvn_fwd_v1[rows, BLOCK_THREADS](xf, yf, mf, sf, dim, int(bool(normalize_variance)),
                                        np.float32(eps))


def mvn_bwd(y: Any, dy: Any, std: Any, dx: Any, rows: int, dim: int,
            normalize_variance: bool) -> None:
    """MVN backward (dx written; may be dy) from the top data y and the forward's std."""
    n = rows * dim
    yf, dyf, dxf = (flat_checked("mvn_bwd", a, n) for a in (y, dy, dx))
    sf = flat_checked("mvn_bwd", std, rows)
    if n:
        mvn_bwd_v1[rows, BLOCK_THREADS](yf, dyf, sf, dxf, dim, int(bool(normalize_variance)))
