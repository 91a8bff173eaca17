"""Plain numpy unrollings of Caffe's documented recurrent equations (lstm_layer.cpp,
rnn_layer.cpp, lstm_unit_layer.cpp comments), float64, written step by step from the equations;
never imports the code under test.

LSTM, per step t with cont_t (N,) and h_conted = cont_t * h_{t-1}:
    [i', f', o', g'] = W_hc h_conted + W_xc x_t + b_c (+ W_xc_static x_static)
    i = sig(i'), f = sig(f'), o = sig(o'), g = tanh(g')
    c_t = cont_t * f * c_{t-1} + i * g,     h_t = o * tanh(c_t)
RNN:
    h_t = tanh(W_hh h_conted + W_xh x_t + b_h (+ W_xh_static x_static)),  o_t = tanh(W_ho h_t + b_o)
"""
from __future__ import annotations

import numpy as np


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def lstm_unit_ref(c_prev, gates, cont):
    """(c, h) of one LSTMUnit step: c_prev (N, D), gates (N, 4D), cont (N,)."""
    d = c_prev.shape[-1]
    g4 = gates.reshape(-1, 4 * d).astype(np.float64)
    k = np.asarray(cont, np.float64).reshape(-1, 1)
    i, f, o, g = _sig(g4[:, :d]), k * _sig(g4[:, d:2 * d]), _sig(g4[:, 2 * d:3 * d]), np.tanh(g4[:, 3 * d:])
    c = f * c_prev.reshape(-1, d) + i * g
    return c, o * np.tanh(c)


def lstm_ref(x, cont, W_xc, b_c, W_hc, x_static=None, W_xc_static=None, h0=None, c0=None):
    """(h (T, N, H), h_T (N, H), c_T (N, H)) for x (T, N, ...), cont (T, N)."""
    T, N = x.shape[:2]
    H = W_hc.shape[1]
    xs = x.reshape(T, N, -1).astype(np.float64)
    h = np.zeros((N, H)) if h0 is None else np.asarray(h0, np.float64).reshape(N, H)
    c = np.zeros((N, H)) if c0 is None else np.asarray(c0, np.float64).reshape(N, H)
    static = 0.0 if x_static is None else x_static.reshape(N, -1) @ W_xc_static.T
    out = []
    for t in range(T):
        k = np.asarray(cont[t], np.float64).reshape(N, 1)
        pre = (k * h) @ W_hc.T + xs[t] @ W_xc.T + b_c + static
        c, h = lstm_unit_ref(c, pre, cont[t])
        out.append(h)
    return np.stack(out), h, c


def rnn_ref(x, cont, W_xh, b_h, W_hh, W_ho, b_o, x_static=None, W_xh_static=None, h0=None):
    """(o (T, N, H), h_T (N, H)) for x (T, N, ...), cont (T, N)."""
    T, N = x.shape[:2]
    H = W_hh.shape[0]
    xs = x.reshape(T, N, -1).astype(np.float64)
    h = np.zeros((N, H)) if h0 is None else np.asarray(h0, np.float64).reshape(N, H)
    static = 0.0 if x_static is None else x_static.reshape(N, -1) @ W_xh_static.T
    out = []
    for t in range(T):
        k = np.asarray(cont[t], np.float64).reshape(N, 1)
        h = np.tanh((k * h) @ W_hh.T + xs[t] @ W_xh.T + b_h + static)
        out.append(np.tanh(h @ W_ho.T + b_o))
    return np.stack(out), h


def lstm_unit_bwd_ref(c_prev, gates, cont, dc, dh):
    """(dc_prev (N, D), dgates (N, 4D)) of Caffe's LSTMUnit backward (lstm_unit_layer.cpp):
    t = tanh(c), dc_term = dc + dh*o*(1 - t^2), dc_prev = dc_term*f, di' = dc_term*g*i(1-i),
    df' = dc_term*c_prev*f(1-f), do' = dh*t*o(1-o), dg' = dc_term*i(1-g^2), f = cont*sig(f')."""
    d = c_prev.shape[-1]
    g4 = gates.reshape(-1, 4 * d).astype(np.float64)
    k = np.asarray(cont, np.float64).reshape(-1, 1)
    i, f, o, g = _sig(g4[:, :d]), k * _sig(g4[:, d:2 * d]), _sig(g4[:, 2 * d:3 * d]), np.tanh(g4[:, 3 * d:])
    cp = c_prev.reshape(-1, d).astype(np.float64)
    t = np.tanh(f * cp + i * g)
    dh = dh.reshape(-1, d)
    term = dc.reshape(-1, d) + dh * o * (1 - t * t)
    dgates = np.concatenate([term * g * i * (1 - i), term * cp * f * (1 - f), dh * t * o * (1 - o),
                             term * i * (1 - g * g)], axis=1)
    return term * f, dgates
