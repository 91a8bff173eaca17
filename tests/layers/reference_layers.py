"""Naive float64 references for layer tests (loops over output elements; never import runner)."""
from __future__ import annotations

import math

import numpy as np


def conv_ref(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    """Caffe convolution (cross-correlation) by direct summation."""
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    oh = (h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    y = np.zeros((n, co, oh, ow))
    og = co // group
    for ni in range(n):
        for o in range(co):
            g = o // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                hh = i * stride[0] - pad[0] + p * dil[0]
                                ww = j * stride[1] - pad[1] + q * dil[1]
                                if 0 <= hh < h and 0 <= ww < wd:
                                    acc += x[ni, g * cg + ci, hh, ww] * w[o, ci, p, q]
                    y[ni, o, i, j] = acc + (b[o] if b is not None else 0.0)
    return y


def deconv_ref(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    """Caffe deconvolution by scattering each input pixel through the kernel."""
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    co = og * group
    cg = c // group
    oh = stride[0] * (h - 1) + dil[0] * (kh - 1) + 1 - 2 * pad[0]
    ow = stride[1] * (wd - 1) + dil[1] * (kw - 1) + 1 - 2 * pad[1]
    y = np.zeros((n, co, oh, ow))
    for ni in range(n):
        for ci in range(c):
            g = ci // cg
            for i in range(h):
                for j in range(wd):
                    for o in range(og):
                        for p in range(kh):
                            for q in range(kw):
                                hh = i * stride[0] - pad[0] + p * dil[0]
                                ww = j * stride[1] - pad[1] + q * dil[1]
                                if 0 <= hh < oh and 0 <= ww < ow:
                                    y[ni, g * og + o, hh, ww] += x[ni, ci, i, j] * w[ci, o, p, q]
    if b is not None:
        y += np.asarray(b).reshape(1, -1, 1, 1)
    return y


def pool_out(size, k, s, p, ceil=True):
    o = (int(math.ceil((size + 2 * p - k) / s)) if ceil else (size + 2 * p - k) // s) + 1
    if p and (o - 1) * s >= size + p:
        o -= 1
    return o


def pool_ref(x, k, s, p, mode, ceil=True):
    """Caffe MAX/AVE pooling (AVE divides by the window clipped to the padded image)."""
    n, c, h, w = x.shape
    oh, ow = pool_out(h, k[0], s[0], p[0], ceil), pool_out(w, k[1], s[1], p[1], ceil)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            size = (he - hs) * (we - ws)
            h0, w0, h1, w1 = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, h0:h1, w0:w1]
            if mode == "MAX":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                y[:, :, i, j] = win.sum(axis=(2, 3)) / size
    return y


def lrn_across_ref(x, n, alpha, beta, k):
    y = np.zeros_like(x, dtype=np.float64)
    c = x.shape[1]
    pre = (n - 1) // 2
    for ci in range(c):
        lo, hi = max(0, ci - pre), min(c, ci - pre + n)
        s = k + alpha / n * (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ci] = x[:, ci] * s ** -beta
    return y


def lrn_within_ref(x, n, alpha, beta):
    y = np.zeros_like(x, dtype=np.float64)
    _, _, h, w = x.shape
    pad = (n - 1) // 2
    for i in range(h):
        for j in range(w):
            win = x[:, :, max(0, i - pad):min(h, i - pad + n), max(0, j - pad):min(w, j - pad + n)]
            s = 1 + alpha / (n * n) * (win ** 2).sum(axis=(2, 3))
            y[:, :, i, j] = x[:, :, i, j] * s ** -beta
    return y


def softmax_ref(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
