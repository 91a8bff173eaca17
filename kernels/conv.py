"""Convolution forward/backward composed from im2col, gemm, layout and bias (Caffe's algorithm,
batched over chunks of images so one GEMM covers several images).

Shapes: ``x`` (N, C, H, W), weights ``w`` (Cout, C/group, kh, kw), bias ``b`` (Cout,),
output ``y`` (N, Cout, OH, OW): the output size is the caller's (Caffe's rule lives in
``netdef.shapes``), read from the shape of ``y`` / ``dy``. Let K = C*kh*kw, Kg = K/group,
Og = Cout/group, S = OH*OW.

Forward, per chunk of Nc images [n0, n0+Nc):

1. ``col = im2col(x[n0:n0+Nc])`` (K, Nc*S);
2. for each group g: ``Y[g*Og:(g+1)*Og] = W_g @ col[g*Kg:(g+1)*Kg]`` with ``W_g`` the rows of ``w``
   viewed as (Cout, Kg) -- ``gemm(False, False, 1, W_g, col_g, 0, Y_g)``;
3. ``layout.cn_to_nc(Y, y, n0, bias)`` moves the channel-major (Cout, Nc*S) result into NCHW and adds
   the bias in the same pass.

Backward, per chunk: ``dY = layout.nc_to_cn(dy)`` (Cout, Nc*S); ``col`` recomputed;
``dW_g += dY_g @ col_g^T`` (``gemm(False, True, 1, dY_g, col_g, 1, dW_g)``, parameter gradients
accumulate); ``dcol_g = W_g^T @ dY_g`` (``gemm(True, False, 1, W_g, dY_g, 0, dcol_g)``, written into
the col buffer once dW is done), then ``col2im(dcol) -> dx[n0:n0+Nc]`` (written, ``=``).
``db += sum over n, s of dy`` (``bias.bias_bwd``) once for the batch.

Chunking: Nc is the largest number of images whose col buffer fits ``max_col_bytes`` (default
256 MiB; at least one image). With Nc == 1 the GEMM reads/writes the NCHW arrays directly (``y[n]``
viewed as (Cout, S) already is the channel-major block), so the layout moves are skipped; a 1x1
convolution with stride 1 and no padding skips im2col (``x[n]`` viewed as (C, S) is col, or
``nc_to_cn`` of the chunk when Nc > 1).

Scratch buffers (col, channel-major Y) are ``kernels._launch.scratch`` buffers, reused across calls
(all launches go to the default stream, in order).

Kept columns (``keep``, a ``KeptColumns``): a caller that runs forward then backward on the same
input can give both calls the same ``KeptColumns``. Forward then writes the whole batch's columns
(one chunk, whatever ``max_col_bytes`` says) into its buffer and marks it valid; backward reads
them for dW instead of running im2col again, then writes the column gradient into the same
memory (no longer the forward's columns: valid is cleared). A pointwise convolution of one image
keeps nothing (its columns are the input itself).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import cuda

from kernels import bias as _bias
from kernels import layout as _layout
from kernels._launch import as_device, scratch
from kernels.gemm import gemm
from kernels.im2col import col2im, im2col

MAX_COL_BYTES = 256 << 20   # cap on the im2col buffer of one chunk

KERNELS: dict = {}   # no kernels of its own: composes gemm, im2col, layout and bias


def _buffer(name: str, rows: int, cols: int):
    """A (rows, cols) float32 device scratch array (``kernels._launch.scratch``)."""
    return scratch(f"conv.{name}", rows * cols).reshape(rows, cols)


class KeptColumns:
    """The im2col columns (K, N*OH*OW) of one convolution input, kept from ``conv_forward`` for
    ``conv_backward`` (see the module docstring). ``valid``: the buffer holds the columns of the
    input as the last forward saw it; the owner clears it (``valid = False``) when the input may
    have changed since. The buffer only grows."""

    __slots__ = ("buf", "valid", "holds")

    def __init__(self) -> None:
        self.buf = None
        self.valid = False
        self.holds: tuple[int, int] | None = None    # (rows, cols) the last fill wrote

    def has(self, rows: int, cols: int) -> bool:
        """True when the buffer holds valid columns of exactly this shape."""
        return self.valid and self.holds == (rows, cols)

    def columns(self, rows: int, cols: int):
        """A (rows, cols) float32 view of the kept buffer (grown, and invalidated, when too small)."""
        n = rows * cols
        if self.buf is None or self.buf.shape[0] < n:
            self.buf = cuda.device_array(max(n, 1), np.float32)
            self.valid = False
        return self.buf[:n].reshape(rows, cols)

    @property
    def nbytes(self) -> int:
        return 0 if self.buf is None else 4 * int(self.buf.shape[0])


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def chunk_images(N: int, K: int, S: int, max_col_bytes: int = MAX_COL_BYTES) -> int:
    """Images per chunk: the fewest chunks whose (K, Nc*S) float32 col buffer fits max_col_bytes,
    then balanced (256 images at most 153 per chunk -> 2 chunks of 128, not 153 + 103), so the
    last chunk's GEMMs are not a small tail."""
    most = max(1, min(N, max_col_bytes // max(1, 4 * K * S)))
    chunks = -(-N // most)
    return -(-N // chunks)


class _Geometry(NamedTuple):
    kernel: tuple[int, int]
    pad: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    out: tuple[int, int]        # (OH, OW), the output array's
    pointwise: bool             # 1x1 kernel, stride 1, no padding, output the input's size: col is x


def _geometry(x, w, out, pad, stride, dilation, group, who) -> tuple[int, int, int, _Geometry]:
    """(N, C, Cout, geometry) after checking the shapes; OH, OW from the output (``y`` or ``dy``)."""
    N, C, H, W = x.shape
    Cout, Cg, kh, kw = w.shape
    if group < 1 or C % group or Cout % group or Cg != C // group:
        raise ValueError(f"{who}: weights {w.shape} do not fit input {x.shape} with group {group}")
    if len(out.shape) != 4 or tuple(out.shape[:2]) != (N, Cout) or min(out.shape[2:]) < 1:
        raise ValueError(f"{who}: output {tuple(out.shape)} is not (N={N}, Cout={Cout}, OH, OW)")
    pad, stride, dilation = _pair(pad), _pair(stride), _pair(dilation)
    OH, OW = int(out.shape[2]), int(out.shape[3])
    pointwise = (kh, kw) == (1, 1) and pad == (0, 0) and stride == (1, 1) and (OH, OW) == (H, W)
    return N, C, Cout, _Geometry((kh, kw), pad, stride, dilation, (OH, OW), pointwise)


def _col_buffer(keep: KeptColumns | None, rows: int, cols: int):
    """The (rows, cols) column buffer: the kept one when given, else the module's scratch "col"."""
    return _buffer("col", rows, cols) if keep is None else keep.columns(rows, cols)


def _keeps(keep: KeptColumns | None, N: int, g: _Geometry) -> KeptColumns | None:
    """``keep`` where it applies: not for a pointwise convolution of one image (col is x)."""
    if keep is None or (N == 1 and g.pointwise):
        return None
    return keep


def _fill_col(x, n0, Nc, C, g: _Geometry, keep: KeptColumns | None = None):
    """col (C*kh*kw, Nc*OH*OW) for images n0..n0+Nc-1: a view of x for a pointwise conv of one
    image, else the column buffer (kept or scratch) filled by nc_to_cn (pointwise) or im2col."""
    S = g.out[0] * g.out[1]
    if g.pointwise:
        if Nc == 1:
            return x[n0].reshape(C, S)
        col = _col_buffer(keep, C, Nc * S)
        _layout.nc_to_cn(x, n0, col)
    else:
        col = _col_buffer(keep, C * g.kernel[0] * g.kernel[1], Nc * S)
        im2col(x, n0, n0 + Nc, *g.kernel, *g.pad, *g.stride, *g.dilation, *g.out, col)
    if keep is not None:
        keep.valid, keep.holds = True, tuple(col.shape)
    return col


def conv_forward(x, w, b, y, pad=(0, 0), stride=(1, 1), dilation=(1, 1), group: int = 1,
                 max_col_bytes: int = MAX_COL_BYTES, keep: KeptColumns | None = None,
                 gemm=gemm) -> None:
    """``y = conv(x, w) + b`` (Caffe's Convolution forward), written into ``y``.

    ``x`` (N, C, H, W), ``w`` (Cout, C/group, kh, kw), ``b`` (Cout,) or None, ``y`` (N, Cout, OH, OW),
    all float32 C-contiguous device arrays; pad/stride/dilation are ints or (h, w) pairs. With
    ``keep`` the whole batch's columns stay in it for ``conv_backward`` (one chunk). ``gemm``: the
    GEMM to run (``kernels.gemm.gemm``'s signature; e.g. a tensor-core ``kernels.gemm_tc.gemm``).
    """
    x, w, y = as_device(x), as_device(w), as_device(y)
    b = None if b is None else as_device(b)
    N, C, Cout, geo = _geometry(x, w, y, pad, stride, dilation, group, "conv_forward")
    S = geo.out[0] * geo.out[1]
    K = C * geo.kernel[0] * geo.kernel[1]
    Kg, Og = K // group, Cout // group
    w2 = w.reshape(Cout, Kg)
    keep = _keeps(keep, N, geo)
    Nc = N if keep is not None else chunk_images(N, K, S, max_col_bytes)
    for n0 in range(0, N, Nc):
        nc = min(Nc, N - n0)
        col = _fill_col(x, n0, nc, C, geo, keep)
        ycn = y[n0].reshape(Cout, S) if nc == 1 else _buffer("ycn", Cout, nc * S)
        for g in range(group):
            gemm(False, False, 1.0, w2[g * Og:(g + 1) * Og], col[g * Kg:(g + 1) * Kg], 0.0,
                 ycn[g * Og:(g + 1) * Og])
        if nc > 1:
            _layout.cn_to_nc(ycn, y, n0, b)
        elif b is not None:
            _bias.bias_fwd(y[n0:n0 + 1], b)


def conv_backward(x, w, dy, dx=None, dw=None, db=None, pad=(0, 0), stride=(1, 1), dilation=(1, 1),
                  group: int = 1, max_col_bytes: int = MAX_COL_BYTES,
                  keep: KeptColumns | None = None, gemm=gemm) -> None:
    """Gradients of ``conv_forward`` for the output gradient ``dy`` (N, Cout, OH, OW).

    ``dw`` (Cout, C/group, kh, kw) and ``db`` (Cout,) accumulate (``+=``); ``dx`` (N, C, H, W) is
    written (``=``). Any of them may be None (not computed). ``x`` is read only when ``dw`` is
    computed and ``w`` only when ``dx`` is; otherwise they only give shapes (a caller may pass dx
    for x or dw for w). With ``keep`` (the forward's): dW reads its columns when ``keep.valid``
    (else im2col fills it first) and the column gradient for dx is written into it afterwards.
    ``gemm`` as in ``conv_forward``.
    """
    x, w, dy = as_device(x), as_device(w), as_device(dy)
    dx = None if dx is None else as_device(dx)
    dw = None if dw is None else as_device(dw)
    db = None if db is None else as_device(db)
    N, C, Cout, geo = _geometry(x, w, dy, pad, stride, dilation, group, "conv_backward")
    if dx is not None and tuple(dx.shape) != tuple(x.shape):
        raise ValueError(f"conv_backward: dx {tuple(dx.shape)} != x {tuple(x.shape)}")
    if dw is not None and tuple(dw.shape) != tuple(w.shape):
        raise ValueError(f"conv_backward: dw {tuple(dw.shape)} != w {tuple(w.shape)}")
    if db is not None:
        _bias.bias_bwd(dy, db)
    if dx is None and dw is None:
        return
    S = geo.out[0] * geo.out[1]
    K = C * geo.kernel[0] * geo.kernel[1]
    Kg, Og = K // group, Cout // group
    w2 = w.reshape(Cout, Kg)
    dw2 = None if dw is None else dw.reshape(Cout, Kg)
    keep = _keeps(keep, N, geo)
    Nc = N if keep is not None else chunk_images(N, K, S, max_col_bytes)
    for n0 in range(0, N, Nc):
        nc = min(Nc, N - n0)
        if nc == 1:
            dycn = dy[n0].reshape(Cout, S)
        else:
            dycn = _buffer("ycn", Cout, nc * S)
            _layout.nc_to_cn(dy, n0, dycn)
        if dw2 is not None:
            if keep is not None and keep.has(K, nc * S):
                col = keep.columns(K, nc * S)     # the forward's columns: no im2col
            else:
                col = _fill_col(x, n0, nc, C, geo, keep)
            for g in range(group):
                gemm(False, True, 1.0, dycn[g * Og:(g + 1) * Og], col[g * Kg:(g + 1) * Kg], 1.0,
                     dw2[g * Og:(g + 1) * Og])
        if dx is None:
            continue
        if geo.pointwise and nc == 1:
            dcol = dx[n0].reshape(C, S)          # dcol is dx[n0] itself: no col2im
        else:
            dcol = _col_buffer(keep, K, nc * S)  # the col buffer is free once dW is done
            if keep is not None:
                keep.valid = False               # it now holds the column gradient
        for g in range(group):
            gemm(True, False, 1.0, w2[g * Og:(g + 1) * Og], dycn[g * Og:(g + 1) * Og], 0.0,
                 dcol[g * Kg:(g + 1) * Kg])
        if geo.pointwise:
            if nc > 1:
                _layout.cn_to_nc(dcol, dx, n0)
        else:
            col2im(dcol, n0, n0 + nc, *geo.kernel, *geo.pad, *geo.stride, *geo.dilation, *geo.out, dx)
