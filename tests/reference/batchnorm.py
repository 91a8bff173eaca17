"""Naive references for Caffe's BatchNorm layer (batch_norm_layer.cpp), loops over (n, c, s) with
float64 statistics. Never imports the code under test."""
from __future__ import annotations

import numpy as np

f32 = np.float32


def mean_var_ref(x, n, c, s):
    """Per-channel mean and biased variance (two passes, float64)."""
    xv = x.reshape(n, c, s).astype(np.float64)
    mean = np.zeros(c)
    var = np.zeros(c)
    m = n * s
    for ch in range(c):
        total = 0.0
        for a in range(n):
            for b in range(s):
                total += xv[a, ch, b]
        mean[ch] = total / m
        sq = 0.0
        for a in range(n):
            for b in range(s):
                sq += (xv[a, ch, b] - mean[ch]) ** 2
        var[ch] = sq / m
    return mean, var


def running_update_ref(mean, var, run_mean, run_var, run_factor, maf, m):
    """Caffe's moving averages in float32, in place: blob2 = blob2*maf + 1;
    blob0 = maf*blob0 + mean; blob1 = maf*blob1 + (m/(m-1))*var."""
    maf = f32(maf)
    run_factor[0] = f32(run_factor[0] * maf) + f32(1)
    corr = f32(m) / f32(m - 1) if m > 1 else f32(1)
    for ch in range(run_mean.size):
        run_mean[ch] = f32(maf * run_mean[ch]) + f32(mean[ch])
        run_var[ch] = f32(maf * run_var[ch]) + f32(corr * f32(var[ch]))


def global_stats_ref(run_mean, run_var, run_factor):
    sf = f32(0) if run_factor[0] == 0 else f32(1) / f32(run_factor[0])
    return (sf * run_mean).astype(np.float32), (sf * run_var).astype(np.float32)


def normalize_ref(x, mean, var, eps, n, c, s):
    """y = (x - mean) / sqrt(var + eps) in float64; returns (y, inv_std)."""
    xv = x.reshape(n, c, s).astype(np.float64)
    y = np.empty_like(xv)
    inv_std = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    for a in range(n):
        for ch in range(c):
            for b in range(s):
                y[a, ch, b] = (xv[a, ch, b] - mean[ch]) * inv_std[ch]
    return y.reshape(x.shape), inv_std


def backward_ref(y, dy, inv_std, n, c, s, use_global_stats):
    """Caffe: dx = (dy - mean(dy) - y * mean(dy * y)) * inv_std (TRAIN); dy * inv_std (global)."""
    yv = y.reshape(n, c, s).astype(np.float64)
    gv = dy.reshape(n, c, s).astype(np.float64)
    dx = np.empty_like(gv)
    m = n * s
    for ch in range(c):
        if use_global_stats:
            dx[:, ch, :] = gv[:, ch, :] * inv_std[ch]
            continue
        sum_dy = 0.0
        sum_dyy = 0.0
        for a in range(n):
            for b in range(s):
                sum_dy += gv[a, ch, b]
                sum_dyy += gv[a, ch, b] * yv[a, ch, b]
        for a in range(n):
            for b in range(s):
                dx[a, ch, b] = (gv[a, ch, b] - sum_dy / m - yv[a, ch, b] * sum_dyy / m) * inv_std[ch]
    return dx.reshape(dy.shape)
