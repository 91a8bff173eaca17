"""Caffe's BatchNorm layer (batch_norm_layer.cpp): per-channel statistics, running averages,
normalization and its gradient. (Caffe's BatchNorm has no scale/shift: a Scale layer follows it.)

Shapes: x, y, dy, dx are (n, c, s) views of the NCHW blob (s = H*W, or the product of the dims after
axis 1); mean, var, inv_std and the running blobs are (c,); running_factor is Caffe's blob[2], (1,).
m = n * s values per channel.

Math:
- TRAIN (use_global_stats false): mean[c] = sum_{n,s} x / m; var[c] = sum_{n,s} (x - mean)^2 / m
  (biased, two passes like Caffe's E((X - EX)^2)); then the running blobs, exactly Caffe's order:
    blob[2] = blob[2] * maf + 1
    blob[0] = maf * blob[0] + mean               (caffe_cpu_axpby(1, mean, maf, blob[0]))
    blob[1] = maf * blob[1] + f * var            (f = m / (m - 1) if m > 1 else 1, in float32)
- TEST (use_global_stats): sf = 0 if blob[2] == 0 else 1 / blob[2]; mean = sf * blob[0],
  var = sf * blob[1] (blob[2] is read on the device: no host round trip).
- normalize: inv_std[c] = 1 / sqrt(var[c] + eps); y = (x - mean[c]) * inv_std[c]. (Caffe divides by
  sqrt(var + eps); multiplying by its reciprocal differs by at most an ulp or two.)
- backward (y is the normalized top data, Caffe's x_norm_; dx written, dx may be dy):
    TRAIN: dx = (dy - (sum_{n,s}(dy) + y * sum_{n,s}(dy * y)) / m) * inv_std
    TEST:  dx = dy * inv_std

Versions (``PROMOTED``: channel_mean_var v2, batchnorm_fwd v2, batchnorm_bwd v3; a version runs
where its condition holds, else the next older one):
- v1: ``bn_mean_var_v1`` (channel_mean_var): one block per channel; threads stride over the
  channel's n*s values (flat k -> (n_idx, s_idx), consecutive threads on consecutive s:
  coalesced); shared-memory tree for the sum, every thread reads the mean, second pass for the
  squared deviations. ``bn_fwd_v1``: one thread per element, grid-stride; channel ch =
  (idx // s) % c; the threads with idx < c also store inv_std (each element recomputes the same
  value, so no ordering is needed). ``bn_bwd_v1``: fused, one block per channel: tree sums of dy
  and dy*y over the channel, a barrier, then the same block writes dx for the channel (one
  launch, no scratch, no atomics). ``bn_bwd_global_v1``: one thread per element.
  ``bn_running_update_v1`` / ``bn_global_stats_v1`` (every version): one thread per channel.
- v2, where ``kernels.reduce.channel_parts(c, n*s)`` != 1: few, long channels run on ``parts``
  blocks per channel (``kernels.reduce.channel_partial_v2`` + ``channel_finalize_v2``); short
  channels (n*s <= CHANNEL_SHORT, e.g. after an InnerProduct) on one thread per channel
  (``channel_thread_v2``); deterministic either way. mean/var take two such passes (sum, then
  squared deviations from the mean); the backward sums dy and dy*y into a (2, c) scratch and
  ``bn_bwd_apply_v2`` writes dx elementwise.
  v2 row kernels ``bn_fwd_v2`` and ``bn_bwd_global_v2``, where s >= ``kernels._launch.ROW_MIN_INNER``:
  a block per (n, c) row of s contiguous values, block-stride over the n*c rows, threads along s
  (coalesced); ch = r % c once per row instead of two 64-bit divisions per element.
- v3 (batchnorm_bwd): v2's channel sums with the row kernel ``bn_bwd_apply_v3`` where s >=
  ROW_MIN_INNER.

Launch geometry: v1 per-channel kernels: c blocks x ``kernels._block.BLOCK_THREADS`` threads;
v2: (c, parts) blocks, then one thread per channel; flat elementwise kernels:
``kernels._launch.grid_1d``; row kernels: ``kernels._launch.grid_rows(n*c)``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels import reduce as R
from kernels._block import BLOCK_THREADS, block_sum, walk_next, walk_start
from kernels._index import flat
from kernels._launch import ROW_MIN_INNER, grid_1d, grid_rows, scratch

PROMOTED: dict[str, str] = {"channel_mean_var": "v2", "batchnorm_fwd": "v2", "batchnorm_bwd": "v3"}

F1 = float32[::1]


@cuda.jit
def bn_mean_var_v1(x, mean, var, n, c, s):
    """Block ch: mean[ch] = sum x / m; var[ch] = sum (x - mean)^2 / m over the (n, s) of channel ch."""
    partial_sum = cuda.shared.array(BLOCK_THREADS, float32)
    partial_sq = cuda.shared.array(BLOCK_THREADS, float32)
    ch = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    m = n * s
    inv_m = float32(1) / float32(m)
    acc = float32(0)
    n_idx, s_idx, n_step, s_step = walk_start(tid, BLOCK_THREADS, s)
    while n_idx < n:      # flat k = n_idx*s + s_idx over the channel, stride BLOCK_THREADS
        acc += x[(n_idx * c + ch) * s + s_idx]
        n_idx, s_idx = walk_next(n_idx, s_idx, n_step, s_step, s)
    partial_sum[tid] = acc
    mu = block_sum(partial_sum, tid) * inv_m
    acc = float32(0)
    n_idx, s_idx, n_step, s_step = walk_start(tid, BLOCK_THREADS, s)
    while n_idx < n:
        dev = x[(n_idx * c + ch) * s + s_idx] - mu
        acc += dev * dev
        n_idx, s_idx = walk_next(n_idx, s_idx, n_step, s_step, s)
    partial_sq[tid] = acc
    sigma2 = block_sum(partial_sq, tid) * inv_m
    if tid == 0:
        mean[ch] = mu
        var[ch] = sigma2


@cuda.jit
def bn_running_update_v1(mean, var, run_mean, run_var, run_factor, c, maf, var_correction):
    """run_mean = maf*run_mean + mean; run_var = maf*run_var + f*var; thread 0: factor*maf + 1."""
    for ch in range(cuda.grid(1), c, cuda.gridsize(1)):
        run_mean[ch] = maf * run_mean[ch] + mean[ch]
        run_var[ch] = maf * run_var[ch] + var_correction * var[ch]
    if cuda.grid(1) == 0:
        run_factor[0] = run_factor[0] * maf + float32(1)


@cuda.jit
def bn_global_stats_v1(run_mean, run_var, run_factor, mean, var, c):
    """mean = sf * run_mean, var = sf * run_var with sf = 0 if factor == 0 else 1 / factor."""
    factor = run_factor[0]
    sf = float32(0)
    if factor != float32(0):
        sf = float32(1) / factor
    for ch in range(cuda.grid(1), c, cuda.gridsize(1)):
        mean[ch] = sf * run_mean[ch]
        var[ch] = sf * run_var[ch]


@cuda.jit
def bn_fwd_v1(x, mean, var, eps, y, inv_std, n, c, s):
    """y = (x - mean[ch]) * inv_std[ch], inv_std = 1 / sqrt(var + eps) (also stored)."""
    total = n * c * s
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for ch in range(start, c, step):
        inv_std[ch] = float32(1) / math.sqrt(var[ch] + eps)
    for idx in range(start, total, step):
        ch = (idx // s) % c
        scale = float32(1) / math.sqrt(var[ch] + eps)
        y[idx] = (x[idx] - mean[ch]) * scale


@cuda.jit
def bn_bwd_v1(y, dy, inv_std, dx, n, c, s):
    """Block ch: dx = (dy - (sum dy + y * sum dy*y) / m) * inv_std[ch] over channel ch."""
    partial_dy = cuda.shared.array(BLOCK_THREADS, float32)
    partial_dyy = cuda.shared.array(BLOCK_THREADS, float32)
    ch = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    m = n * s
    acc_dy = float32(0)
    acc_dyy = float32(0)
    n_idx, s_idx, n_step, s_step = walk_start(tid, BLOCK_THREADS, s)
    while n_idx < n:      # flat k = n_idx*s + s_idx over the channel, stride BLOCK_THREADS
        idx = (n_idx * c + ch) * s + s_idx
        g = dy[idx]
        acc_dy += g
        acc_dyy += g * y[idx]
        n_idx, s_idx = walk_next(n_idx, s_idx, n_step, s_step, s)
    partial_dy[tid] = acc_dy
    partial_dyy[tid] = acc_dyy
    sum_dy = block_sum(partial_dy, tid)
    sum_dyy = block_sum(partial_dyy, tid)
    neg_inv_m = float32(-1) / float32(m)
    scale = inv_std[ch]
    n_idx, s_idx, n_step, s_step = walk_start(tid, BLOCK_THREADS, s)
    while n_idx < n:
        idx = (n_idx * c + ch) * s + s_idx
        dx[idx] = (dy[idx] + neg_inv_m * (y[idx] * sum_dyy + sum_dy)) * scale
        n_idx, s_idx = walk_next(n_idx, s_idx, n_step, s_step, s)


@cuda.jit
def bn_bwd_apply_v2(y, dy, sum_dy, sum_dyy, inv_std, dx, n, c, s):
    """dx = (dy - (sum_dy[ch] + y * sum_dyy[ch]) / m) * inv_std[ch], one thread per element."""
    total = n * c * s
    neg_inv_m = float32(-1) / float32(n * s)
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        ch = (idx // s) % c
        dx[idx] = (dy[idx] + neg_inv_m * (y[idx] * sum_dyy[ch] + sum_dy[ch])) * inv_std[ch]


@cuda.jit
def bn_fwd_v2(x, mean, var, eps, y, inv_std, n, c, s):
    """Row version of bn_fwd_v1: a block per (n, c) row of s contiguous values (block-stride over
    the n*c rows), ch = r % c once per row; block 0 also stores inv_std."""
    if cuda.blockIdx.x == 0:
        for ch in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            inv_std[ch] = float32(1) / math.sqrt(var[ch] + eps)
    for r in range(cuda.blockIdx.x, n * c, cuda.gridDim.x):
        ch = r % c
        mu = mean[ch]
        scale = float32(1) / math.sqrt(var[ch] + eps)
        base = r * s
        for i in range(cuda.threadIdx.x, s, cuda.blockDim.x):
            y[base + i] = (x[base + i] - mu) * scale


@cuda.jit
def bn_bwd_apply_v3(y, dy, sum_dy, sum_dyy, inv_std, dx, n, c, s):
    """Row version of bn_bwd_apply_v2 (a block per (n, c) row, no division per element)."""
    neg_inv_m = float32(-1) / float32(n * s)
    for r in range(cuda.blockIdx.x, n * c, cuda.gridDim.x):
        ch = r % c
        sd = sum_dy[ch]
        sdy = sum_dyy[ch]
        scale = inv_std[ch]
        base = r * s
        for i in range(cuda.threadIdx.x, s, cuda.blockDim.x):
            idx = base + i
            dx[idx] = (dy[idx] + neg_inv_m * (y[idx] * sdy + sd)) * scale


@cuda.jit
def bn_bwd_global_v2(dy, inv_std, dx, n, c, s):
    """Row version of bn_bwd_global_v1: dx = dy * inv_std[ch]."""
    for r in range(cuda.blockIdx.x, n * c, cuda.gridDim.x):
        scale = inv_std[r % c]
        base = r * s
        for i in range(cuda.threadIdx.x, s, cuda.blockDim.x):
            dx[base + i] = dy[base + i] * scale


@cuda.jit
def bn_bwd_global_v1(dy, inv_std, dx, n, c, s):
    """dx = dy * inv_std[ch] (global statistics are constants)."""
    total = n * c * s
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        ch = (idx // s) % c
        dx[idx] = dy[idx] * inv_std[ch]


_I = int64
_F = float32
KERNELS: dict[str, tuple[Any, list]] = {
    "bn_mean_var_v1": (bn_mean_var_v1, [void(F1, F1, F1, _I, _I, _I)]),
    "bn_running_update_v1": (bn_running_update_v1, [void(F1, F1, F1, F1, F1, _I, _F, _F)]),
    "bn_global_stats_v1": (bn_global_stats_v1, [void(F1, F1, F1, F1, F1, _I)]),
    "bn_fwd_v1": (bn_fwd_v1, [void(F1, F1, F1, _F, F1, F1, _I, _I, _I)]),
    "bn_bwd_v1": (bn_bwd_v1, [void(F1, F1, F1, F1, _I, _I, _I)]),
    "bn_bwd_apply_v2": (bn_bwd_apply_v2, [void(F1, F1, F1, F1, F1, F1, _I, _I, _I)]),
    "bn_fwd_v2": (bn_fwd_v2, [void(F1, F1, F1, _F, F1, F1, _I, _I, _I)]),
    "bn_bwd_apply_v3": (bn_bwd_apply_v3, [void(F1, F1, F1, F1, F1, F1, _I, _I, _I)]),
    "bn_bwd_global_v2": (bn_bwd_global_v2, [void(F1, F1, F1, _I, _I, _I)]),
    "bn_bwd_global_v1": (bn_bwd_global_v1, [void(F1, F1, F1, _I, _I, _I)]),
}


def _check(name: str, n: int, c: int, s: int, big: list[tuple[str, Any]],
           small: list[tuple[str, Any]]) -> None:
    if min(n, c, s) < 0:
        raise ValueError(f"{name}: negative dimension in (n, c, s) = {(n, c, s)}")
    for label, a in big + small:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: {label} must be float32, got {a.dtype}")
    for label, a in big:
        if a.size != n * c * s:
            raise ValueError(f"{name}: {label} has {a.size} elements, expected n*c*s = {n}*{c}*{s}")
    for label, a in small:
        if a.size != c:
            raise ValueError(f"{name}: {label} has {a.size} elements, expected c = {c}")


def channel_mean_var(x: Any, mean: Any, var: Any, n: int, c: int, s: int) -> None:
    """x viewed as (n, c, s): mean[c] = mean over (n, s); var[c] = mean of (x - mean)^2 (biased).
    mean, var (c,) written."""
    xf, mf, vf = flat(x), flat(mean), flat(var)
    _check("channel_mean_var", n, c, s, [("x", xf)], [("mean", mf), ("var", vf)])
    if c == 0:
        return
    if n * s == 0:
        raise ValueError("channel_mean_var: no values per channel (n * s == 0)")
    parts = R.channel_parts(c, n * s) if PROMOTED["channel_mean_var"] == "v2" else 1
    if parts == 1:
        bn_mean_var_v1[c, BLOCK_THREADS](xf, mf, vf, n, c, s)
        return
    inv_m = np.float32(1) / np.float32(n * s)
    R.channel_sums(xf, xf, xf, mf, mf, n, c, s, R.CH_SUM_DOT, R.OUT_WRITE, R.OUT_SKIP,
                   scale1=inv_m, parts=parts)
    R.channel_sums(xf, xf, mf, vf, vf, n, c, s, R.CH_SQDEV, R.OUT_WRITE, R.OUT_SKIP,
                   scale1=inv_m, parts=parts)


def batchnorm_running_update(mean: Any, var: Any, running_mean: Any, running_var: Any,
                             running_factor: Any, moving_average_fraction: float, m: int) -> None:
    """Caffe's TRAIN-phase moving averages (blobs 0, 1, 2) from this batch's mean and biased var;
    ``m`` = values per channel (n * s): the variance is stored unbiased-corrected by m / (m - 1)."""
    mf, vf, rmf, rvf, rff = (flat(a) for a in (mean, var, running_mean, running_var, running_factor))
    c = mf.size
    _check("batchnorm_running_update", 0, c, 0, [],
           [("mean", mf), ("var", vf), ("running_mean", rmf), ("running_var", rvf)])
    if rff.size != 1 or rff.dtype != np.float32:
        raise ValueError("batchnorm_running_update: running_factor must be one float32 (blob 2)")
    correction = np.float32(m) / np.float32(m - 1) if m > 1 else np.float32(1)
    blocks, threads = grid_1d(max(c, 1))
    bn_running_update_v1[blocks, threads](mf, vf, rmf, rvf, rff, c, np.float32(moving_average_fraction),
                                          correction)


def batchnorm_global_stats(running_mean: Any, running_var: Any, running_factor: Any, mean: Any,
                           var: Any) -> None:
    """Caffe's use_global_stats statistics: mean = blob0 * sf, var = blob1 * sf with sf = 0 if
    blob2 == 0 else 1 / blob2 (blob2 read on the device)."""
    rmf, rvf, rff, mf, vf = (flat(a) for a in (running_mean, running_var, running_factor, mean, var))
    c = mf.size
    _check("batchnorm_global_stats", 0, c, 0, [],
           [("running_mean", rmf), ("running_var", rvf), ("mean", mf), ("var", vf)])
    if rff.size != 1 or rff.dtype != np.float32:
        raise ValueError("batchnorm_global_stats: running_factor must be one float32 (blob 2)")
    blocks, threads = grid_1d(max(c, 1))
    bn_global_stats_v1[blocks, threads](rmf, rvf, rff, mf, vf, c)


def batchnorm_fwd(x: Any, mean: Any, var: Any, eps: float, y: Any, inv_std: Any, n: int, c: int,
                  s: int) -> None:
    """inv_std[c] = 1 / sqrt(var[c] + eps); y = (x - mean[c]) * inv_std[c] over (n, c, s) views.
    y may be x."""
    xf, mf, vf, yf, isf = (flat(a) for a in (x, mean, var, y, inv_std))
    _check("batchnorm_fwd", n, c, s, [("x", xf), ("y", yf)],
           [("mean", mf), ("var", vf), ("inv_std", isf)])
    if PROMOTED["batchnorm_fwd"] == "v2" and s >= ROW_MIN_INNER:
        blocks, threads = grid_rows(n * c)
        bn_fwd_v2[blocks, threads](xf, mf, vf, np.float32(eps), yf, isf, n, c, s)
        return
    blocks, threads = grid_1d(max(n * c * s, c))
    bn_fwd_v1[blocks, threads](xf, mf, vf, np.float32(eps), yf, isf, n, c, s)


def batchnorm_bwd(y: Any, dy: Any, inv_std: Any, dx: Any, n: int, c: int, s: int,
                  use_global_stats: bool) -> None:
    """Caffe BatchNorm backward (y = normalized top data): global stats: dx = dy * inv_std; else
    dx = (dy - mean_{n,s}(dy) - y * mean_{n,s}(dy * y)) * inv_std. dx written; dx may be dy."""
    yf, dyf, isf, dxf = (flat(a) for a in (y, dy, inv_std, dx))
    _check("batchnorm_bwd", n, c, s, [("y", yf), ("dy", dyf), ("dx", dxf)], [("inv_std", isf)])
    version = PROMOTED["batchnorm_bwd"]
    if use_global_stats:
        if version != "v1" and s >= ROW_MIN_INNER:
            blocks, threads = grid_rows(n * c)
            bn_bwd_global_v2[blocks, threads](dyf, isf, dxf, n, c, s)
            return
        blocks, threads = grid_1d(n * c * s)
        bn_bwd_global_v1[blocks, threads](dyf, isf, dxf, n, c, s)
        return
    if c == 0 or n * s == 0:
        return
    parts = R.channel_parts(c, n * s) if version != "v1" else 1
    if parts == 1:
        bn_bwd_v1[c, BLOCK_THREADS](yf, dyf, isf, dxf, n, c, s)
        return
    sums = scratch("batchnorm.bwd_sums", 2 * c)
    sum_dy, sum_dyy = sums[:c], sums[c:2 * c]
    R.channel_sums(dyf, yf, dyf, sum_dy, sum_dyy, n, c, s, R.CH_SUM_DOT, R.OUT_WRITE, R.OUT_WRITE,
                   parts=parts)
    if version == "v3" and s >= ROW_MIN_INNER:
        blocks, threads = grid_rows(n * c)
        bn_bwd_apply_v3[blocks, threads](yf, dyf, sum_dy, sum_dyy, isf, dxf, n, c, s)
        return
    blocks, threads = grid_1d(n * c * s)
    bn_bwd_apply_v2[blocks, threads](yf, dyf, sum_dy, sum_dyy, isf, dxf, n, c, s)
