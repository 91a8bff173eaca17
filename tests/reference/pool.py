"""Naive pooling references (Caffe's pooling_layer.cpp CPU semantics).

Plain loops over the output cells (ph, pw), each window handled with numpy over all (n, c) planes
at once, so the same references stay usable at the GPU profile's sizes. Backward loops also run per
output cell and scatter into dx (the CPU layer's order), sharing no structure with the per-input GPU
kernels under test.
"""
from __future__ import annotations

import math

import numpy as np

FLT_MAX = np.float32(np.finfo(np.float32).max)


def pooled_size_ref(size: int, kernel: int, pad: int, stride: int, round_mode: str = "CEIL",
                    any_pad: bool | None = None) -> int:
    """Caffe's PoolingLayer::Reshape output length along one axis."""
    q = np.float32(size + 2 * pad - kernel) / np.float32(stride)
    out = int(math.ceil(q) if round_mode == "CEIL" else math.floor(q)) + 1
    has_pad = pad > 0 if any_pad is None else any_pad
    if has_pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(PH, PW, kernel, stride, pad):
    """(ph, pw, hstart, wstart) before clipping, row-major over the output."""
    for ph in range(PH):
        for pw in range(PW):
            yield ph, pw, ph * stride[0] - pad[0], pw * stride[1] - pad[1]


def max_pool_fwd_ref(x, out_hw, kernel, stride, pad):
    """(y, mask): y = max over each clipped window starting at -FLT_MAX with a strict '>', so the
    first maximum in (h, w) row-major order wins; mask = its h*W+w, -1 if nothing beats -FLT_MAX."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.full((N, C, PH, PW), -FLT_MAX, np.float32)
    mask = np.full((N, C, PH, PW), -1, np.int32)
    for ph, pw, hs, ws in _windows(PH, PW, kernel, stride, pad):
        h0, w0 = max(hs, 0), max(ws, 0)
        h1, w1 = min(hs + kernel[0], H), min(ws + kernel[1], W)
        if h0 >= h1 or w0 >= w1:
            continue
        win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)       # row-major: h, then w
        first = np.argmax(win, axis=2)                       # first occurrence of the maximum
        best = np.take_along_axis(win, first[:, :, None], axis=2)[:, :, 0]
        found = best > -FLT_MAX
        y[:, :, ph, pw] = np.where(found, best, -FLT_MAX)
        mask[:, :, ph, pw] = np.where(found, (h0 + first // (w1 - w0)) * W + w0 + first % (w1 - w0), -1)
    return y, mask


def max_pool_bwd_ref(x, dy, kernel, stride, pad):
    """dx: each dy routed to the first argmax of its window (argmax recomputed from x)."""
    N, C, H, W = x.shape
    _, mask = max_pool_fwd_ref(x, dy.shape[2:], kernel, stride, pad)
    dx = np.zeros(N * C * H * W, np.float32)
    plane = (np.arange(N)[:, None] * C + np.arange(C)[None, :]) * H * W
    for ph in range(dy.shape[2]):
        for pw in range(dy.shape[3]):
            m = mask[:, :, ph, pw]
            ok = m >= 0
            np.add.at(dx, (plane + m)[ok], dy[:, :, ph, pw][ok])
    return dx.reshape(x.shape)


def _ave_window(hs, ws, kernel, H, W, pad):
    he = min(hs + kernel[0], H + pad[0])
    we = min(ws + kernel[1], W + pad[1])
    pool_size = (he - hs) * (we - ws)
    return max(hs, 0), max(ws, 0), min(he, H), min(we, W), pool_size


def ave_pool_fwd_ref(x, out_hw, kernel, stride, pad):
    """y = sum over the window clipped to the image / size of the window clipped to H+pad, W+pad
    (an empty window divides 0 by 0 -> NaN, as Caffe). float32 in -> float32 out, float64 -> float64."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.zeros((N, C, PH, PW), np.result_type(x.dtype, np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        for ph, pw, hs, ws in _windows(PH, PW, kernel, stride, pad):
            h0, w0, h1, w1, size = _ave_window(hs, ws, kernel, H, W, pad)
            total = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3))
            y[:, :, ph, pw] = total / np.float64(size)
    return y


def ave_pool_bwd_ref(x_shape, dy, kernel, stride, pad):
    """dx: each dy / pool_size spread over its clipped window."""
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, np.float64)
    PH, PW = dy.shape[2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        for ph, pw, hs, ws in _windows(PH, PW, kernel, stride, pad):
            h0, w0, h1, w1, size = _ave_window(hs, ws, kernel, H, W, pad)
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, ph, pw] / np.float64(size))[:, :, None, None]
    return dx
