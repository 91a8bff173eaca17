"""Naive references for Caffe's Eltwise layer (eltwise_layer.cpp, CPU path), element loops in
float32. Never imports the code under test."""
from __future__ import annotations

import numpy as np

f32 = np.float32


def sum_fwd_ref(xs, coeffs=None):
    coeffs = [1.0] * len(xs) if coeffs is None else coeffs
    y = np.zeros(xs[0].size, np.float32)                 # caffe_set(top, 0)
    for x, c in zip(xs, coeffs):                          # caffe_axpy(coeff_i, x_i, top)
        flat = x.reshape(-1)
        for i in range(y.size):
            y[i] = f32(f32(c) * flat[i]) + y[i]
    return y.reshape(xs[0].shape)


def sum_bwd_ref(dy, coeff):
    return (f32(coeff) * dy).astype(np.float32)


def prod_fwd_ref(xs):
    y = xs[0].reshape(-1) * xs[1].reshape(-1)
    for x in xs[2:]:
        y = y * x.reshape(-1)
    return y.reshape(xs[0].shape).astype(np.float32)


def prod_bwd_ref(xs, y, dy, index, stable=True):
    """stable_prod_grad: product of the other bottoms in order, then times dy; else y / x_i * dy."""
    if not stable:
        return ((y / xs[index]) * dy).astype(np.float32)
    acc = None
    for j, x in enumerate(xs):
        if j == index:
            continue
        acc = x.copy() if acc is None else x * acc
    return (acc * dy).astype(np.float32)


def max_fwd_ref(xs):
    """Caffe CPU: first pair with `a > b` (a tie picks bottom 1), later bottoms only if strictly
    greater (a tie keeps the earlier)."""
    a, b = xs[0].reshape(-1), xs[1].reshape(-1)
    y = np.empty(a.size, np.float32)
    mask = np.empty(a.size, np.int32)
    for i in range(a.size):
        if a[i] > b[i]:
            y[i], mask[i] = a[i], 0
        else:
            y[i], mask[i] = b[i], 1
    for k in range(2, len(xs)):
        x = xs[k].reshape(-1)
        for i in range(a.size):
            if x[i] > y[i]:
                y[i], mask[i] = x[i], k
    return y.reshape(xs[0].shape), mask.reshape(xs[0].shape)


def max_bwd_ref(dy, mask, index):
    return np.where(mask == index, dy, np.float32(0)).astype(np.float32)
