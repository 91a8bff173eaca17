"""Naive pooling references (Caffe's pooling_layer.cpp CPU semantics), plain loops over outputs.

Forward loops run per output cell; backward loops also run per output cell and scatter into dx
(the CPU layer's order), so they share no structure with the per-input GPU kernels under test.
"""
from __future__ import annotations

import math

import numpy as np


def pooled_size_ref(size: int, kernel: int, pad: int, stride: int, round_mode: str = "CEIL",
                    any_pad: bool | None = None) -> int:
    """Caffe's PoolingLayer::Reshape output length along one axis."""
    q = np.float32(size + 2 * pad - kernel) / np.float32(stride)
    out = int(math.ceil(q) if round_mode == "CEIL" else math.floor(q)) + 1
    has_pad = pad > 0 if any_pad is None else any_pad
    if has_pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(H, W, PH, PW, kernel, stride, pad):
    kh, kw = kernel
    sh, sw = stride
    ph_, pw_ = pad
    for ph in range(PH):
        for pw in range(PW):
            yield ph, pw, ph * sh - ph_, pw * sw - pw_, kh, kw


def max_pool_fwd_ref(x, out_hw, kernel, stride, pad):
    """(y, mask): y = max over each clipped window starting at -FLT_MAX, first max kept (strict >)."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.zeros((N, C, PH, PW), np.float32)
    mask = np.full((N, C, PH, PW), -1, np.int32)
    for n in range(N):
        for c in range(C):
            for ph, pw, hs, ws, kh, kw in _windows(H, W, PH, PW, kernel, stride, pad):
                best = np.float32(-np.finfo(np.float32).max)
                arg = -1
                for h in range(max(hs, 0), min(hs + kh, H)):
                    for w in range(max(ws, 0), min(ws + kw, W)):
                        if x[n, c, h, w] > best:
                            best = x[n, c, h, w]
                            arg = h * W + w
                y[n, c, ph, pw] = best
                mask[n, c, ph, pw] = arg
    return y, mask


def max_pool_bwd_ref(x, dy, kernel, stride, pad):
    """dx: each dy routed to the first argmax of its window (argmax recomputed from x)."""
    N, C, H, W = x.shape
    _, mask = max_pool_fwd_ref(x, dy.shape[2:], kernel, stride, pad)
    dx = np.zeros_like(x, dtype=np.float32)
    for n in range(N):
        for c in range(C):
            for ph in range(dy.shape[2]):
                for pw in range(dy.shape[3]):
                    m = mask[n, c, ph, pw]
                    if m >= 0:
                        dx[n, c, m // W, m % W] += dy[n, c, ph, pw]
    return dx


def _ave_window(hs, ws, kh, kw, H, W, pad):
    he = min(hs + kh, H + pad[0])
    we = min(ws + kw, W + pad[1])
    pool_size = (he - hs) * (we - ws)
    return max(hs, 0), max(ws, 0), min(he, H), min(we, W), pool_size


def ave_pool_fwd_ref(x, out_hw, kernel, stride, pad):
    """y = sum over the window clipped to the image / size of the window clipped to H+pad, W+pad."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.zeros((N, C, PH, PW), np.float32)
    for n in range(N):
        for c in range(C):
            for ph, pw, hs, ws, kh, kw in _windows(H, W, PH, PW, kernel, stride, pad):
                h0, w0, h1, w1, size = _ave_window(hs, ws, kh, kw, H, W, pad)
                s = np.float32(0)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s = np.float32(s + x[n, c, h, w])
                y[n, c, ph, pw] = s / np.float32(size)
    return y


def ave_pool_bwd_ref(x_shape, dy, kernel, stride, pad):
    """dx: each dy / pool_size spread over its clipped window."""
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, np.float32)
    PH, PW = dy.shape[2:]
    for n in range(N):
        for c in range(C):
            for ph, pw, hs, ws, kh, kw in _windows(H, W, PH, PW, kernel, stride, pad):
                h0, w0, h1, w1, size = _ave_window(hs, ws, kh, kw, H, W, pad)
                dx[n, c, h0:h1, w0:w1] += dy[n, c, ph, pw] / np.float32(size)
    return dx
