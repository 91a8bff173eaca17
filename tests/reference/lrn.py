"""LRN references in float64.

ACROSS_CHANNELS: loops over channels with the window sum written out (numpy over n, h, w); the
backward is the textbook chain rule scattered from each output channel into the channels of its
window.
WITHIN_CHANNEL: literally Caffe's composition of layers (square -> AVE pooling with pad (n-1)/2 ->
power(1 + alpha*., -beta) -> product with x), forward and backward step by step, using the pooling
reference.
"""
from __future__ import annotations

import numpy as np

from tests.reference.pool import ave_pool_bwd_ref, ave_pool_fwd_ref


def lrn_across_ref(x, local_size, alpha, beta, k):
    """(scale, y): scale = k + alpha/local_size * sum over channels [c-pre_pad, c+post_pad] of x^2
    (loops over channels and the window, numpy over (n, h, w))."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    pre = (local_size - 1) // 2
    post = local_size - pre - 1
    scale = np.zeros_like(x)
    for c in range(C):
        acc = np.zeros_like(x[:, 0])
        for cc in range(c - pre, c + post + 1):
            if 0 <= cc < C:
                acc += x[:, cc] ** 2
        scale[:, c] = k + alpha / local_size * acc
    return scale, x * scale ** -beta


def lrn_across_grad_ref(x, dy, local_size, alpha, beta, k):
    """dx by the chain rule: y_c = x_c s_c^-beta, ds_c/dx_j = 2 alpha/local_size x_j, j in window(c);
    each output channel c scatters into the channels j of its window."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    scale, y = lrn_across_ref(x, local_size, alpha, beta, k)
    C = x.shape[1]
    pre = (local_size - 1) // 2
    post = local_size - pre - 1
    dx = dy * scale ** -beta
    for c in range(C):
        g = dy[:, c] * -beta * y[:, c] / scale[:, c]          # dL/ds_c
        for j in range(c - pre, c + post + 1):
            if 0 <= j < C:
                dx[:, j] += g * 2 * alpha / local_size * x[:, j]
    return dx


def lrn_within_ref(x, local_size, alpha, beta):
    """(scale, y) through Caffe's layers: sq = x^2; pooled = AVE(sq); scale = 1 + alpha*pooled;
    y = x * scale^-beta."""
    x = np.asarray(x, np.float64)
    pad = (local_size - 1) // 2
    sq = x ** 2
    window = (local_size, local_size)
    pooled = ave_pool_fwd_ref(sq, x.shape[2:], window, (1, 1), (pad, pad))
    scale = 1.0 + alpha * pooled
    return scale, x * scale ** -beta


def lrn_within_grad_ref(x, dy, local_size, alpha, beta):
    """Backward through the same layers: product -> power -> AVE pooling -> square, plus the
    product's direct path (the split layer sums both)."""
    x64 = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    pad = (local_size - 1) // 2
    scale, _ = lrn_within_ref(x, local_size, alpha, beta)
    power_out = scale ** -beta
    d_direct = dy * power_out                      # product: d/dx of x * power_out
    d_power_out = dy * x64                         # product: d/d(power_out)
    d_pooled = d_power_out * -beta * alpha * scale ** (-beta - 1)    # power layer derivative
    window = (local_size, local_size)
    d_sq = ave_pool_bwd_ref(x64.shape, d_pooled, window, (1, 1), (pad, pad))
    return d_direct + 2 * x64 * d_sq
