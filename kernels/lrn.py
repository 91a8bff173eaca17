"""Local response normalization (Caffe's LRN layer), both regions, forward and backward.

Shapes: x, y, dy, dx, scale are (N, C, H, W) float32, C-contiguous. n = local_size (odd, as Caffe
requires), pre_pad = (n-1)/2, post_pad = n - pre_pad - 1.

ACROSS_CHANNELS (Caffe's lrn_layer.cu, LRNFillScale / LRNComputeOutput / LRNComputeDiff):
    scale[n,c,h,w] = k + alpha/n * sum_{c' = c-pre_pad .. c+post_pad, 0 <= c' < C} x[n,c',h,w]^2
    y = x * scale^-beta
    dx[c] = dy[c] * scale[c]^-beta
            - (2*alpha*beta/n) * x[c] * sum_{c' = c-post_pad .. c+pre_pad} dy[c']*y[c']/scale[c']
    (the backward window is the forward one transposed; equal for odd n)

WITHIN_CHANNEL (Caffe composes it from layers: square -> AVE pooling with kernel n, pad pre_pad,
stride 1 -> Power(power=-beta, scale=alpha, shift=1) -> elementwise product with x; k is NOT used):
    avg[h,w] = sum of x^2 over the window [h-pre_pad, h-pre_pad+n) x [w-pre_pad, ...) clipped to the
               image, divided by the AVE pool_size (the window clipped to H+pre_pad, W+pre_pad only)
    scale = 1 + alpha*avg,  y = x * scale^-beta
    dx[q] = dy[q]*scale[q]^-beta
            + 2*x[q] * sum_{p: window(p) contains q} dy[p]*x[p] * (-beta*alpha)*scale[p]^-beta/scale[p]
                                                       / pool_size(p)
    (the chain rule through product, power, pooling and square, in Caffe's forms: the power layer's
    backward is diff_scale*y/(shift + scale*x))
    ``scale`` is saved by the forward for the backward in both regions.

Versions:
    lrn v1       one thread per element; direct window sums over the n channels (forward and
                 backward): simple, n reads per element
    lrn v2       one thread per (n, h, w) column walking the C channels with Caffe's running window
                 sum (add the entering channel, subtract the leaving one): O(C) per column, the
                 same arithmetic order as Caffe's GPU code; forward fuses scale and output
                 (promoted)
    lrn_within v1  one thread per element, forward over its n x n window, backward over the n x n
                 outputs whose windows cover it (no atomics)

Launch geometry: 1-D grid-stride loops with LRN_THREADS threads per block over elements (v1,
within) or over N*H*W columns (v2; consecutive threads take consecutive w: coalesced), block counts
from ``kernels._launch.grid_1d``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import as_device, grid_1d

LRN_THREADS = 256           # threads per block for every LRN kernel

_ZERO = float32(0.0)
_ONE = float32(1.0)
_TWO = float32(2.0)


# ------------------------------------------------------------------------------ across channels

@cuda.jit
def lrn_fwd_v1(x, scale, y, C, H, W, size, alpha_over_size, k, negative_beta):
    """scale = k + alpha/n * window sum of x^2 across channels; y = x * scale^-beta."""
    pre_pad = (size - 1) // 2
    post_pad = size - pre_pad - 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        accum = _ZERO
        for cc in range(max(c - pre_pad, 0), min(c + post_pad + 1, C)):
            v = x[((n * C + cc) * H + h) * W + w]
            accum += v * v
        s = k + accum * alpha_over_size
        scale[i] = s
        y[i] = x[i] * math.pow(s, negative_beta)


@cuda.jit
def lrn_bwd_v1(dy, x, y, scale, dx, C, H, W, size, negative_beta, cache_ratio):
    """dx = dy*scale^-beta - cache_ratio * x * sum over the transposed window of dy*y/scale."""
    pre_pad = size - (size + 1) // 2        # the backward (transposed) window, as Caffe
    post_pad = size - pre_pad - 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        accum_ratio = _ZERO
        for cc in range(max(c - post_pad, 0), min(c + pre_pad + 1, C)):
            j = ((n * C + cc) * H + h) * W + w
            accum_ratio += dy[j] * y[j] / scale[j]
        dx[i] = dy[i] * math.pow(scale[i], negative_beta) - cache_ratio * x[i] * accum_ratio


@cuda.jit
def lrn_fwd_v2(x, scale, y, C, H, W, size, alpha_over_size, k, negative_beta):
    """Caffe's LRNFillScale + LRNComputeOutput: one thread per (n, h, w) column, running sum."""
    pre_pad = (size - 1) // 2
    post_pad = size - pre_pad - 1
    step = H * W
    for col in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        w = col % W
        h = (col // W) % H
        n = col // (W * H)
        offset = (n * C * H + h) * W + w
        accum = _ZERO
        head = 0
        while head < post_pad and head < C:          # fill the window's leading part
            v = x[offset + head * step]
            accum += v * v
            head += 1
        while head < C + post_pad:                   # slide: add the entering, drop the leaving
            if head < C:
                v = x[offset + head * step]
                accum += v * v
            if head - size >= 0:
                v = x[offset + (head - size) * step]
                accum -= v * v
            c = head - post_pad
            if c >= 0:
                s = k + accum * alpha_over_size
                scale[offset + c * step] = s
                y[offset + c * step] = x[offset + c * step] * math.pow(s, negative_beta)
            head += 1


@cuda.jit
def lrn_bwd_v2(dy, x, y, scale, dx, C, H, W, size, negative_beta, cache_ratio):
    """Caffe's LRNComputeDiff: one thread per (n, h, w) column, running sum of dy*y/scale."""
    pre_pad = size - (size + 1) // 2
    post_pad = size - pre_pad - 1
    step = H * W
    for col in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        w = col % W
        h = (col // W) % H
        n = col // (W * H)
        offset = (n * C * H + h) * W + w
        accum_ratio = _ZERO
        head = 0
        while head < post_pad and head < C:
            j = offset + head * step
            accum_ratio += dy[j] * y[j] / scale[j]
            head += 1
        while head < C + post_pad:
            if head < C:
                j = offset + head * step
                accum_ratio += dy[j] * y[j] / scale[j]
            if head - size >= 0:
                j = offset + (head - size) * step
                accum_ratio -= dy[j] * y[j] / scale[j]
            c = head - post_pad
            if c >= 0:
                j = offset + c * step
                dx[j] = dy[j] * math.pow(scale[j], negative_beta) - cache_ratio * x[j] * accum_ratio
            head += 1


# ------------------------------------------------------------------------------- within channel

@cuda.jit
def lrn_within_fwd_v1(x, scale, y, H, W, size, alpha, negative_beta):
    """scale = 1 + alpha * AVE-pool(x^2) (kernel n, pad pre_pad, stride 1); y = x * scale^-beta."""
    pad = (size - 1) // 2
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        plane = i - h * W - w                       # start of this (n, c) plane
        hstart = h - pad
        wstart = w - pad
        hend = min(hstart + size, H + pad)
        wend = min(wstart + size, W + pad)
        pool_size = (hend - hstart) * (wend - wstart)
        total = _ZERO
        for hh in range(max(hstart, 0), min(hend, H)):
            for ww in range(max(wstart, 0), min(wend, W)):
                v = x[plane + hh * W + ww]
                total += v * v
        s = total / float32(pool_size)
        if alpha != _ONE:
            s = s * alpha
        s = s + _ONE
        scale[i] = s
        y[i] = x[i] * math.pow(s, negative_beta)


@cuda.jit
def lrn_within_bwd_v1(dy, x, scale, dx, H, W, size, alpha, negative_beta):
    """dx = dy*scale^-beta + 2x * sum over covering windows p of dy_p*x_p*(-beta*alpha)
    *scale_p^-beta/scale_p / pool_size_p."""
    pad = (size - 1) // 2
    diff_scale = negative_beta * alpha
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        plane = i - h * W - w
        # outputs p = (ph, pw) (same size as the input, stride 1) whose window contains (h, w)
        hp = h + pad
        wp = w + pad
        phstart = 0 if hp < size else hp - size + 1
        phend = min(hp + 1, H)
        pwstart = 0 if wp < size else wp - size + 1
        pwend = min(wp + 1, W)
        pooled_diff = _ZERO
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                hstart = ph - pad
                wstart = pw - pad
                hend = min(hstart + size, H + pad)
                wend = min(wstart + size, W + pad)
                pool_size = (hend - hstart) * (wend - wstart)
                p = plane + ph * W + pw
                s = scale[p]
                power_diff = math.pow(s, negative_beta) / s * diff_scale   # Power layer's dy/dx
                pooled_diff += dy[p] * x[p] * power_diff / float32(pool_size)
        dx[i] = dy[i] * math.pow(scale[i], negative_beta) + _TWO * x[i] * pooled_diff


_F = float32[::1]
_I = int64

KERNELS: dict[str, tuple[Any, list]] = {
    "lrn_fwd_v1": (lrn_fwd_v1, [void(_F, _F, _F, _I, _I, _I, _I, float32, float32, float32)]),
    "lrn_bwd_v1": (lrn_bwd_v1, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32, float32)]),
    "lrn_fwd_v2": (lrn_fwd_v2, [void(_F, _F, _F, _I, _I, _I, _I, float32, float32, float32)]),
    "lrn_bwd_v2": (lrn_bwd_v2, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32, float32)]),
    "lrn_within_fwd_v1": (lrn_within_fwd_v1, [void(_F, _F, _F, _I, _I, _I, float32, float32)]),
    "lrn_within_bwd_v1": (lrn_within_bwd_v1, [void(_F, _F, _F, _F, _I, _I, _I, float32, float32)]),
}


# ------------------------------------------------------------------------------------- public API

def _arrays(*arrays: Any) -> tuple[tuple[int, int, int, int], list]:
    """((N, C, H, W), flat device views) after checking dtype and equal 4-D shapes."""
    devs = [as_device(a) for a in arrays]
    shape = tuple(devs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"LRN needs 4-D NCHW arrays, got shape {shape}")
    for d in devs:
        if d.dtype != np.float32:
            raise TypeError(f"LRN kernels take float32 arrays, got {d.dtype}")
        if tuple(d.shape) != shape:
            raise ValueError(f"LRN arrays must share one shape, got {[tuple(e.shape) for e in devs]}")
    return shape, [d.reshape(d.size) for d in devs]


def _check_size(local_size: int) -> int:
    if local_size < 1 or local_size % 2 == 0:
        raise ValueError(f"LRN local_size must be odd and positive (Caffe requires it), got {local_size}")
    return int(local_size)


def lrn_fwd(x: Any, scale: Any, y: Any, local_size: int = 5, alpha: float = 1.0, beta: float = 0.75,
            k: float = 1.0, version: int = 2) -> None:
    """ACROSS_CHANNELS LRN: scale = k + alpha/n * sum of x^2 over n neighbouring channels,
    y = x * scale^-beta; scale (kept for the backward) and y are (N,C,H,W) outputs."""
    size = _check_size(local_size)
    (N, C, H, W), (xf, sf, yf) = _arrays(x, scale, y)
    alpha_over_size = np.float32(np.float32(alpha) / np.float32(size))
    args = (xf, sf, yf, C, H, W, size, alpha_over_size, np.float32(k), np.float32(-beta))
    if version == 1:
        if xf.size:
            blocks, threads = grid_1d(xf.size, LRN_THREADS)
            lrn_fwd_v1[blocks, threads](*args)
    elif N * H * W * C:
        blocks, threads = grid_1d(N * H * W, LRN_THREADS)
        lrn_fwd_v2[blocks, threads](*args)


def lrn_bwd(dy: Any, x: Any, y: Any, scale: Any, dx: Any, local_size: int = 5, alpha: float = 1.0,
            beta: float = 0.75, version: int = 2) -> None:
    """ACROSS_CHANNELS LRN backward (Caffe's ComputeDiff) from x, y and the forward's scale:
    dx = dy*scale^-beta - 2*alpha*beta/n * x * sum over the window of dy*y/scale."""
    size = _check_size(local_size)
    (N, C, H, W), (dyf, xf, yf, sf, dxf) = _arrays(dy, x, y, scale, dx)
    cache_ratio = np.float32(np.float32(2.0 * np.float32(alpha) * np.float32(beta)) / np.float32(size))
    args = (dyf, xf, yf, sf, dxf, C, H, W, size, np.float32(-beta), cache_ratio)
    if version == 1:
        if xf.size:
            blocks, threads = grid_1d(xf.size, LRN_THREADS)
            lrn_bwd_v1[blocks, threads](*args)
    elif N * H * W * C:
        blocks, threads = grid_1d(N * H * W, LRN_THREADS)
        lrn_bwd_v2[blocks, threads](*args)


def lrn_within_fwd(x: Any, scale: Any, y: Any, local_size: int = 5, alpha: float = 1.0,
                   beta: float = 0.75) -> None:
    """WITHIN_CHANNEL LRN: scale = 1 + alpha * (AVE pool of x^2 over n x n, pad (n-1)/2, padded
    divisor), y = x * scale^-beta (k unused, as in Caffe); scale and y are (N,C,H,W) outputs."""
    size = _check_size(local_size)
    (_, _, H, W), (xf, sf, yf) = _arrays(x, scale, y)
    if xf.size:
        blocks, threads = grid_1d(xf.size, LRN_THREADS)
        lrn_within_fwd_v1[blocks, threads](xf, sf, yf, H, W, size, np.float32(alpha), np.float32(-beta))


def lrn_within_bwd(dy: Any, x: Any, scale: Any, dx: Any, local_size: int = 5, alpha: float = 1.0,
                   beta: float = 0.75) -> None:
    """WITHIN_CHANNEL LRN backward through Caffe's composition (product, power, AVE pooling,
    square), from x and the forward's scale."""
    size = _check_size(local_size)
    (_, _, H, W), (dyf, xf, sf, dxf) = _arrays(dy, x, scale, dx)
    if xf.size:
        blocks, threads = grid_1d(xf.size, LRN_THREADS)
        lrn_within_bwd_v1[blocks, threads](dyf, xf, sf, dxf, H, W, size, np.float32(alpha),
                                           np.float32(-beta))
