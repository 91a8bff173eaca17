"""numpy / numba helpers of the cpu backend for STOCHASTIC pooling, N-D convolution (Caffe's
im2col_nd / col2im_nd) and the LSTM unit. ``runner.backend.cpu.CpuBackend`` calls them; the math
of each is in ``runner.backend.base`` (and the matching kernels' docstrings).

- Stochastic pooling: numba loops over the outputs in the array's dtype (float32 nets accumulate in
  float32 as the CUDA kernel does, so both backends pick the same elements for the same uniforms).
- N-D im2col: the input is moved channel-major (C, N, *I) and zero padded, then one strided slice
  copy per kernel tap fills col (C, *K, N, *O) -> (C*K, N*O); col2im is the matching strided adds.
- LSTM unit: vectorised numpy with Caffe's float formulas.
"""
from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from netdef.geometry import ConvNdGeometry


# ------------------------------------------------------------------------------ stochastic pooling
@njit(cache=True)
def sto_pool_train(x, y, idx, u, kh, kw, sh, sw):  # pragma: no cover - compiled
    """Caffe's StoPoolForwardTrain on (N, C, H, W) -> (N, C, PH, PW); u (N*C*PH*PW,) uniforms."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    zero = x[0, 0, 0, 0] * 0          # the array's dtype: float32 sums stay float32
    i = 0
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh
                he = min(hs + kh, h_)
                for ow in range(ow_):
                    ws = ow * sw
                    we = min(ws + kw, w_)
                    total = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            total += x[n, c, h, w]
                    thres = u[i] * total
                    run = zero
                    picked = -1
                    value = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if picked < 0:
                                run += x[n, c, h, w]
                                if run >= thres:
                                    picked = h * w_ + w
                                    value = x[n, c, h, w]
                    y[n, c, oh, ow] = value
                    idx[n, c, oh, ow] = picked
                    i += 1


@njit(cache=True)
def sto_pool_test(x, y, kh, kw, sh, sw, flt_min):  # pragma: no cover - compiled
    """Caffe's StoPoolForwardTest: sum(x^2) / (FLT_MIN + sum(x)) over each window."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    zero = x[0, 0, 0, 0] * 0
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh
                he = min(hs + kh, h_)
                for ow in range(ow_):
                    ws = ow * sw
                    we = min(ws + kw, w_)
                    total = zero + flt_min
                    squares = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            v = x[n, c, h, w]
                            total += v
                            squares += v * v
                    y[n, c, oh, ow] = squares / total


@njit(cache=True)
def sto_pool_bwd(dy, idx, dx):  # pragma: no cover - compiled
    """dx = 0, then each dy is added at its picked index (row-major output order)."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for n in range(n_):
        for c in range(c_):
            for h in range(h_):
                for w in range(w_):
                    dx[n, c, h, w] = 0
            for oh in range(oh_):
                for ow in range(ow_):
                    j = idx[n, c, oh, ow]
                    if j >= 0:
                        dx[n, c, j // w_, j % w_] += dy[n, c, oh, ow]


# ------------------------------------------------------------------------------ N-D convolution
def _taps(g: ConvNdGeometry):
    """(tap index tuple, input slices in the padded channel-major array) for every kernel tap."""
    for tap in itertools.product(*(range(k) for k in g.kernel)):
        sl = tuple(slice(j * d, j * d + s * (o - 1) + 1, s)
                   for j, d, s, o in zip(tap, g.dilation, g.stride, g.out_shape))
        yield tap, sl


def im2col_nd(x: np.ndarray, g: ConvNdGeometry) -> np.ndarray:
    """(C_in * prod(kernel), N * prod(out_shape)) columns of x (N, C_in, *in_shape) (Caffe's
    im2col_nd layout, images side by side)."""
    xt = x.reshape(g.x_shape).swapaxes(0, 1)
    xp = np.zeros((g.c_in, g.n) + tuple(i + 2 * p for i, p in zip(g.in_shape, g.pad)), dtype=x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(p, p + i) for i, p in zip(g.in_shape, g.pad))] = xt
    col = np.empty((g.c_in, *g.kernel, g.n, *g.out_shape), dtype=x.dtype)
    for tap, sl in _taps(g):
        col[(slice(None),) + tap] = xp[(slice(None), slice(None)) + sl]
    return col.reshape(g.c_in * g.kernel_count, g.n * g.out_count)


def col2im_nd(col: np.ndarray, dx: np.ndarray, g: ConvNdGeometry) -> None:
    """dx (N, C_in, *in_shape) = the column entries added back onto the positions im2col_nd copied
    them from (written)."""
    c6 = col.reshape(g.c_in, *g.kernel, g.n, *g.out_shape)
    dxp = np.zeros((g.c_in, g.n) + tuple(i + 2 * p for i, p in zip(g.in_shape, g.pad)), dtype=dx.dtype)
    for tap, sl in _taps(g):
        dxp[(slice(None), slice(None)) + sl] += c6[(slice(None),) + tap]
    crop = (slice(None), slice(None)) + tuple(slice(p, p + i) for i, p in zip(g.in_shape, g.pad))
    dx.reshape(g.x_shape)[...] = dxp[crop].swapaxes(0, 1)


def conv_nd_forward(x, w, b, y, g: ConvNdGeometry) -> None:
    """y = conv_nd(x, w) (+ b): im2col_nd + one matmul per group over the whole batch."""
    col = im2col_nd(x, g)
    og, kg = g.c_out // g.group, g.c_in // g.group * g.kernel_count
    w2 = w.reshape(g.c_out, kg)
    out = np.empty((g.c_out, g.n * g.out_count), dtype=y.dtype)
    for k in range(g.group):
        np.matmul(w2[k * og:(k + 1) * og], col[k * kg:(k + 1) * kg], out=out[k * og:(k + 1) * og])
    yv = y.reshape(g.n, g.c_out, g.out_count)
    yv[...] = out.reshape(g.c_out, g.n, g.out_count).swapaxes(0, 1)
    if b is not None:
        yv += b.reshape(1, g.c_out, 1)


def conv_nd_backward(x, w, dy, dx, dw, db, g: ConvNdGeometry) -> None:
    """db +=, dw +=, dx = of ``conv_nd_forward`` (None skips)."""
    dy3 = dy.reshape(g.n, g.c_out, g.out_count)
    if db is not None:
        db.reshape(-1)[...] += dy3.sum(axis=(0, 2), dtype=np.float64).astype(db.dtype)
    if dw is None and dx is None:
        return
    dyc = np.ascontiguousarray(dy3.swapaxes(0, 1)).reshape(g.c_out, -1)
    og, kg = g.c_out // g.group, g.c_in // g.group * g.kernel_count
    if dw is not None:
        col = im2col_nd(x, g)
        dw2 = dw.reshape(g.c_out, kg)
        for k in range(g.group):
            dw2[k * og:(k + 1) * og] += dyc[k * og:(k + 1) * og] @ col[k * kg:(k + 1) * kg].T
    if dx is not None:
        w2 = w.reshape(g.c_out, kg)
        col = np.empty((g.group * kg, dyc.shape[1]), dtype=dx.dtype)
        for k in range(g.group):
            np.matmul(w2[k * og:(k + 1) * og].T, dyc[k * og:(k + 1) * og], out=col[k * kg:(k + 1) * kg])
        col2im_nd(col, dx, g)


# ------------------------------------------------------------------------------ LSTM unit
def _sigmoid(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1)
    with np.errstate(over="ignore"):
        return one / (one + np.exp(-x))


def _lstm_gates(x: np.ndarray, cont: np.ndarray, d: int):
    """(i, f, o, g) of Caffe's LSTMUnit from the gate input x (N, 4D) and cont (N,)."""
    two, one = x.dtype.type(2), x.dtype.type(1)
    x = x.reshape(-1, 4 * d)
    k = cont.reshape(-1, 1)
    i = _sigmoid(x[:, :d])
    f = np.where(k == 0, x.dtype.type(0), k * _sigmoid(x[:, d:2 * d]))
    o = _sigmoid(x[:, 2 * d:3 * d])
    g = two * _sigmoid(two * x[:, 3 * d:]) - one
    return i, f, o, g


def lstm_unit_fwd(c_prev, x, cont, c, h) -> None:
    """c = f*c_prev + i*g, h = o*tanh(c) (Caffe's LSTMUnit forward)."""
    n = cont.size
    d = c_prev.size // n
    two, one = x.dtype.type(2), x.dtype.type(1)
    i, f, o, g = _lstm_gates(x, cont, d)
    cv = f * c_prev.reshape(n, d) + i * g
    c.reshape(n, d)[...] = cv
    h.reshape(n, d)[...] = o * (two * _sigmoid(two * cv) - one)


def lstm_unit_bwd(c_prev, x, cont, c, dc, dh, dc_prev, dx) -> None:
    """Caffe's LSTMUnit backward (see runner.backend.base)."""
    n = cont.size
    d = c_prev.size // n
    two, one = x.dtype.type(2), x.dtype.type(1)
    i, f, o, g = _lstm_gates(x, cont, d)
    t = two * _sigmoid(two * c.reshape(n, d)) - one
    dhv = dh.reshape(n, d)
    term = dc.reshape(n, d) + dhv * o * (one - t * t)
    dc_prev.reshape(n, d)[...] = term * f
    dxv = dx.reshape(n, 4 * d)
    dxv[:, :d] = term * g * i * (one - i)
    dxv[:, d:2 * d] = term * c_prev.reshape(n, d) * f * (one - f)
    dxv[:, 2 * d:3 * d] = dhv * t * o * (one - o)
    dxv[:, 3 * d:] = term * i * (one - g * g)
