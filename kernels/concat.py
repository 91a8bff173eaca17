"""Caffe's Concat and Slice layers: copy one bottom into its place along an axis of the top, and back.

Views (C order): the top is (outer, top_axis, inner), a bottom is (outer, bottom_axis, inner), where
``outer`` is the product of the dims before the concat axis and ``inner`` of the dims after it.
The bottom occupies top channels [offset, offset + bottom_axis).

- concat_fwd: top[o, offset + a, i] = bottom[o, a, i]   (Concat forward; Slice backward)
- concat_bwd: bottom[o, a, i] = top[o, offset + a, i]   (Concat backward; Slice forward)

Both write (=): a bottom diff is written, and the K bottoms of a Concat together cover the whole
top, so no fill is needed. ``concat_fwd_all`` / ``concat_bwd_all`` run all K bottoms with the
running offset (the runner's backend signature).

Versions (``PROMOTED``: v2 for both):
- v1: one thread per bottom element in a grid-stride loop; the flat bottom index is split into o
  and r = a*inner + i, so consecutive threads touch consecutive addresses of both arrays
  (coalesced on inner, and across a when the slab a*inner is contiguous); one 64-bit division
  per element.
- v2 (where inner >= ``kernels._launch.ROW_MIN_INNER``, else v1): a block per bottom row (o, a) of
  inner contiguous values, block-stride over the outer*bottom_axis rows, threads along inner
  (coalesced); one division per row.

Launch geometry: v1: ``kernels._launch.grid_1d(outer * bottom_axis * inner)``; v2:
``kernels._launch.grid_rows(outer * bottom_axis)``; cached.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._index import flat
from kernels._launch import ROW_MIN_INNER, grid_1d, grid_rows

F1 = float32[::1]


@cuda.jit
def concat_fwd_v1(bottom, top, n, bottom_axis, top_axis, offset, inner):
    """top[o, offset + a, i] = bottom[o, a, i] for the n = outer * bottom_axis * inner elements."""
    slab = bottom_axis * inner           # elements of one bottom row (fixed o)
    for idx in range(cuda.grid(1), n, cuda.gridsize(1)):
        o = idx // slab
        r = idx - o * slab               # a * inner + i
        top[(o * top_axis + offset) * inner + r] = bottom[idx]


@cuda.jit
def concat_bwd_v1(top, bottom, n, bottom_axis, top_axis, offset, inner):
    """bottom[o, a, i] = top[o, offset + a, i] for the n = outer * bottom_axis * inner elements."""
    slab = bottom_axis * inner
    for idx in range(cuda.grid(1), n, cuda.gridsize(1)):
        o = idx // slab
        r = idx - o * slab
        bottom[idx] = top[(o * top_axis + offset) * inner + r]


@cuda.jit
def concat_fwd_v2(bottom, top, rows, bottom_axis, top_axis, offset, inner):
    """A block per bottom row r = o*bottom_axis + a (block-stride over the outer*bottom_axis rows):
    the row's inner contiguous values go to top row o*top_axis + offset + a; one division per row."""
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        o = r // bottom_axis
        a = r - o * bottom_axis
        src = r * inner
        dst = (o * top_axis + offset + a) * inner
        for i in range(cuda.threadIdx.x, inner, cuda.blockDim.x):
            top[dst + i] = bottom[src + i]


@cuda.jit
def concat_bwd_v2(top, bottom, rows, bottom_axis, top_axis, offset, inner):
    """Row version of concat_bwd_v1: bottom row r gets top row o*top_axis + offset + a."""
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        o = r // bottom_axis
        a = r - o * bottom_axis
        dst = r * inner
        src = (o * top_axis + offset + a) * inner
        for i in range(cuda.threadIdx.x, inner, cuda.blockDim.x):
            bottom[dst + i] = top[src + i]


_SIG = [void(F1, F1, int64, int64, int64, int64, int64)]
KERNELS: dict[str, tuple[Any, list]] = {
    "concat_fwd_v1": (concat_fwd_v1, _SIG),
    "concat_bwd_v1": (concat_bwd_v1, _SIG),
    "concat_fwd_v2": (concat_fwd_v2, _SIG),
    "concat_bwd_v2": (concat_bwd_v2, _SIG),
}

PROMOTED: dict[str, str] = {"concat_fwd": "v2", "concat_bwd": "v2"}


def _prepare(name: str, bottom: Any, top: Any, outer: int, bottom_axis: int, top_axis: int,
             offset: int, inner: int) -> tuple[Any, Any, int]:
    bf, tf = flat(bottom), flat(top)
    if bf.dtype != np.float32 or tf.dtype != np.float32:
        raise TypeError(f"{name}: expected float32 arrays, got {bf.dtype}, {tf.dtype}")
    if min(outer, bottom_axis, top_axis, inner) < 0 or offset < 0:
        raise ValueError(f"{name}: negative size or offset")
    if offset + bottom_axis > top_axis:
        raise ValueError(f"{name}: bottom channels [{offset}, {offset + bottom_axis}) exceed the "
                         f"top's {top_axis}")
    if bf.size != outer * bottom_axis * inner:
        raise ValueError(f"{name}: bottom has {bf.size} elements, expected outer*bottom_axis*inner"
                         f" = {outer}*{bottom_axis}*{inner}")
    if tf.size != outer * top_axis * inner:
        raise ValueError(f"{name}: top has {tf.size} elements, expected outer*top_axis*inner"
                         f" = {outer}*{top_axis}*{inner}")
    return bf, tf, bf.size


def concat_fwd(bottom: Any, top: Any, outer: int, bottom_axis: int, top_axis: int, offset: int,
               inner: int) -> None:
    """Copy ``bottom`` (outer, bottom_axis, inner) into channels [offset, offset + bottom_axis) of
    ``top`` (outer, top_axis, inner)."""
    bf, tf, n = _prepare("concat_fwd", bottom, top, outer, bottom_axis, top_axis, offset, inner)
    if PROMOTED["concat_fwd"] == "v2" and inner >= ROW_MIN_INNER:
        rows = outer * bottom_axis
        blocks, threads = grid_rows(rows)
        concat_fwd_v2[blocks, threads](bf, tf, rows, bottom_axis, top_axis, offset, inner)
        return
    blocks, threads = grid_1d(n)
    concat_fwd_v1[blocks, threads](bf, tf, n, bottom_axis, top_axis, offset, inner)


def concat_bwd(top: Any, bottom: Any, outer: int, bottom_axis: int, top_axis: int, offset: int,
               inner: int) -> None:
    """Copy channels [offset, offset + bottom_axis) of ``top`` (outer, top_axis, inner) into
    ``bottom`` (outer, bottom_axis, inner) (written)."""
    bf, tf, n = _prepare("concat_bwd", bottom, top, outer, bottom_axis, top_axis, offset, inner)
    if PROMOTED["concat_bwd"] == "v2" and inner >= ROW_MIN_INNER:
        rows = outer * bottom_axis
        blocks, threads = grid_rows(rows)
        concat_bwd_v2[blocks, threads](tf, bf, rows, bottom_axis, top_axis, offset, inner)
        return
    blocks, threads = grid_1d(n)
    concat_bwd_v1[blocks, threads](tf, bf, n, bottom_axis, top_axis, offset, inner)


def concat_fwd_all(xs: Sequence[Any], y: Any, outer: int, dims: Sequence[int], inner: int) -> None:
    """y (outer, sum(dims), inner) = concatenation of xs[j] (outer, dims[j], inner) along the middle
    axis (Concat forward, Slice backward)."""
    if len(xs) != len(dims):
        raise ValueError(f"concat_fwd_all: {len(xs)} arrays but {len(dims)} dims")
    total, offset = sum(dims), 0
    for x, d in zip(xs, dims):
        concat_fwd(x, y, outer, d, total, offset, inner)
        offset += d


def concat_bwd_all(dy: Any, dxs: Sequence[Any | None], outer: int, dims: Sequence[int],
                   inner: int) -> None:
    """Split dy (outer, sum(dims), inner) into dxs[j] (outer, dims[j], inner); None entries are
    skipped (Concat backward, Slice forward)."""
    if len(dxs) != len(dims):
        raise ValueError(f"concat_bwd_all: {len(dxs)} arrays but {len(dims)} dims")
    total, offset = sum(dims), 0
    for dx, d in zip(dxs, dims):
        if dx is not None:
            concat_bwd(dy, dx, outer, d, total, offset, inner)
        offset += d
