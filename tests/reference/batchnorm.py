"""Naive references for Caffe's BatchNorm layer (batch_norm_layer.cpp) on (n, c, s) views: float64
numpy with the formulas written out per channel (fast enough for the GPU profile's 2M-element
blobs). Never imports the code under test."""
from __future__ import annotations

import numpy as np

f32 = np.float32


def mean_var_ref(x, n, c, s):
    """Per-channel mean and biased variance, two passes like Caffe (E((X - EX)^2)), float64."""
    xv = x.reshape(n, c, s).astype(np.float64)
    m = n * s
    mean = xv.sum(axis=(0, 2)) / m
    var = ((xv - mean[None, :, None]) ** 2).sum(axis=(0, 2)) / m
    return mean, var


def running_update_ref(mean, var, run_mean, run_var, run_factor, maf, m):
    """Caffe's moving averages in float32, element by element, in place:
    blob2 = blob2*maf + 1; blob0 = maf*blob0 + mean; blob1 = maf*blob1 + (m/(m-1))*var."""
    maf = f32(maf)
    run_factor[0] = f32(run_factor[0] * maf) + f32(1)
    corr = f32(m) / f32(m - 1) if m > 1 else f32(1)
    for ch in range(run_mean.size):
        run_mean[ch] = f32(maf * run_mean[ch]) + f32(mean[ch])
        run_var[ch] = f32(maf * run_var[ch]) + f32(corr * f32(var[ch]))


def global_stats_ref(run_mean, run_var, run_factor):
    """use_global_stats: scale factor 0 if blob2 == 0 else 1 / blob2 (float32 as Caffe)."""
    sf = f32(0) if run_factor[0] == 0 else f32(1) / f32(run_factor[0])
    return (sf * run_mean).astype(np.float32), (sf * run_var).astype(np.float32)


def normalize_ref(x, mean, var, eps, n, c, s):
    """y = (x - mean) / sqrt(var + eps) in float64; returns (y, inv_std)."""
    xv = x.reshape(n, c, s).astype(np.float64)
    inv_std = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    y = (xv - np.asarray(mean, np.float64)[None, :, None]) * inv_std[None, :, None]
    return y.reshape(x.shape), inv_std


def backward_ref(y, dy, inv_std, n, c, s, use_global_stats):
    """Caffe: dx = (dy - mean(dy) - y * mean(dy * y)) * inv_std (TRAIN), dy * inv_std (global);
    means over (n, s) per channel, float64."""
    yv = y.reshape(n, c, s).astype(np.float64)
    gv = dy.reshape(n, c, s).astype(np.float64)
    k = np.asarray(inv_std, np.float64)[None, :, None]
    if use_global_stats:
        return (gv * k).reshape(dy.shape)
    mean_dy = gv.mean(axis=(0, 2))[None, :, None]
    mean_dyy = (gv * yv).mean(axis=(0, 2))[None, :, None]
    return ((gv - mean_dy - yv * mean_dyy) * k).reshape(dy.shape)
