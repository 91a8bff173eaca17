"""N-D convolution forward/backward (any number of spatial axes) composed from ``im2col_nd``,
``gemm``, ``layout`` and ``bias`` -- ``kernels.conv``'s algorithm with the N-D column kernels
(Caffe's BaseConvolutionLayer on its ``im2col_nd`` path).

Shapes: ``x`` (N, C, *in_shape), ``w`` (Cout, C/group, *kernel), ``b`` (Cout,), ``y`` (N, Cout,
*out_shape); K = C*prod(kernel), Kg = K/group, Og = Cout/group, S = prod(out_shape).

Forward, per chunk of Nc images: ``col = im2col_nd(x[n0:n0+Nc])`` (K, Nc*S); per group
``Y_g = W_g @ col_g`` (``gemm``); ``layout.cn_to_nc(Y, y, n0, b)`` (Nc > 1; with Nc == 1 the GEMM
writes ``y[n0]`` viewed as (Cout, S) directly and ``bias_fwd`` adds b).
Backward, per chunk: ``dY = layout.nc_to_cn(dy)``; ``dW_g += dY_g @ col_g^T`` (accumulates);
``dcol_g = W_g^T @ dY_g`` then ``col2im_nd(dcol) -> dx[n0:n0+Nc]`` (written); ``db += sum dy``
(``bias.bias_bwd``) once for the batch.

Chunking: Nc is the largest number of images whose col buffer fits ``max_col_bytes`` (at least
one). Scratch buffers are ``kernels._launch.scratch`` views (launches go to the default stream, in
order). The output size per spatial axis is the output array's (``y`` or ``dy``): Caffe's rule is
``netdef.shapes``'s.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kernels import bias as _bias
from kernels import layout as _layout
from kernels._launch import as_device, scratch
from kernels.blas1 import fill
from kernels.conv import MAX_COL_BYTES, chunk_images
from kernels.gemm import gemm
from kernels.im2col_nd import col2im_nd, im2col_nd

KERNELS: dict = {}   # no kernels of its own: composes im2col_nd, gemm, layout and bias


def _buffer(name: str, rows: int, cols: int):
    """A (rows, cols) float32 device scratch array (``kernels._launch.scratch``)."""
    return scratch(f"conv_nd.{name}", rows * cols).reshape(rows, cols)


def _geometry(x, w, out, pad, stride, dilation, group: int, who: str):
    """(N, C, Cout, kernel, pad, stride, dilation, out_shape, S) after checking the shapes; the
    output size from ``out`` (y or dy)."""
    d = len(x.shape) - 2
    N, C = int(x.shape[0]), int(x.shape[1])
    Cout, Cg = int(w.shape[0]), int(w.shape[1])
    kernel = tuple(int(k) for k in w.shape[2:])
    if len(kernel) != d or group < 1 or C % group or Cout % group or Cg != C // group:
        raise ValueError(f"{who}: weights {tuple(w.shape)} do not fit input {tuple(x.shape)} with "
                         f"group {group}")
    pad, stride, dilation = (tuple(int(v) for v in t) for t in (pad, stride, dilation))
    outs = tuple(int(v) for v in out.shape[2:])
    if tuple(out.shape[:2]) != (N, Cout) or len(outs) != d:
        raise ValueError(f"{who}: output {tuple(out.shape)} does not fit input {tuple(x.shape)} "
                         f"and weights {tuple(w.shape)}")
    S = int(np.prod(outs))
    return N, C, Cout, kernel, pad, stride, dilation, outs, S


def conv_nd_forward(x, w, b, y, pad: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                    group: int = 1, max_col_bytes: int = MAX_COL_BYTES) -> None:
    """``y = conv_nd(x, w) + b`` (Caffe's Convolution forward on the N-D path), written into y.
    pad/stride/dilation have one entry per spatial axis; ``b`` may be None."""
    x, w, y = as_device(x), as_device(w), as_device(y)
    b = None if b is None else as_device(b)
    N, C, Cout, kernel, pad, stride, dil, outs, S = _geometry(x, w, y, pad, stride, dilation, group,
                                                              "conv_nd_forward")
    if not N or not Cout:
        return
    K = C * int(np.prod(kernel))
    Kg, Og = K // group, Cout // group
    w2 = w.reshape(Cout, Kg)
    Nc = chunk_images(N, K, S, max_col_bytes)
    for n0 in range(0, N, Nc):
        nc = min(Nc, N - n0)
        col = _buffer("col", K, nc * S)
        im2col_nd(x, n0, n0 + nc, kernel, pad, stride, dil, outs, col)
        ycn = y[n0].reshape(Cout, S) if nc == 1 else _buffer("ycn", Cout, nc * S)
        for g in range(group):
            gemm(False, False, 1.0, w2[g * Og:(g + 1) * Og], col[g * Kg:(g + 1) * Kg], 0.0,
                 ycn[g * Og:(g + 1) * Og])
        if nc > 1:
            _layout.cn_to_nc(ycn, y, n0, b)
        elif b is not None:
            _bias.bias_fwd(y[n0:n0 + 1].reshape(1, Cout, S), b)


def conv_nd_backward(x, w, dy, dx=None, dw=None, db=None, pad: Sequence[int] = (),
                     stride: Sequence[int] = (), dilation: Sequence[int] = (), group: int = 1,
                     max_col_bytes: int = MAX_COL_BYTES) -> None:
    """Gradients of ``conv_nd_forward`` for ``dy`` (N, Cout, *out_shape): ``dw`` and ``db``
    accumulate (``+=``), ``dx`` is written (``=``); None skips one. ``x`` is read only for dw and
    ``w`` only for dx (otherwise they give shapes: pass dx for x or dw for w)."""
    x, w, dy = as_device(x), as_device(w), as_device(dy)
    dx = None if dx is None else as_device(dx)
    dw = None if dw is None else as_device(dw)
    db = None if db is None else as_device(db)
    N, C, Cout, kernel, pad, stride, dil, outs, S = _geometry(x, w, dy, pad, stride, dilation, group,
                                                              "conv_nd_backward")
    if dx is not None and tuple(dx.shape) != tuple(x.shape):
        raise ValueError(f"conv_nd_backward: dx {tuple(dx.shape)} != x {tuple(x.shape)}")
    if dw is not None and tuple(dw.shape) != tuple(w.shape):
        raise ValueError(f"conv_nd_backward: dw {tuple(dw.shape)} != w {tuple(w.shape)}")
    if not N or not Cout:
        if dx is not None and dx.size:
            fill(dx.reshape(dx.size), 0.0)
        return
    if db is not None:
        _bias.bias_bwd(dy.reshape(N, Cout, S), db)
    if dx is None and dw is None:
        return
    K = C * int(np.prod(kernel))
    Kg, Og = K // group, Cout // group
    w2 = w.reshape(Cout, Kg)
    dw2 = None if dw is None else dw.reshape(Cout, Kg)
    Nc = chunk_images(N, K, S, max_col_bytes)
    for n0 in range(0, N, Nc):
        nc = min(Nc, N - n0)
        if nc == 1:
            dycn = dy[n0].reshape(Cout, S)
        else:
            dycn = _buffer("ycn", Cout, nc * S)
            _layout.nc_to_cn(dy, n0, dycn)
        col = _buffer("col", K, nc * S)
        if dw2 is not None:
            im2col_nd(x, n0, n0 + nc, kernel, pad, stride, dil, outs, col)
            for g in range(group):
                gemm(False, True, 1.0, dycn[g * Og:(g + 1) * Og], col[g * Kg:(g + 1) * Kg], 1.0,
                     dw2[g * Og:(g + 1) * Og])
        if dx is None:
            continue
        for g in range(group):       # the col buffer is free once dW is done
            gemm(True, False, 1.0, w2[g * Og:(g + 1) * Og], dycn[g * Og:(g + 1) * Og], 0.0,
                 col[g * Kg:(g + 1) * Kg])
        col2im_nd(col, n0, n0 + nc, kernel, pad, stride, dil, outs, dx)
