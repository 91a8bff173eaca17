"""Naive references for Caffe's Eltwise layer (eltwise_layer.cpp, CPU path): one float32 numpy op
per Caffe BLAS call / loop, in Caffe's order. Never imports the code under test."""
from __future__ import annotations

import numpy as np

f32 = np.float32


def sum_fwd_ref(xs, coeffs=None):
    """caffe_set(top, 0), then caffe_axpy(coeff_i, x_i, top) for each bottom in order."""
    coeffs = [1.0] * len(xs) if coeffs is None else coeffs
    y = np.zeros(xs[0].shape, np.float32)
    for x, c in zip(xs, coeffs):
        y = (f32(c) * x).astype(np.float32) + y
    return y.astype(np.float32)


def sum_bwd_ref(dy, coeff):
    return (f32(coeff) * dy).astype(np.float32)


def prod_fwd_ref(xs):
    y = xs[0] * xs[1]
    for x in xs[2:]:
        y = y * x
    return y.astype(np.float32)


def prod_bwd_ref(xs, y, dy, index, stable=True):
    """stable_prod_grad: copy the first other bottom, multiply the rest in order, then by dy;
    otherwise (y / x_i) * dy."""
    if not stable:
        return ((y / xs[index]) * dy).astype(np.float32)
    acc = None
    for j, x in enumerate(xs):
        if j == index:
            continue
        acc = x.copy() if acc is None else x * acc
    return (acc * dy).astype(np.float32)


def max_fwd_ref(xs):
    """Caffe CPU: first pair with `a > b` (a tie picks bottom 1), later bottoms only where strictly
    greater (a tie keeps the earlier)."""
    a, b = xs[0], xs[1]
    first = a > b
    y = np.where(first, a, b).astype(np.float32)
    mask = np.where(first, 0, 1).astype(np.int32)
    for k in range(2, len(xs)):
        take = xs[k] > y
        y = np.where(take, xs[k], y).astype(np.float32)
        mask = np.where(take, k, mask).astype(np.int32)
    return y, mask


def max_bwd_ref(dy, mask, index):
    return np.where(mask == index, dy, np.float32(0)).astype(np.float32)
