"""Naive references of Caffe's STOCHASTIC pooling (pooling_layer.cu StoPoolForwardTrain / Test /
StoPoolBackward), written from the rule, one window at a time in float32 (the kernels' arithmetic).
Never imports the code under test: the uniforms are passed in."""
from __future__ import annotations

import numpy as np

FLT_MIN = np.float32(np.finfo(np.float32).tiny)


def _windows(H, W, PH, PW, kernel, stride):
    for ph in range(PH):
        for pw in range(PW):
            hs, ws = ph * stride[0], pw * stride[1]
            yield ph, pw, range(hs, min(hs + kernel[0], H)), range(ws, min(ws + kernel[1], W))


def sto_train_ref(x, out_hw, kernel, stride, u):
    """(y, idx): per window, thres = u * sum (float32), the first row-major element whose running
    float32 sum reaches thres; u (N*C*PH*PW,) in y's flat order. idx = h*W + w, -1 if none."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.zeros((N, C, PH, PW), np.float32)
    idx = np.full((N, C, PH, PW), -1, np.int32)
    uu = np.asarray(u, np.float32).reshape(N, C, PH, PW)
    for n in range(N):
        for c in range(C):
            for ph, pw, hr, wr in _windows(H, W, PH, PW, kernel, stride):
                cells = [(h, w) for h in hr for w in wr]
                total = np.float32(0)
                for h, w in cells:
                    total = np.float32(total + x[n, c, h, w])
                thres = np.float32(uu[n, c, ph, pw] * total)
                run = np.float32(0)
                for h, w in cells:
                    run = np.float32(run + x[n, c, h, w])
                    if run >= thres:
                        y[n, c, ph, pw] = x[n, c, h, w]
                        idx[n, c, ph, pw] = h * W + w
                        break
    return y, idx


def sto_test_ref(x, out_hw, kernel, stride):
    """y = sum(x^2) / (FLT_MIN + sum(x)) per window (float64 sums)."""
    N, C, H, W = x.shape
    PH, PW = out_hw
    y = np.zeros((N, C, PH, PW))
    x64 = x.astype(np.float64)
    for ph, pw, hr, wr in _windows(H, W, PH, PW, kernel, stride):
        win = x64[:, :, hr.start:hr.stop, wr.start:wr.stop]
        y[:, :, ph, pw] = (win ** 2).sum(axis=(2, 3)) / (float(FLT_MIN) + win.sum(axis=(2, 3)))
    return y


def sto_bwd_ref(dy, idx, x_shape):
    """dx: each dy added at its picked index (nothing for -1)."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            for k, j in enumerate(idx[n, c].reshape(-1)):
                if j >= 0:
                    dx[n, c, j] += dy[n, c].reshape(-1)[k]
    return dx.reshape(x_shape)
