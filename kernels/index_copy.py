"""Index-driven copies of Caffe's routing layers, forward and backward: Crop, Tile, Embed,
BatchReindex and Filter (the row gathers and scatters).

Math (float32, C order; bottom diffs written with ``=``, Embed's parameter diffs accumulated):

- crop (x and y of D axes, ``offsets`` per axis): y[i_0..i_D-1] = x[i_0 + o_0, ..., i_D-1 + o_D-1];
  backward dx = dy at the cropped window, 0 elsewhere.
- tile (x viewed as (outer, inner), y as (outer, tiles, inner)): y[o, t, k] = x[o, k];
  backward dx[o, k] = sum over t (in order) of dy[o, t, k].
- embed (index: M floats holding integers, w: (K, N), optional b: (N,)): y[m, :] = w[index[m], :]
  (+ b). An index outside [0, K) or not an integer gives a row of NaN (the kernel never reads out
  of bounds; the cpu backend raises instead). Backward: dw[index[m], :] += dy[m, :] in the order
  m = 0, 1, ... (repeated indices add up, deterministically), db += sum over m of dy[m, :].
- take_rows (x: (B, inner), index: M floats): y[i, :] = x[index[i], :]; an index outside [0, B)
  gives NaN (BatchReindex checks its indices on the host, as Caffe); backward
  dx[n, :] = sum over i with index[i] == n (in order) of dy[i, :] (BatchReindex's accumulation).
- put_rows (where: B floats, a top row or -1): dx[n, :] = dy[where[n], :], 0 where where[n] < 0
  (Filter's backward: items the selector dropped get zero).

Versions (v1 each, memory bound): one thread per output element, grid-stride; crop and its
backward take the shapes and offsets from a small int64 device array
(``kernels._launch.device_constants``: uploaded once per geometry); embed's backward runs one
thread per column n walking the M rows in order (no atomics, the same order as Caffe's CPU loop).

Launch geometry: ``kernels._launch.launch_1d`` over the output elements (embed backward: over N).
"""
from __future__ import annotations

import math
from typing import Any

from numba import cuda, float32, int64, void

from kernels._index import flat_checked
from kernels._launch import as_device, device_constants, launch_1d

_ZERO = float32(0.0)
_NAN = float32(math.nan)


@cuda.jit
def crop_fwd_v1(x, y, geom, ndim):
    """y = x[offsets : offsets + y.shape]; geom = (y shape, x shape, offsets), ndim each."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        rem = i
        xi = 0
        xstride = 1
        for d in range(ndim - 1, -1, -1):
            ys = geom[d]
            c = rem % ys
            rem //= ys
            xi += (c + geom[2 * ndim + d]) * xstride
            xstride *= geom[ndim + d]
        y[i] = x[xi]


@cuda.jit
def crop_bwd_v1(dy, dx, geom, ndim):
    """dx = dy inside the cropped window, 0 outside (one thread per dx element)."""
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        rem = j
        yi = 0
        ystride = 1
        inside = True
        for d in range(ndim - 1, -1, -1):
            xs = geom[ndim + d]
            c = rem % xs - geom[2 * ndim + d]
            rem //= xs
            ys = geom[d]
            if c < 0 or c >= ys:
                inside = False
            yi += c * ystride
            ystride *= ys
        dx[j] = dy[yi] if inside else _ZERO


@cuda.jit
def tile_fwd_v1(x, y, inner, tiles):
    """y[o, t, k] = x[o, k]."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        o = i // (tiles * inner)
        y[i] = x[o * inner + i % inner]


@cuda.jit
def tile_bwd_v1(dy, dx, inner, tiles):
    """dx[o, k] = sum over t of dy[o, t, k] (t ascending)."""
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        o = j // inner
        k = j - o * inner
        base = o * tiles * inner + k
        acc = dy[base]
        for t in range(1, tiles):
            acc += dy[base + t * inner]
        dx[j] = acc


@cuda.jit
def embed_fwd_v1(index, w, b, y, n_out, k_in, has_bias):
    """y[m, n] = w[index[m], n] (+ b[n]); NaN for an index outside [0, K) or not an integer."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        m = i // n_out
        n = i - m * n_out
        v = index[m]
        k = int64(v)
        if k < 0 or k >= k_in or float32(k) != v:
            y[i] = _NAN
        else:
            r = w[k * n_out + n]
            if has_bias != 0:
                r += b[n]
            y[i] = r


@cuda.jit
def embed_bwd_v1(index, dy, dw, db, m_rows, n_out, k_in, want_w, want_b):
    """Thread n: dw[index[m], n] += dy[m, n] for m = 0..M-1 in order; db[n] += sum_m dy[m, n]."""
    for n in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        acc = _ZERO
        for m in range(m_rows):
            g = dy[m * n_out + n]
            acc += g
            if want_w != 0:
                v = index[m]
                k = int64(v)
                if k >= 0 and k < k_in and float32(k) == v:
                    dw[k * n_out + n] += g
        if want_b != 0:
            db[n] += acc


@cuda.jit
def take_rows_fwd_v1(x, index, y, inner, rows_in):
    """y[i, k] = x[index[i], k] (NaN for an index outside [0, rows_in))."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = i // inner
        src = int64(index[r])
        if src < 0 or src >= rows_in:
            y[i] = _NAN
        else:
            y[i] = x[src * inner + (i - r * inner)]


@cuda.jit
def take_rows_bwd_v1(dy, index, dx, inner, rows_out):
    """dx[n, k] = sum over i (ascending) with index[i] == n of dy[i, k]."""
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n = j // inner
        k = j - n * inner
        acc = _ZERO
        for i in range(rows_out):
            if int64(index[i]) == n:
                acc += dy[i * inner + k]
        dx[j] = acc


@cuda.jit
def put_rows_v1(dy, where, dx, inner):
    """dx[n, k] = dy[where[n], k], or 0 where where[n] < 0."""
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n = j // inner
        src = int64(where[n])
        dx[j] = dy[src * inner + (j - n * inner)] if src >= 0 else _ZERO


_F = float32[::1]
_G = int64[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "crop_fwd_v1": (crop_fwd_v1, [void(_F, _F, _G, _I)]),
    "crop_bwd_v1": (crop_bwd_v1, [void(_F, _F, _G, _I)]),
    "tile_fwd_v1": (tile_fwd_v1, [void(_F, _F, _I, _I)]),
    "tile_bwd_v1": (tile_bwd_v1, [void(_F, _F, _I, _I)]),
    "embed_fwd_v1": (embed_fwd_v1, [void(_F, _F, _F, _F, _I, _I, _I)]),
    "embed_bwd_v1": (embed_bwd_v1, [void(_F, _F, _F, _F, _I, _I, _I, _I, _I)]),
    "take_rows_fwd_v1": (take_rows_fwd_v1, [void(_F, _F, _F, _I, _I)]),
    "take_rows_bwd_v1": (take_rows_bwd_v1, [void(_F, _F, _F, _I, _I)]),
    "put_rows_v1": (put_rows_v1, [void(_F, _F, _F, _I)]),
}


# ------------------------------------------------------------------------------------- public API
def _crop_check(x_shape: tuple, y_shape: tuple, offsets: tuple) -> None:
    if not len(x_shape) == len(y_shape) == len(offsets):
        raise ValueError(f"crop: x {x_shape}, y {y_shape} and offsets {offsets} differ in rank")
    for xs, ys, o in zip(x_shape, y_shape, offsets):
        if o < 0 or o + ys > xs:
            raise ValueError(f"crop: window {y_shape} at {offsets} does not fit {x_shape}")


def crop_fwd(x: Any, y: Any, offsets: tuple) -> None:
    """y = x[offsets : offsets + y.shape] (x, y: N-D device arrays of the same rank)."""
    xd, yd = as_device(x), as_device(y)
    xs, ys, off = tuple(xd.shape), tuple(yd.shape), tuple(int(o) for o in offsets)
    _crop_check(xs, ys, off)
    launch_1d(crop_fwd_v1, yd.size, flat_checked("crop_fwd", xd), flat_checked("crop_fwd", yd),
              device_constants(ys + xs + off), len(ys))


def crop_bwd(dy: Any, dx: Any, offsets: tuple) -> None:
    """dx = dy inside the window at ``offsets``, 0 elsewhere (dx written)."""
    dyd, dxd = as_device(dy), as_device(dx)
    ys, xs, off = tuple(dyd.shape), tuple(dxd.shape), tuple(int(o) for o in offsets)
    _crop_check(xs, ys, off)
    launch_1d(crop_bwd_v1, dxd.size, flat_checked("crop_bwd", dyd), flat_checked("crop_bwd", dxd),
              device_constants(ys + xs + off), len(ys))


def tile_fwd(x: Any, y: Any, outer: int, inner: int, tiles: int) -> None:
    """y (outer, tiles, inner) = x (outer, inner) repeated ``tiles`` times along the middle axis."""
    xf = flat_checked("tile_fwd", x, outer * inner)
    yf = flat_checked("tile_fwd", y, outer * tiles * inner)
    launch_1d(tile_fwd_v1, yf.size, xf, yf, inner, tiles)


def tile_bwd(dy: Any, dx: Any, outer: int, inner: int, tiles: int) -> None:
    """dx (outer, inner) = sum over the tiles of dy (outer, tiles, inner) (dx written)."""
    dyf = flat_checked("tile_bwd", dy, outer * tiles * inner)
    dxf = flat_checked("tile_bwd", dx, outer * inner)
    launch_1d(tile_bwd_v1, dxf.size, dyf, dxf, inner, tiles)


def embed_fwd(index: Any, w: Any, b: Any | None, y: Any, m_rows: int, n_out: int, k_in: int) -> None:
    """y (M, N) = w (K, N) rows picked by ``index`` (M,), plus b (N,) when given."""
    idx = flat_checked("embed_fwd", index, m_rows)
    wf = flat_checked("embed_fwd", w, k_in * n_out)
    yf = flat_checked("embed_fwd", y, m_rows * n_out)
    bf = wf if b is None else flat_checked("embed_fwd", b, n_out)
    launch_1d(embed_fwd_v1, yf.size, idx, wf, bf, yf, n_out, k_in, int(b is not None))


def embed_bwd(index: Any, dy: Any, dw: Any | None, db: Any | None, m_rows: int, n_out: int,
              k_in: int) -> None:
    """dw (K, N) += dy rows scattered by ``index``; db (N,) += column sums of dy (None skips)."""
    if dw is None and db is None:
        return
    idx = flat_checked("embed_bwd", index, m_rows)
    dyf = flat_checked("embed_bwd", dy, m_rows * n_out)
    dwf = dyf if dw is None else flat_checked("embed_bwd", dw, k_in * n_out)
    dbf = dyf if db is None else flat_checked("embed_bwd", db, n_out)
    launch_1d(embed_bwd_v1, n_out, idx, dyf, dwf, dbf, m_rows, n_out, k_in, int(dw is not None),
              int(db is not None))


def take_rows_fwd(x: Any, index: Any, y: Any, inner: int) -> None:
    """y[i, :] = x[index[i], :] with x (B, inner), index (M,), y (M, inner)."""
    xf = flat_checked("take_rows_fwd", x)
    idx = flat_checked("take_rows_fwd", index)
    yf = flat_checked("take_rows_fwd", y, idx.size * inner)
    rows_in = xf.size // inner if inner else 0
    launch_1d(take_rows_fwd_v1, yf.size, xf, idx, yf, inner, rows_in)


def take_rows_bwd(dy: Any, index: Any, dx: Any, inner: int) -> None:
    """dx[n, :] = sum of dy[i, :] over i with index[i] == n (dx (B, inner) written)."""
    idx = flat_checked("take_rows_bwd", index)
    dyf = flat_checked("take_rows_bwd", dy, idx.size * inner)
    dxf = flat_checked("take_rows_bwd", dx)
    launch_1d(take_rows_bwd_v1, dxf.size, dyf, idx, dxf, inner, idx.size)


def put_rows(dy: Any, where: Any, dx: Any, inner: int) -> None:
    """dx[n, :] = dy[where[n], :] where where[n] >= 0, else 0 (dx (B, inner) written)."""
    wf = flat_checked("put_rows", where)
    dxf = flat_checked("put_rows", dx, wf.size * inner)
    dyf = flat_checked("put_rows", dy)
    launch_1d(put_rows_v1, dxf.size, dyf, wf, dxf, inner)
