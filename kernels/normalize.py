"""L2 normalisation of the SSD fork's Normalize layer, forward and backward.

Shapes: ``x``/``y``/``dy``/``dx`` (N, C, S) float32 (an NCHW blob with S = H*W); ``scale`` and
``dscale`` (C,), or (1,) when the scale is channel-shared; ``norm`` (N, S) per position, or (N,)
per image when the norm runs across the spatial positions.

- per position (``across_spatial`` false): ``norm[n, s] = sqrt(sum_c x[n, c, s]^2 + eps)``;
  per image (true): ``norm[n] = sqrt(sum_{c, s} x[n, c, s]^2 + eps)``;
  ``y = x / norm * scale[c]`` (``scale[0]`` when shared).
- backward, with ``a`` = sum of ``x * dy`` over the same axes as the norm:
  ``dx = (dy - x * a / norm^2) / norm * scale[c]`` (written);
  ``dscale[c] += sum_{n, s} y * dy / scale[c]`` (accumulates; the fork's formula, which divides the
  top by the scale instead of keeping x / norm).

Versions:

- ``normalize_spatial_fwd_v1`` / ``normalize_spatial_bwd_v1``: one thread per (n, s), grid-stride
  (``kernels._launch.launch_1d``); each thread walks the C channels (stride S, so a warp reads
  S-contiguous runs) once to reduce and once to write.
- ``normalize_across_fwd_v1`` / ``normalize_across_bwd_v1``: one block of
  ``kernels._block.BLOCK_THREADS`` threads per image (grid-stride over images): each thread sums a
  strided part of the image's C*S values, ``kernels._block.block_sum`` reduces the partials, then
  the block writes the image.
- ``normalize_scale_bwd_v1``: one block per channel (shared scale: the host views the arrays as
  one channel of C*S values), the same strided sums and ``block_sum``, thread 0 adds to
  ``dscale``. No atomics.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32

from kernels._block import BLOCK_THREADS, block_sum
from kernels._index import flat_checked
from kernels._launch import MAX_BLOCKS_1D, launch_1d


@cuda.jit
def normalize_spatial_fwd_v1(x, scale, y, norm, eps, shared):
    """norm[n, s] = sqrt(sum_c x^2 + eps); y = x / norm * scale[c or 0]; a thread per (n, s)."""
    N = x.shape[0]
    C = x.shape[1]
    S = x.shape[2]
    for idx in range(cuda.grid(1), N * S, cuda.gridsize(1)):
        s = idx % S
        n = idx // S
        acc = float32(0.0)
        for c in range(C):
            v = x[n, c, s]
            acc += v * v
        nrm = math.sqrt(acc + eps)
        norm[n, s] = nrm
        for c in range(C):
            sc = scale[0] if shared else scale[c]
            y[n, c, s] = x[n, c, s] / nrm * sc


@cuda.jit
def normalize_spatial_bwd_v1(x, dy, scale, norm, dx, shared):
    """dx = (dy - x * sum_c(x * dy) / norm^2) / norm * scale[c or 0]; a thread per (n, s)."""
    N = x.shape[0]
    C = x.shape[1]
    S = x.shape[2]
    for idx in range(cuda.grid(1), N * S, cuda.gridsize(1)):
        s = idx % S
        n = idx // S
        a = float32(0.0)
        for c in range(C):
            a += x[n, c, s] * dy[n, c, s]
        nrm = norm[n, s]
        nrm2 = nrm * nrm
        for c in range(C):
            sc = scale[0] if shared else scale[c]
            dx[n, c, s] = (dy[n, c, s] - x[n, c, s] * a / nrm2) / nrm * sc


@cuda.jit
def normalize_across_fwd_v1(x, scale, y, norm, eps, shared):
    """norm[n] = sqrt(sum_{c,s} x^2 + eps); y = x * (1 / norm) * scale[c or 0]: a block per image,
    grid min(N, MAX_BLOCKS_1D), grid-stride over images."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    N = x.shape[0]
    C = x.shape[1]
    S = x.shape[2]
    tid = cuda.threadIdx.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        acc = float32(0.0)
        for e in range(tid, C * S, BLOCK_THREADS):
            v = x[n, e // S, e % S]
            acc += v * v
        partial[tid] = acc
        nrm = math.sqrt(block_sum(partial, tid) + eps)
        inv = float32(1.0) / nrm
        if tid == 0:
            norm[n] = nrm
        for e in range(tid, C * S, BLOCK_THREADS):
            c = e // S
            s = e % S
            sc = scale[0] if shared else scale[c]
            y[n, c, s] = x[n, c, s] * inv * sc
        cuda.syncthreads()  # every thread has read partial[0] before the next image overwrites it


@cuda.jit
def normalize_across_bwd_v1(x, dy, scale, norm, dx, shared):
    """dx = (dy - x * (a / norm / norm)) * (1 / norm) * scale[c or 0], a = sum_{c,s} x * dy: a block
    per image, grid min(N, MAX_BLOCKS_1D), grid-stride over images."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    N = x.shape[0]
    C = x.shape[1]
    S = x.shape[2]
    tid = cuda.threadIdx.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        acc = float32(0.0)
        for e in range(tid, C * S, BLOCK_THREADS):
            c = e // S
            s = e % S
            acc += x[n, c, s] * dy[n, c, s]
        partial[tid] = acc
        a = block_sum(partial, tid)
        nrm = norm[n]
        k = a / nrm / nrm
        inv = float32(1.0) / nrm
        for e in range(tid, C * S, BLOCK_THREADS):
            c = e // S
            s = e % S
            sc = scale[0] if shared else scale[c]
            dx[n, c, s] = (dy[n, c, s] - x[n, c, s] * k) * inv * sc
        cuda.syncthreads()  # every thread has read partial[0] before the next image overwrites it


@cuda.jit
def normalize_scale_bwd_v1(y, dy, scale, dscale):
    """dscale[c] += sum_{n,s} y[n, c, s] * dy[n, c, s] / scale[c]: a block per channel, grid
    min(C, MAX_BLOCKS_1D), grid-stride over channels."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    N = y.shape[0]
    C = y.shape[1]
    S = y.shape[2]
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        acc = float32(0.0)
        for e in range(tid, N * S, BLOCK_THREADS):
            n = e // S
            s = e - n * S
            acc += y[n, c, s] * dy[n, c, s]
        partial[tid] = acc
        total = block_sum(partial, tid)
        if tid == 0:
            dscale[c] += total / scale[c]
        cuda.syncthreads()  # every thread has read partial[0] before the next channel overwrites it


_NCS = "float32[:, :, ::1]"
_V = "float32[::1]"
_SIG_SPATIAL_FWD = f"void({_NCS}, {_V}, {_NCS}, float32[:, ::1], float32, boolean)"
_SIG_ACROSS_FWD = f"void({_NCS}, {_V}, {_NCS}, {_V}, float32, boolean)"
_SIG_SPATIAL_BWD = f"void({_NCS}, {_NCS}, {_V}, float32[:, ::1], {_NCS}, boolean)"
_SIG_ACROSS_BWD = f"void({_NCS}, {_NCS}, {_V}, {_V}, {_NCS}, boolean)"

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "normalize_spatial_fwd_v1": (normalize_spatial_fwd_v1, [_SIG_SPATIAL_FWD]),
    "normalize_spatial_bwd_v1": (normalize_spatial_bwd_v1, [_SIG_SPATIAL_BWD]),
    "normalize_across_fwd_v1": (normalize_across_fwd_v1, [_SIG_ACROSS_FWD]),
    "normalize_across_bwd_v1": (normalize_across_bwd_v1, [_SIG_ACROSS_BWD]),
    "normalize_scale_bwd_v1": (normalize_scale_bwd_v1, [f"void({_NCS}, {_NCS}, {_V}, {_V})"]),
}


def _ncs(arr, shape, who):
    """``arr`` (N*C*S float32 values) viewed as ``shape`` = (N, C, S)."""
    return flat_checked(who, arr, shape[0] * shape[1] * shape[2]).reshape(*shape)


def _norm(norm, shape, across, who):
    flat = flat_checked(f"{who} (norm)", norm, shape[0] if across else shape[0] * shape[2])
    return flat if across else flat.reshape(shape[0], shape[2])


def normalize_fwd(x, scale, y, norm, shape: tuple[int, int, int], across_spatial: bool,
                  eps: float) -> None:
    """``y = x / norm * scale``; ``norm`` (N,) or (N, S) written (see the module docstring).
    ``x``/``y`` hold N*C*S values (viewed as ``shape`` = (N, C, S)), ``scale`` C or 1 values."""
    n, c, s = shape
    xv, yv = _ncs(x, shape, "normalize_fwd"), _ncs(y, shape, "normalize_fwd")
    sv = flat_checked("normalize_fwd (scale)", scale)
    shared = sv.size == 1
    if not shared and sv.size != c:
        raise ValueError(f"normalize_fwd: scale holds {sv.size} values, expected 1 or {c}")
    nv = _norm(norm, shape, across_spatial, "normalize_fwd")
    if across_spatial:
        normalize_across_fwd_v1[max(1, min(n, MAX_BLOCKS_1D)), BLOCK_THREADS](
            xv, sv, yv, nv, np.float32(eps), shared)
    else:
        launch_1d(normalize_spatial_fwd_v1, n * s, xv, sv, yv, nv, np.float32(eps), shared)


def normalize_bwd(x, y, dy, scale, norm, dx, dscale, shape: tuple[int, int, int],
                  across_spatial: bool) -> None:
    """Gradients of ``normalize_fwd``: ``dx`` written when not None, ``dscale`` accumulated when not
    None (see the module docstring). ``y`` is the forward's output."""
    n, c, s = shape
    sv = flat_checked("normalize_bwd (scale)", scale)
    shared = sv.size == 1
    if not shared and sv.size != c:
        raise ValueError(f"normalize_bwd: scale holds {sv.size} values, expected 1 or {c}")
    dyv = _ncs(dy, shape, "normalize_bwd")
    if dscale is not None:
        dsv = flat_checked("normalize_bwd (dscale)", dscale, sv.size)
        rs = (n, 1, c * s) if shared else shape
        normalize_scale_bwd_v1[max(1, min(rs[1], MAX_BLOCKS_1D)), BLOCK_THREADS](
            _ncs(y, rs, "normalize_bwd"), _ncs(dy, rs, "normalize_bwd"), sv, dsv)
    if dx is None:
        return
    xv, dxv = _ncs(x, shape, "normalize_bwd"), _ncs(dx, shape, "normalize_bwd")
    nv = _norm(norm, shape, across_spatial, "normalize_bwd")
    if across_spatial:
        normalize_across_bwd_v1[max(1, min(n, MAX_BLOCKS_1D)), BLOCK_THREADS](
            xv, dyv, sv, nv, dxv, shared)
    else:
        launch_1d(normalize_spatial_bwd_v1, n * s, xv, dyv, sv, nv, dxv, shared)
