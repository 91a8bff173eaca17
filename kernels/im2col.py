"""im2col / col2im for convolution as GEMM (Caffe's layout, batched over a chunk of images).

Math. Input ``x`` (N, C, H, W); kernel kh x kw, padding ph/pw, stride sh/sw, dilation dh/dw;
output size ``OH = (H + 2*ph - (dh*(kh-1)+1)) // sh + 1`` (same for OW). For the images
``n0 <= n < n1`` (Nc = n1 - n0), ``col`` has shape (C*kh*kw, Nc*OH*OW) with

    col[c*kh*kw + i*kw + j, (n-n0)*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

(0 where the input index falls in the padding). Rows are Caffe's per-image order, images sit side
by side in the columns, so one GEMM ``W (Cout, C*kh*kw) @ col`` computes the convolution of the whole
chunk, in "channel-major" layout (Cout, Nc*OH*OW) (see ``kernels/layout.py``).
``col2im`` is the exact adjoint: ``dx[n, c, h, w] = sum of col entries that im2col copied from
x[n, c, h, w]``, written (``=``, bottom gradients are not accumulated) into ``dx[n0:n1]``; one thread
per input pixel gathers its contributions, so no atomics are needed.

Grouped convolution (``group = G``): channel group g uses rows ``g*(C/G)*kh*kw : (g+1)*(C/G)*kh*kw``
of ``col`` (a contiguous row slice) with the weights ``W[g*Cout/G:(g+1)*Cout/G]`` viewed as
(Cout/G, C/G*kh*kw): one im2col serves every group. A 1x1 convolution with stride 1 and no padding
needs no im2col: for one image, ``x[n]`` viewed as (C, H*W) already is ``col`` (``conv.py`` skips it).

Composition (``kernels/conv.py``): forward ``im2col -> gemm(W, col) -> layout.cn_to_nc (+bias)``;
backward ``layout.nc_to_cn(dy) -> gemm(dy, col^T, beta=1) for dW and gemm(W^T, dy) -> col2im``.

Versions:

- ``im2col_v1``: one thread per ``col`` element (grid-stride over C*kh*kw*Nc*OH*OW); consecutive
  threads write consecutive columns (coalesced), read x with stride sw.
- ``im2col_v2`` (promoted): Caffe's scheme, one thread per (c, n, oh, ow) column entry, looping over
  the kh*kw taps; the input offset and bounds are computed once per tap row. Grid-stride over
  C*Nc*OH*OW, 256 threads per block.
- ``col2im_v1`` (promoted): one thread per input pixel (n, c, h, w) of dx[n0:n1], looping over the
  kh*kw taps and keeping those with an output position on the stride grid. Grid-stride over
  Nc*C*H*W.

All integer arguments are int32; ``x``/``dx`` are C-contiguous (N, C, H, W), ``col`` C-contiguous 2-D.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32

from ._launch import as_device, grid_1d


def out_size(size: int, k: int, pad: int, stride: int, dil: int) -> int:
    """Caffe's convolution output size along one axis."""
    return (size + 2 * pad - (dil * (k - 1) + 1)) // stride + 1


@cuda.jit
def im2col_v1(x, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, col):
    """im2col, one thread per col element (row r = c*kh*kw + i*kw + j, column (n-n0)*OH*OW + oh*OW
    + ow); grid-stride, 256 threads per block."""
    ncols = (n1 - n0) * OH * OW
    total = col.shape[0] * ncols
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = idx // ncols
        q = idx - r * ncols
        n = q // (OH * OW)
        p = q - n * (OH * OW)
        oh = p // OW
        ow = p - oh * OW
        c = r // (kh * kw)
        t = r - c * (kh * kw)
        i = t // kw
        j = t - i * kw
        h = oh * sh - ph + i * dh
        w = ow * sw - pw + j * dw
        if c < C and h >= 0 and h < H and w >= 0 and w < W:
            col[r, q] = x[n0 + n, c, h, w]
        else:
            col[r, q] = float32(0.0)


@cuda.jit
def im2col_v2(x, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, col):
    """im2col, one thread per (c, n, oh, ow) looping over the kh*kw taps (Caffe's im2col_gpu);
    grid-stride over C*Nc*OH*OW, 256 threads per block."""
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    S = OH * OW
    ncols = (n1 - n0) * S
    total = C * ncols
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = idx // ncols
        q = idx - c * ncols          # column of col: (n - n0)*S + oh*OW + ow
        n = q // S
        p = q - n * S
        oh = p // OW
        ow = p - oh * OW
        h0 = oh * sh - ph
        w0 = ow * sw - pw
        r = c * kh * kw
        for i in range(kh):
            h = h0 + i * dh
            hin = h >= 0 and h < H
            for j in range(kw):
                w = w0 + j * dw
                if hin and w >= 0 and w < W:
                    col[r, q] = x[n0 + n, c, h, w]
                else:
                    col[r, q] = float32(0.0)
                r += 1


@cuda.jit
def col2im_v1(col, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, dx):
    """col2im (adjoint of im2col), one thread per input pixel of dx[n0:n1] summing its kh*kw
    possible contributions (no atomics); grid-stride over Nc*C*H*W, 256 threads per block."""
    C = dx.shape[1]
    H = dx.shape[2]
    W = dx.shape[3]
    S = OH * OW
    total = (n1 - n0) * C * H * W
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        w = idx % W
        t = idx // W
        h = t % H
        t = t // H
        c = t % C
        n = t // C
        acc = float32(0.0)
        for i in range(kh):
            hh = h + ph - i * dh          # = oh * sh when tap i of output row oh reads row h
            if hh >= 0 and hh % sh == 0:
                oh = hh // sh
                if oh < OH:
                    for j in range(kw):
                        ww = w + pw - j * dw
                        if ww >= 0 and ww % sw == 0:
                            ow = ww // sw
                            if ow < OW:
                                acc += col[(c * kh + i) * kw + j, n * S + oh * OW + ow]
        dx[n0 + n, c, h, w] = acc


_SIG = ("void(float32[:, :, :, ::1], int32, int32, int32, int32, int32, int32, int32, int32, int32, "
        "int32, int32, int32, float32[:, ::1])")
_SIG_BWD = ("void(float32[:, ::1], int32, int32, int32, int32, int32, int32, int32, int32, int32, "
            "int32, int32, int32, float32[:, :, :, ::1])")

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "im2col_v1": (im2col_v1, [_SIG]),
    "im2col_v2": (im2col_v2, [_SIG]),
    "col2im_v1": (col2im_v1, [_SIG_BWD]),
}


def _geometry(x_shape, n0, n1, kernel, pad, stride, dilation, col_shape, who):
    N, C, H, W = x_shape
    kh, kw = kernel
    ph, pw = pad
    sh, sw = stride
    dh, dw = dilation
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{who}: bad kernel/stride/dilation/pad {kernel} {stride} {dilation} {pad}")
    if not (0 <= n0 < n1 <= N):
        raise ValueError(f"{who}: image range [{n0}, {n1}) outside the batch of {N}")
    OH = out_size(H, kh, ph, sh, dh)
    OW = out_size(W, kw, pw, sw, dw)
    if OH < 1 or OW < 1:
        raise ValueError(f"{who}: kernel {kernel} (dilation {dilation}) larger than padded input {H}x{W}")
    want = (C * kh * kw, (n1 - n0) * OH * OW)
    if tuple(col_shape) != want:
        raise ValueError(f"{who}: col has shape {tuple(col_shape)}, expected {want}")
    return OH, OW


def _ints(*values):
    return [np.int32(v) for v in values]


def im2col(x, n0: int, n1: int, kernel_h: int, kernel_w: int, pad_h: int, pad_w: int,
           stride_h: int, stride_w: int, dil_h: int, dil_w: int, col, version: str = "v2") -> None:
    """Fill ``col`` (C*kh*kw, (n1-n0)*OH*OW) from images ``x[n0:n1]`` of ``x`` (N, C, H, W).

    Row ``c*kh*kw + i*kw + j``, column ``(n-n0)*OH*OW + oh*OW + ow`` holds
    ``x[n, c, oh*stride_h - pad_h + i*dil_h, ow*stride_w - pad_w + j*dil_w]`` (0 in the padding).
    """
    x = as_device(x)
    col = as_device(col)
    OH, OW = _geometry(x.shape, n0, n1, (kernel_h, kernel_w), (pad_h, pad_w), (stride_h, stride_w),
                       (dil_h, dil_w), col.shape, "im2col")
    kernel = KERNELS[f"im2col_{version}"][0]
    total = col.shape[0] * col.shape[1] if version == "v1" else x.shape[1] * col.shape[1]
    blocks, threads = grid_1d(total)
    kernel[blocks, threads](x, *_ints(n0, n1, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                                      dil_h, dil_w, OH, OW), col)


def col2im(col, n0: int, n1: int, kernel_h: int, kernel_w: int, pad_h: int, pad_w: int,
           stride_h: int, stride_w: int, dil_h: int, dil_w: int, dx) -> None:
    """Adjoint of ``im2col``: write (=) into ``dx[n0:n1]`` of ``dx`` (N, C, H, W) the sum, for each
    input pixel, of the ``col`` (C*kh*kw, (n1-n0)*OH*OW) entries im2col would have copied from it."""
    col = as_device(col)
    dx = as_device(dx)
    OH, OW = _geometry(dx.shape, n0, n1, (kernel_h, kernel_w), (pad_h, pad_w), (stride_h, stride_w),
                       (dil_h, dil_w), col.shape, "col2im")
    N, C, H, W = dx.shape
    blocks, threads = grid_1d((n1 - n0) * C * H * W)
    col2im_v1[blocks, threads](col, *_ints(n0, n1, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                                           dil_h, dil_w, OH, OW), dx)
