"""Naive convolution references (float64): im2col/col2im by tap loops, direct convolution forward
and backward with groups, bias, padding, stride and dilation.

Each loop runs over the kernel taps (i, j); numpy slicing with the stride picks, for every output
position (oh, ow), the input pixel ``(oh*sh - ph + i*dh, ow*sw - pw + j*dw)`` of the zero-padded input.
"""
from __future__ import annotations

import numpy as np


def out_size(size: int, k: int, pad: int, stride: int, dil: int) -> int:
    return (size + 2 * pad - (dil * (k - 1) + 1)) // stride + 1


def _tap(xp: np.ndarray, i: int, j: int, OH: int, OW: int, stride, dil) -> tuple[slice, slice]:
    """Slices of the padded input read by tap (i, j) for all output positions."""
    sh, sw = stride
    dh, dw = dil
    return (slice(i * dh, i * dh + sh * (OH - 1) + 1, sh), slice(j * dw, j * dw + sw * (OW - 1) + 1, sw))


def im2col_ref(x, n0, n1, kernel, pad, stride, dil) -> np.ndarray:
    """col (C*kh*kw, (n1-n0)*OH*OW): row c*kh*kw + i*kw + j, column (n-n0)*OH*OW + oh*OW + ow."""
    x = np.asarray(x, dtype=np.float64)[n0:n1]
    Nc, C, H, W = x.shape
    kh, kw = kernel
    ph, pw = pad
    OH = out_size(H, kh, ph, stride[0], dil[0])
    OW = out_size(W, kw, pw, stride[1], dil[1])
    xp = np.zeros((Nc, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    col = np.zeros((C, kh, kw, Nc, OH, OW))
    for i in range(kh):
        for j in range(kw):
            rs, cs = _tap(xp, i, j, OH, OW, stride, dil)
            col[:, i, j] = xp[:, :, rs, cs].transpose(1, 0, 2, 3)
    return col.reshape(C * kh * kw, Nc * OH * OW)


def col2im_ref(col, x_shape, n0, n1, kernel, pad, stride, dil) -> np.ndarray:
    """Adjoint of im2col_ref: dx (n1-n0, C, H, W) summing every col entry into the pixel it came from
    (entries that came from the padding are dropped)."""
    _, C, H, W = x_shape
    Nc = n1 - n0
    kh, kw = kernel
    ph, pw = pad
    OH = out_size(H, kh, ph, stride[0], dil[0])
    OW = out_size(W, kw, pw, stride[1], dil[1])
    c6 = np.asarray(col, dtype=np.float64).reshape(C, kh, kw, Nc, OH, OW)
    dxp = np.zeros((Nc, C, H + 2 * ph, W + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            rs, cs = _tap(dxp, i, j, OH, OW, stride, dil)
            dxp[:, :, rs, cs] += c6[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, ph:ph + H, pw:pw + W]


def conv_forward_ref(x, w, b, pad, stride, dil, group) -> np.ndarray:
    """Direct convolution: y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] *
    xpad[n, g*Cg + c, oh*sh + i*dh, ow*sw + j*dw]; w (Cout, C/group, kh, kw)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C, H, W = x.shape
    Cout, Cg, kh, kw = w.shape
    ph, pw = pad
    OH = out_size(H, kh, ph, stride[0], dil[0])
    OW = out_size(W, kw, pw, stride[1], dil[1])
    Og = Cout // group
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, Cout, OH, OW))
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                rs, cs = _tap(xp, i, j, OH, OW, stride, dil)
                patch = xp[:, g * Cg:(g + 1) * Cg, rs, cs]                  # (N, Cg, OH, OW)
                wg = w[g * Og:(g + 1) * Og, :, i, j]                         # (Og, Cg)
                y[:, g * Og:(g + 1) * Og] += np.einsum("oc,nchw->nohw", wg, patch)
    if b is not None:
        y += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return y


def conv_backward_ref(x, w, dy, pad, stride, dil, group):
    """Gradients of conv_forward_ref: (dx, dw, db) for the output gradient dy (N, Cout, OH, OW)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    N, C, H, W = x.shape
    Cout, Cg, kh, kw = w.shape
    ph, pw = pad
    _, _, OH, OW = dy.shape
    Og = Cout // group
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(group):
        dyg = dy[:, g * Og:(g + 1) * Og]
        for i in range(kh):
            for j in range(kw):
                rs, cs = _tap(xp, i, j, OH, OW, stride, dil)
                patch = xp[:, g * Cg:(g + 1) * Cg, rs, cs]
                dw[g * Og:(g + 1) * Og, :, i, j] = np.einsum("nohw,nchw->oc", dyg, patch)
                dxp[:, g * Cg:(g + 1) * Cg, rs, cs] += np.einsum("oc,nohw->nchw",
                                                                 w[g * Og:(g + 1) * Og, :, i, j], dyg)
    db = dy.sum(axis=(0, 2, 3))
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, db
