"""Elementwise activation references in float64 (the textbook math, not Caffe's special-cased forms,
so the kernels' Caffe forms are checked against the plain derivative).

Each ``<op>_ref(x, **params)`` returns y; each ``<op>_grad_ref(x, dy, **params)`` returns dx = dy*y'(x).
Inputs are converted to float64; results are float64 (callers compare with a tolerance).
"""
from __future__ import annotations

import numpy as np


def _f(a):
    return np.asarray(a, dtype=np.float64)


def relu_ref(x, negative_slope=0.0):
    x = _f(x)
    return np.where(x > 0, x, x * negative_slope)


def relu_grad_ref(x, dy, negative_slope=0.0):
    x = _f(x)
    return _f(dy) * np.where(x > 0, 1.0, negative_slope)


def sigmoid_ref(x):
    return 1.0 / (1.0 + np.exp(-_f(x)))


def sigmoid_grad_ref(x, dy):
    s = sigmoid_ref(x)
    return _f(dy) * s * (1 - s)


def tanh_ref(x):
    return np.tanh(_f(x))


def tanh_grad_ref(x, dy):
    return _f(dy) * (1 - np.tanh(_f(x)) ** 2)


def power_ref(x, power=1.0, scale=1.0, shift=0.0):
    return (shift + scale * _f(x)) ** power


def power_grad_ref(x, dy, power=1.0, scale=1.0, shift=0.0):
    if power == 0 or scale == 0:
        return np.zeros_like(_f(x))
    return _f(dy) * power * scale * (shift + scale * _f(x)) ** (power - 1)


def _ln(base):
    return 1.0 if base == -1 else np.log(base)


def exp_ref(x, base=-1.0, scale=1.0, shift=0.0):
    return np.exp((shift + scale * _f(x)) * _ln(base))


def exp_grad_ref(x, dy, base=-1.0, scale=1.0, shift=0.0):
    return _f(dy) * exp_ref(x, base, scale, shift) * _ln(base) * scale


def log_ref(x, base=-1.0, scale=1.0, shift=0.0):
    return np.log(shift + scale * _f(x)) / _ln(base)


def log_grad_ref(x, dy, base=-1.0, scale=1.0, shift=0.0):
    return _f(dy) * scale / ((shift + scale * _f(x)) * _ln(base))


def absval_ref(x):
    return np.abs(_f(x))


def absval_grad_ref(x, dy):
    return _f(dy) * np.sign(_f(x))


def bnll_ref(x):
    return np.logaddexp(0.0, _f(x))       # log(1 + exp(x)), stable


def bnll_grad_ref(x, dy):
    """Caffe clamps x at 50 in the backward: exp(50)/(exp(50)+1) is 1 within float32 anyway."""
    e = np.exp(np.minimum(_f(x), 50.0))
    return _f(dy) * e / (e + 1)


def elu_ref(x, alpha=1.0):
    x = _f(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_grad_ref(x, dy, alpha=1.0):
    x = _f(x)
    return _f(dy) * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))
