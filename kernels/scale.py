"""Caffe's Scale layer (channel-wise scale with optional bias) over (outer, dim, inner) views.

Shapes: x, y, dy, dx are viewed as (outer, dim, inner) C-contiguous; s, b, ds, db are (dim,).
Caffe's ScaleParameter axis/num_axes: the scale blob covers bottom dims [axis, axis + num_axes),
flattened to ``dim``; outer = count(0, axis), inner = count(axis + num_axes) (num_axes = 0: a
scalar scale, dim = 1). The scale is a learned parameter (one bottom) or the second bottom.

Math:
- forward:  y[o, d, i] = x[o, d, i] * s[d]  (+ b[d] with bias_term)       y may be x (in place)
- backward: dx[o, d, i] = dy[o, d, i] * s[d]                              (written; dx may be dy)
            ds[d] (+)= sum_{o, i} dy[o, d, i] * x[o, d, i]   accumulates for a parameter scale,
                        written (accumulate_ds=False) when the scale is the second bottom
            db[d] += sum_{o, i} dy[o, d, i]                    (parameter: accumulates)
  ``x`` in the backward is the bottom data before the forward (Caffe keeps a copy for in-place).
  Compute ds/db before dx when dx aliases dy.

Versions (``PROMOTED``: v2 for both; each v2 kernel runs where its condition holds, v1 elsewhere):
- v1 elementwise ``scale_fwd_v1`` / ``scale_bias_fwd_v1`` / ``scale_bwd_v1``: one thread per
  element, grid-stride; the channel is d = (idx // inner) % dim (two 64-bit divisions per element).
- v2 elementwise ``scale_fwd_v2`` / ``scale_bias_fwd_v2`` (also dx = dy * s[d]), where
  inner >= ``kernels._launch.ROW_MIN_INNER``: a block per (o, d) row, block-stride over the
  outer*dim rows, threads along the row's inner contiguous values (coalesced); d = r % dim once
  per row.
- v1 reductions ``scale_param_bwd_v1`` (ds) and ``scale_bias_param_bwd_v1`` (ds and db in one
  pass): one block per channel d; its threads stride over the outer*inner elements of the channel
  (consecutive threads read consecutive i: coalesced), then a shared-memory tree; thread 0 writes
  ds[d] (and db[d]). ``bias_param_bwd_v1``: db alone (scale frozen). No atomics: deterministic.
- v2 reductions (``kernels.reduce.channel_parts(dim, outer*inner)`` != 1): few, long channels on
  ``parts`` blocks per channel (``kernels.reduce.channel_partial_v2`` + ``channel_finalize_v2``),
  short channels on one thread per channel (``channel_thread_v2``); s1 = sum dy -> db,
  s2 = sum dy*x -> ds; deterministic.
- v1 ``scale_param_elem_bwd_v1`` / ``bias_param_elem_bwd_v1``: outer == inner == 1 (a scale per
  element, Caffe's is_eltwise): ds[d] (+)= dy[d] * x[d], db[d] += dy[d] elementwise.

Launch geometry: elementwise v1 kernels: ``kernels._launch.grid_1d(outer*dim*inner)``; v2:
``kernels._launch.grid_rows(outer*dim)``; reductions: ``dim`` blocks x
``kernels._block.BLOCK_THREADS`` threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels import reduce as R
from kernels._block import BLOCK_THREADS, block_sum, walk_next, walk_start
from kernels._index import flat
from kernels._launch import ROW_MIN_INNER, grid_1d, grid_rows

PROMOTED: dict[str, str] = {"scale_fwd": "v2", "scale_bwd": "v2"}

F1 = float32[::1]


@cuda.jit
def scale_fwd_v1(x, s, y, n, dim, inner):
    """y[o, d, i] = x[o, d, i] * s[d] over the flat index."""
    for idx in range(cuda.grid(1), n, cuda.gridsize(1)):
        d = (idx // inner) % dim
        y[idx] = x[idx] * s[d]


@cuda.jit
def scale_bias_fwd_v1(x, s, b, y, n, dim, inner):
    """y[o, d, i] = x[o, d, i] * s[d] + b[d] over the flat index."""
    for idx in range(cuda.grid(1), n, cuda.gridsize(1)):
        d = (idx // inner) % dim
        y[idx] = x[idx] * s[d] + b[d]


@cuda.jit
def scale_bwd_v1(dy, s, dx, n, dim, inner):
    """dx[o, d, i] = dy[o, d, i] * s[d]."""
    for idx in range(cuda.grid(1), n, cuda.gridsize(1)):
        d = (idx // inner) % dim
        dx[idx] = dy[idx] * s[d]


@cuda.jit
def scale_fwd_v2(x, s, y, rows, dim, inner):
    """Rows r = o*dim + d of ``inner`` contiguous values, a block per row (block-stride over rows):
    d = r % dim once per row, no division per element. y = x * s[d]; also dx = dy * s[d]."""
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        sd = s[r % dim]
        base = r * inner
        for i in range(cuda.threadIdx.x, inner, cuda.blockDim.x):
            y[base + i] = x[base + i] * sd


@cuda.jit
def scale_bias_fwd_v2(x, s, b, y, rows, dim, inner):
    """Row version of scale_bias_fwd_v1: y = x * s[d] + b[d]."""
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        d = r % dim
        sd = s[d]
        bd = b[d]
        base = r * inner
        for i in range(cuda.threadIdx.x, inner, cuda.blockDim.x):
            y[base + i] = x[base + i] * sd + bd


@cuda.jit
def scale_param_bwd_v1(dy, x, ds, outer, dim, inner, accumulate):
    """Block d: ds[d] (+)= sum over o, i of dy[o, d, i] * x[o, d, i]."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    d = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    acc = float32(0)
    o, i, o_step, i_step = walk_start(tid, BLOCK_THREADS, inner)
    while o < outer:      # flat k = o*inner + i over the channel, stride BLOCK_THREADS
        idx = (o * dim + d) * inner + i
        acc += dy[idx] * x[idx]
        o, i = walk_next(o, i, o_step, i_step, inner)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        if accumulate:
            ds[d] = ds[d] + total
        else:
            ds[d] = total


@cuda.jit
def scale_bias_param_bwd_v1(dy, x, ds, db, outer, dim, inner, accumulate_ds):
    """Block d: ds[d] (+)= sum dy * x and db[d] += sum dy over o, i, in one pass over dy."""
    partial_s = cuda.shared.array(BLOCK_THREADS, float32)
    partial_b = cuda.shared.array(BLOCK_THREADS, float32)
    d = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    acc_s = float32(0)
    acc_b = float32(0)
    o, i, o_step, i_step = walk_start(tid, BLOCK_THREADS, inner)
    while o < outer:      # flat k = o*inner + i over the channel, stride BLOCK_THREADS
        idx = (o * dim + d) * inner + i
        g = dy[idx]
        acc_s += g * x[idx]
        acc_b += g
        o, i = walk_next(o, i, o_step, i_step, inner)
    partial_s[tid] = acc_s
    partial_b[tid] = acc_b
    total_s = block_sum(partial_s, tid)
    total_b = block_sum(partial_b, tid)
    if tid == 0:
        if accumulate_ds:
            ds[d] = ds[d] + total_s
        else:
            ds[d] = total_s
        db[d] = db[d] + total_b


@cuda.jit
def bias_param_bwd_v1(dy, db, outer, dim, inner):
    """Block d: db[d] += sum over o, i of dy[o, d, i] (bias learned, scale frozen)."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    d = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    acc = float32(0)
    o, i, o_step, i_step = walk_start(tid, BLOCK_THREADS, inner)
    while o < outer:      # flat k = o*inner + i over the channel, stride BLOCK_THREADS
        acc += dy[(o * dim + d) * inner + i]
        o, i = walk_next(o, i, o_step, i_step, inner)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        db[d] = db[d] + total


@cuda.jit
def scale_param_elem_bwd_v1(dy, x, ds, n, accumulate):
    """outer == inner == 1: ds[d] (+)= dy[d] * x[d]."""
    for d in range(cuda.grid(1), n, cuda.gridsize(1)):
        if accumulate:
            ds[d] = ds[d] + dy[d] * x[d]
        else:
            ds[d] = dy[d] * x[d]


@cuda.jit
def bias_param_elem_bwd_v1(dy, db, n):
    """outer == inner == 1: db[d] += dy[d]."""
    for d in range(cuda.grid(1), n, cuda.gridsize(1)):
        db[d] = db[d] + dy[d]


_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "scale_fwd_v1": (scale_fwd_v1, [void(F1, F1, F1, _I, _I, _I)]),
    "scale_bias_fwd_v1": (scale_bias_fwd_v1, [void(F1, F1, F1, F1, _I, _I, _I)]),
    "scale_bwd_v1": (scale_bwd_v1, [void(F1, F1, F1, _I, _I, _I)]),
    "scale_fwd_v2": (scale_fwd_v2, [void(F1, F1, F1, _I, _I, _I)]),
    "scale_bias_fwd_v2": (scale_bias_fwd_v2, [void(F1, F1, F1, F1, _I, _I, _I)]),
    "scale_param_bwd_v1": (scale_param_bwd_v1, [void(F1, F1, F1, _I, _I, _I, _I)]),
    "scale_bias_param_bwd_v1": (scale_bias_param_bwd_v1, [void(F1, F1, F1, F1, _I, _I, _I, _I)]),
    "bias_param_bwd_v1": (bias_param_bwd_v1, [void(F1, F1, _I, _I, _I)]),
    "scale_param_elem_bwd_v1": (scale_param_elem_bwd_v1, [void(F1, F1, F1, _I, _I)]),
    "bias_param_elem_bwd_v1": (bias_param_elem_bwd_v1, [void(F1, F1, _I)]),
}


def _check(name: str, big: list[tuple[str, Any]], small: list[tuple[str, Any]], outer: int,
           dim: int, inner: int) -> None:
    if min(outer, dim, inner) < 0:
        raise ValueError(f"{name}: negative dimension in (outer, dim, inner) = {(outer, dim, inner)}")
    n = outer * dim * inner
    for label, a in big + small:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: {label} must be float32, got {a.dtype}")
    for label, a in big:
        if a.size != n:
            raise ValueError(f"{name}: {label} has {a.size} elements, expected outer*dim*inner = "
                             f"{outer}*{dim}*{inner}")
    for label, a in small:
        if a.size != dim:
            raise ValueError(f"{name}: {label} has {a.size} elements, expected dim = {dim}")


def scale_fwd(x: Any, s: Any, b: Any | None, y: Any, outer: int, dim: int, inner: int) -> None:
    """y[o, d, i] = x[o, d, i] * s[d] (+ b[d] when b is given); y may be x."""
    xf, sf, yf = flat(x), flat(s), flat(y)
    small = [("s", sf)]
    bf = None
    if b is not None:
        bf = flat(b)
        small.append(("b", bf))
    _check("scale_fwd", [("x", xf), ("y", yf)], small, outer, dim, inner)
    n = xf.size
    if PROMOTED["scale_fwd"] == "v2" and inner >= ROW_MIN_INNER:
        rows = outer * dim
        blocks, threads = grid_rows(rows)
        if bf is None:
            scale_fwd_v2[blocks, threads](xf, sf, yf, rows, dim, inner)
        else:
            scale_bias_fwd_v2[blocks, threads](xf, sf, bf, yf, rows, dim, inner)
        return
    blocks, threads = grid_1d(n)
    if bf is None:
        scale_fwd_v1[blocks, threads](xf, sf, yf, n, dim, inner)
    else:
        scale_bias_fwd_v1[blocks, threads](xf, sf, bf, yf, n, dim, inner)


def scale_bwd(x: Any, s: Any, dy: Any, dx: Any | None, ds: Any | None, outer: int, dim: int,
              inner: int, accumulate_ds: bool = True, db: Any | None = None) -> None:
    """Gradients of ``scale_fwd``: ds[d] (+)= sum_{o,i} dy*x (``accumulate_ds`` False: written, for
    a scale that is the second bottom), db[d] += sum_{o,i} dy (when given), then dx = dy * s[d]
    (written; dx may be dy). ``x`` is the bottom data before the forward. None skips an output."""
    xf, sf, dyf = flat(x), flat(s), flat(dy)
    big = [("x", xf), ("dy", dyf)]
    small = [("s", sf)]
    dxf = dsf = dbf = None
    if dx is not None:
        dxf = flat(dx)
        big.append(("dx", dxf))
    if ds is not None:
        dsf = flat(ds)
        small.append(("ds", dsf))
    if db is not None:
        dbf = flat(db)
        small.append(("db", dbf))
    _check("scale_bwd", big, small, outer, dim, inner)
    acc = int(bool(accumulate_ds))
    v2 = PROMOTED["scale_bwd"] == "v2"
    parts = R.channel_parts(dim, outer * inner) if v2 else 1
    if (dsf is not None or dbf is not None) and parts != 1 and outer * inner > 1:
        how_s = R.OUT_SKIP if dsf is None else (R.OUT_ADD if acc else R.OUT_WRITE)
        how_b = R.OUT_SKIP if dbf is None else R.OUT_ADD
        out_b = dbf if dbf is not None else dsf
        out_s = dsf if dsf is not None else dbf
        R.channel_sums(dyf, xf, dyf, out_b, out_s, outer, dim, inner, R.CH_SUM_DOT, how_b, how_s,
                       parts=parts)
    elif outer == 1 and inner == 1:     # one scale per element: nothing to reduce
        blocks, threads = grid_1d(dim)
        if dsf is not None:
            scale_param_elem_bwd_v1[blocks, threads](dyf, xf, dsf, dim, acc)
        if dbf is not None:
            bias_param_elem_bwd_v1[blocks, threads](dyf, dbf, dim)
    elif dim > 0 and dsf is not None and dbf is not None:
        scale_bias_param_bwd_v1[dim, BLOCK_THREADS](dyf, xf, dsf, dbf, outer, dim, inner, acc)
    elif dim > 0 and dsf is not None:
        scale_param_bwd_v1[dim, BLOCK_THREADS](dyf, xf, dsf, outer, dim, inner, acc)
    elif dim > 0 and dbf is not None:
        bias_param_bwd_v1[dim, BLOCK_THREADS](dyf, dbf, outer, dim, inner)
    if dxf is not None and v2 and inner >= ROW_MIN_INNER:
        rows = outer * dim
        blocks, threads = grid_rows(rows)
        scale_fwd_v2[blocks, threads](dyf, sf, dxf, rows, dim, inner)   # dx = dy * s[d]
    elif dxf is not None:
        n = dyf.size
        blocks, threads = grid_1d(n)
        scale_bwd_v1[blocks, threads](dyf, sf, dxf, n, dim, inner)
