"""N-D convolution on the cpu backend (Caffe's im2col_nd / col2im_nd path, any number of spatial
axes): the input is moved channel-major (C, N, *I) and zero padded, then one strided slice copy per
kernel tap fills col (C, *K, N, *O) -> (C*K, N*O); col2im is the matching strided adds; one matmul
per group over the whole batch. ``tap_slices`` also serves the Im2col layer's cpu op.
``runner.backend.cpu.CpuBackend`` calls these; the math is in ``runner.backend.base``.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from netdef.geometry import ConvNdGeometry


def tap_slices(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
               out_shape: Sequence[int]) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """(tap, slices) for every kernel tap in C order: the slices of the padded spatial axes that
    the tap takes for every output position (one per spatial axis)."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        yield tap, tuple(slice(j * d, j * d + s * (o - 1) + 1, s)
                         for j, d, s, o in zip(tap, dilation, stride, out_shape))


def _taps(g: ConvNdGeometry):
    return tap_slices(g.kernel, g.stride, g.dilation, g.out_shape)


def im2col_nd(x: np.ndarray, g: ConvNdGeometry) -> np.ndarray:
    """(C_in * prod(kernel), N * prod(out_shape)) columns of x (N, C_in, *in_shape) (Caffe's
    im2col_nd layout, images side by side)."""
    xt = x.reshape(g.x_shape).swapaxes(0, 1)
    xp = np.zeros((g.c_in, g.n) + tuple(i + 2 * p for i, p in zip(g.in_shape, g.pad)), dtype=x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(p, p + i) for i, p in zip(g.in_shape, g.pad))] = xt
    col = np.empty((g.c_in, *g.kernel, g.n, *g.out_shape), dtype=x.dtype)
    for tap, sl in _taps(g):
        col[(slice(None),) + tap] = xp[(slice(None), slice(None)) + sl]
    return col.reshape(g.c_in * g.kernel_count, g.n * g.out_count)


def col2im_nd(col: np.ndarray, dx: np.ndarray, g: ConvNdGeometry) -> None:
    """dx (N, C_in, *in_shape) = the column entries added back onto the positions im2col_nd copied
    them from (written)."""
    c6 = col.reshape(g.c_in, *g.kernel, g.n, *g.out_shape)
    dxp = np.zeros((g.c_in, g.n) + tuple(i + 2 * p for i, p in zip(g.in_shape, g.pad)), dtype=dx.dtype)
    for tap, sl in _taps(g):
        dxp[(slice(None), slice(None)) + sl] += c6[(slice(None),) + tap]
    crop = (slice(None), slice(None)) + tuple(slice(p, p + i) for i, p in zip(g.in_shape, g.pad))
    dx.reshape(g.x_shape)[...] = dxp[crop].swapaxes(0, 1)


def conv_nd_forward(x, w, b, y, g: ConvNdGeometry) -> None:
    """y = conv_nd(x, w) (+ b): im2col_nd + one matmul per group over the whole batch."""
    col = im2col_nd(x, g)
    og, kg = g.c_out // g.group, g.c_in // g.group * g.kernel_count
    w2 = w.reshape(g.c_out, kg)
    out = np.empty((g.c_out, g.n * g.out_count), dtype=y.dtype)
    for k in range(g.group):
        np.matmul(w2[k * og:(k + 1) * og], col[k * kg:(k + 1) * kg], out=out[k * og:(k + 1) * og])
    yv = y.reshape(g.n, g.c_out, g.out_count)
    yv[...] = out.reshape(g.c_out, g.n, g.out_count).swapaxes(0, 1)
    if b is not None:
        yv += b.reshape(1, g.c_out, 1)


def conv_nd_backward(x, w, dy, dx, dw, db, g: ConvNdGeometry) -> None:
    """db +=, dw +=, dx = of ``conv_nd_forward`` (None skips)."""
    dy3 = dy.reshape(g.n, g.c_out, g.out_count)
    if db is not None:
        db.reshape(-1)[...] += dy3.sum(axis=(0, 2), dtype=np.float64).astype(db.dtype)
    if dw is None and dx is None:
        return
    dyc = np.ascontiguousarray(dy3.swapaxes(0, 1)).reshape(g.c_out, -1)
    og, kg = g.c_out // g.group, g.c_in // g.group * g.kernel_count
    if dw is not None:
        col = im2col_nd(x, g)
        dw2 = dw.reshape(g.c_out, kg)
        for k in range(g.group):
            dw2[k * og:(k + 1) * og] += dyc[k * og:(k + 1) * og] @ col[k * kg:(k + 1) * kg].T
    if dx is not None:
        w2 = w.reshape(g.c_out, kg)
        col = np.empty((g.group * kg, dyc.shape[1]), dtype=dx.dtype)
        for k in range(g.group):
            np.matmul(w2[k * og:(k + 1) * og].T, dyc[k * og:(k + 1) * og], out=col[k * kg:(k + 1) * kg])
        col2im_nd(col, dx, g)
