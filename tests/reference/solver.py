"""Naive references for Caffe's solver updates: plain float32 loops over the elements, following
Caffe's CPU code (sgd_solver.cpp, nesterov_solver.cpp, adagrad_solver.cpp, rmsprop_solver.cpp,
adadelta_solver.cpp, adam_solver.cpp) one BLAS call at a time:

    Normalize (caffe_scal 1/iter_size) -> Regularize (caffe_axpy of decay * w or decay * sign(w))
    -> ComputeUpdateValue (history update; diff := update value) -> Net::Update (w -= diff).

Each function updates the numpy float32 arrays in place (w, diff, history...) and returns None.
Never imports the code under test.
"""
from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def _grad(g, w, i, local_decay, regularization, diff_scale):
    gi = f32(g[i]) * f32(diff_scale)              # Normalize: caffe_scal(1/iter_size, diff)
    decay = f32(local_decay)
    if decay != 0:                                # SGDSolver::Regularize: `if (local_decay)`
        if regularization == "L2":                # caffe_axpy(local_decay, w, diff)
            gi = f32(decay * f32(w[i])) + gi
        elif regularization == "L1":              # caffe_cpu_sign then caffe_axpy
            s = f32(int(w[i] > 0) - int(w[i] < 0))
            gi = f32(decay * s) + gi
        else:
            raise ValueError(regularization)
    return f32(gi)


def sgd_ref(w, g, h, local_rate, momentum, local_decay=0.0, regularization="L2", diff_scale=1.0):
    lr, mom = f32(local_rate), f32(momentum)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        h[i] = f32(mom * h[i]) + f32(lr * gi)      # caffe_cpu_axpby(lr, diff, momentum, history)
        g[i] = h[i]                                # caffe_copy(history -> diff)
        w[i] = w[i] - g[i]                         # Net::Update


def nesterov_ref(w, g, h, local_rate, momentum, local_decay=0.0, regularization="L2", diff_scale=1.0):
    lr, mom = f32(local_rate), f32(momentum)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        saved = f32(h[i])                          # caffe_copy(history -> update)
        h[i] = f32(mom * h[i]) + f32(lr * gi)      # axpby(lr, diff, momentum, history)
        upd = f32(-mom * saved) + f32(f32(f32(1) + mom) * h[i])  # axpby(1+m, history, -m, update)
        g[i] = upd
        w[i] = w[i] - g[i]


def adagrad_ref(w, g, h, local_rate, delta, local_decay=0.0, regularization="L2", diff_scale=1.0):
    lr, dl = f32(local_rate), f32(delta)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        h[i] = f32(gi * gi) + h[i]                 # powx(diff, 2) then add to history
        upd = gi / f32(f32(math.sqrt(h[i])) + dl)  # powx(h, 0.5), add_scalar(delta), div
        g[i] = f32(lr * upd)                       # axpby(lr, update, 0, diff)
        w[i] = w[i] - g[i]


def rmsprop_ref(w, g, h, local_rate, rms_decay, delta, local_decay=0.0, regularization="L2",
                diff_scale=1.0):
    lr, rd, dl = f32(local_rate), f32(rms_decay), f32(delta)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        h[i] = f32(rd * h[i]) + f32(f32(f32(1) - rd) * f32(gi * gi))   # axpby(1-rd, g^2, rd, h)
        upd = gi / f32(f32(math.sqrt(h[i])) + dl)
        g[i] = f32(lr * upd)
        w[i] = w[i] - g[i]


def adadelta_ref(w, g, h, h2, local_rate, momentum, delta, local_decay=0.0, regularization="L2",
                 diff_scale=1.0):
    lr, mom, dl = f32(local_rate), f32(momentum), f32(delta)
    one_m = f32(f32(1) - mom)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        h[i] = f32(mom * h[i]) + f32(one_m * f32(gi * gi))       # axpby(1-m, g^2, m, history)
        num = f32(dl + h2[i])                                     # update = delta + h2
        den = f32(dl + h[i])                                      # temp = delta + history
        u = f32(gi * f32(math.sqrt(f32(num / den))))              # div, powx 0.5, mul by diff
        h2[i] = f32(mom * h2[i]) + f32(one_m * f32(u * u))        # axpby(1-m, u^2, m, h2)
        g[i] = f32(lr * u)                                        # caffe_cpu_scale(lr, diff)
        w[i] = w[i] - g[i]


def adam_rate_ref(local_rate, beta1, beta2, t):
    """Caffe's lr * sqrt(1 - b2^t) / (1 - b1^t): float32 betas, std::pow in double, float32 result."""
    b1, b2 = f32(beta1), f32(beta2)
    correction = f32(math.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))  # in double
    return f32(f32(local_rate) * correction)


def adam_ref(w, g, m, v, local_rate, beta1, beta2, eps_hat, t, local_decay=0.0, regularization="L2",
             diff_scale=1.0):
    b1, b2, eps = f32(beta1), f32(beta2), f32(eps_hat)
    rate = adam_rate_ref(local_rate, beta1, beta2, t)
    for i in range(w.size):
        gi = _grad(g, w, i, local_decay, regularization, diff_scale)
        m[i] = f32(b1 * m[i]) + f32(f32(f32(1) - b1) * gi)          # axpby(1-b1, g, b1, m)
        v[i] = f32(b2 * v[i]) + f32(f32(f32(1) - b2) * f32(gi * gi))  # axpby(1-b2, g^2, b2, v)
        den = f32(f32(math.sqrt(v[i])) + eps)                        # powx 0.5, add_scalar
        g[i] = f32(rate * f32(m[i] / den))                           # div, scale(lr*corr)
        w[i] = w[i] - g[i]
