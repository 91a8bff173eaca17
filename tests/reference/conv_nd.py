"""Naive references of N-D convolution (Caffe's im2col_nd layout and the cross-correlation it
computes), by direct loops over every output and tap with itertools.product; any number of
spatial axes. Never imports the code under test."""
from __future__ import annotations

import itertools

import numpy as np


def out_shape(in_shape, kernel, pad, stride, dil):
    return tuple((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                 for i, k, p, s, d in zip(in_shape, kernel, pad, stride, dil))


def im2col_nd_ref(x, n0, n1, kernel, pad, stride, dil):
    """col (C*K, (n1-n0)*O): row c*K + flat tap, column (n-n0)*O + flat output position."""
    N, C, *ins = x.shape
    outs = out_shape(ins, kernel, pad, stride, dil)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    poss = list(itertools.product(*(range(o) for o in outs)))
    col = np.zeros((C * len(taps), (n1 - n0) * len(poss)), x.dtype)
    for n in range(n0, n1):
        for c in range(C):
            for ti, tap in enumerate(taps):
                for pi, pos in enumerate(poss):
                    src = tuple(o * s - p + j * d for o, s, p, j, d in zip(pos, stride, pad, tap, dil))
                    if all(0 <= v < i for v, i in zip(src, ins)):
                        col[c * len(taps) + ti, (n - n0) * len(poss) + pi] = x[(n, c) + src]
    return col


def col2im_nd_ref(col, x_shape, n0, n1, kernel, pad, stride, dil):
    """The adjoint of im2col_nd_ref: dx (x_shape) with rows n0..n1-1 filled, others 0."""
    N, C, *ins = x_shape
    outs = out_shape(ins, kernel, pad, stride, dil)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    poss = list(itertools.product(*(range(o) for o in outs)))
    dx = np.zeros(x_shape)
    for n in range(n0, n1):
        for c in range(C):
            for ti, tap in enumerate(taps):
                for pi, pos in enumerate(poss):
                    src = tuple(o * s - p + j * d for o, s, p, j, d in zip(pos, stride, pad, tap, dil))
                    if all(0 <= v < i for v, i in zip(src, ins)):
                        dx[(n, c) + src] += col[c * len(taps) + ti, (n - n0) * len(poss) + pi]
    return dx


def conv_nd_ref(x, w, b, pad, stride, dil, group=1):
    """y[n, o, pos] = sum over the group's channels and taps of x * w (+ b[o]), float64."""
    N, C, *ins = x.shape
    Co, Cg, *kernel = w.shape
    outs = out_shape(ins, kernel, pad, stride, dil)
    og = Co // group
    y = np.zeros((N, Co, *outs))
    for n in range(N):
        for o in range(Co):
            g = o // og
            for pos in itertools.product(*(range(v) for v in outs)):
                acc = 0.0
                for ci in range(Cg):
                    for tap in itertools.product(*(range(k) for k in kernel)):
                        src = tuple(q * s - p + j * d for q, s, p, j, d in zip(pos, stride, pad, tap, dil))
                        if all(0 <= v < i for v, i in zip(src, ins)):
                            acc += float(x[(n, g * Cg + ci) + src]) * float(w[(o, ci) + tap])
                y[(n, o) + pos] = acc + (float(b[o]) if b is not None else 0.0)
    return y


def deconv_nd_ref(x, w, b, pad, stride, dil, group=1):
    """Caffe's Deconvolution: every input element scattered through the kernel; top size
    s*(i-1) + d*(k-1) + 1 - 2p per axis; w (C_in, C_out/group, *kernel)."""
    N, C, *ins = x.shape
    _, og, *kernel = w.shape
    Co = og * group
    cg = C // group
    outs = tuple(s * (i - 1) + d * (k - 1) + 1 - 2 * p
                 for i, k, p, s, d in zip(ins, kernel, pad, stride, dil))
    y = np.zeros((N, Co, *outs))
    for n in range(N):
        for c in range(C):
            g = c // cg
            for pos in itertools.product(*(range(v) for v in ins)):
                for tap in itertools.product(*(range(k) for k in kernel)):
                    dst = tuple(q * s - p + j * d for q, s, p, j, d in zip(pos, stride, pad, tap, dil))
                    if all(0 <= v < o for v, o in zip(dst, outs)):
                        for oo in range(og):
                            y[(n, g * og + oo) + dst] += float(x[(n, c) + pos]) * float(w[(c, oo) + tap])
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, Co) + (1,) * len(outs))
    return y


def conv_nd_backward_ref(x, w, dy, pad, stride, dil, group=1):
    """(dx, dw, db) of conv_nd_ref for the output gradient dy, by the same loops: every
    (output, channel, tap) product x * w sends dy * w to x's element and dy * x to w's."""
    N, C, *ins = x.shape
    Co, Cg, *kernel = w.shape
    outs = dy.shape[2:]
    og = Co // group
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for n in range(N):
        for o in range(Co):
            g = o // og
            for pos in itertools.product(*(range(v) for v in outs)):
                d = float(dy[(n, o) + pos])
                for ci in range(Cg):
                    for tap in itertools.product(*(range(k) for k in kernel)):
                        src = tuple(q * s - p + j * e for q, s, p, j, e in zip(pos, stride, pad, tap, dil))
                        if all(0 <= v < i for v, i in zip(src, ins)):
                            dx[(n, g * Cg + ci) + src] += d * float(w[(o, ci) + tap])
                            dw[(o, ci) + tap] += d * float(x[(n, g * Cg + ci) + src])
    db = np.asarray(dy, np.float64).sum(axis=tuple(i for i in range(dy.ndim) if i != 1))
    return dx, dw, db
