"""LSTMUnit (Caffe 1.0's LSTMUnitLayer): one LSTM time step's gate nonlinearities and cell update,
the step Caffe's unrolled LSTM runs once per time step.

Math (per stream n and cell d, D cells; the gate input X (N, 4D) holds the pre-activations
[i', f', o', g'] in that order):

    i = sigmoid(i'),  f = 0 if cont[n] == 0 else cont[n] * sigmoid(f'),  o = sigmoid(o'),
    g = tanh(g'),     c = f * c_prev + i * g,    h = o * tanh(c)

with Caffe's float formulas sigmoid(x) = 1 / (1 + exp(-x)) and tanh(x) = 2 * sigmoid(2x) - 1.
Backward (Caffe's LSTMUnitLayer::Backward, both bottom gradients written ``=``):

    t = tanh(c),  dc_term = dc + dh * o * (1 - t^2),  dc_prev = dc_term * f,
    di' = dc_term * g * i * (1 - i),  df' = dc_term * c_prev * f * (1 - f),
    do' = dh * t * o * (1 - o),       dg' = dc_term * i * (1 - g^2)

(f includes the cont factor, exactly as Caffe computes it; cont is 0 or 1 in practice).

Shapes: c_prev, c, h, dc, dh, dc_prev (N, D); X, dX (N, 4D); cont (N,); float32 C-contiguous
(Caffe's (1, N, D) blobs viewed without the time axis).

Versions:
    lstm_unit_fwd_v1   one thread per (n, d): 4 gate loads, c and h written
    lstm_unit_bwd_v1   one thread per (n, d): recomputes the gates from X, writes dc_prev and the
                       4 gate gradients

Launch: 1-D grid-stride loops over N*D (``kernels._launch.launch_1d``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._index import flat_checked
from kernels._launch import as_device, launch_1d

_ONE = float32(1.0)
_TWO = float32(2.0)
_ZERO = float32(0.0)


@cuda.jit(device=True, inline=True)
def _sigmoid(x):
    """Caffe's 1 / (1 + exp(-x)) in float32."""
    return _ONE / (_ONE + math.exp(-x))


@cuda.jit(device=True, inline=True)
def _tanh(x):
    """Caffe's LSTMUnit tanh: 2 * sigmoid(2x) - 1."""
    return _TWO * _sigmoid(_TWO * x) - _ONE


@cuda.jit
def lstm_unit_fwd_v1(c_prev, X, cont, C, H, N, D):
    """C, H (N, D) flat from c_prev (N, D), X (N, 4D), cont (N,) by Caffe's LSTMUnit rules."""
    for e in range(cuda.grid(1), N * D, cuda.gridsize(1)):
        n = e // D
        d = e - n * D
        base = n * 4 * D + d
        k = cont[n]
        i = _sigmoid(X[base])
        f = _ZERO if k == _ZERO else k * _sigmoid(X[base + D])
        o = _sigmoid(X[base + 2 * D])
        g = _tanh(X[base + 3 * D])
        c = f * c_prev[e] + i * g
        C[e] = c
        H[e] = o * _tanh(c)


@cuda.jit
def lstm_unit_bwd_v1(c_prev, X, cont, C, dC, dH, dc_prev, dX, N, D):
    """dc_prev (N, D) and dX (N, 4D) flat from the top gradients dC, dH (Caffe's backward)."""
    for e in range(cuda.grid(1), N * D, cuda.gridsize(1)):
        n = e // D
        d = e - n * D
        base = n * 4 * D + d
        k = cont[n]
        i = _sigmoid(X[base])
        f = _ZERO if k == _ZERO else k * _sigmoid(X[base + D])
        o = _sigmoid(X[base + 2 * D])
        g = _tanh(X[base + 3 * D])
        t = _tanh(C[e])
        dh = dH[e]
        term = dC[e] + dh * o * (_ONE - t * t)
        dc_prev[e] = term * f
        dX[base] = term * g * i * (_ONE - i)
        dX[base + D] = term * c_prev[e] * f * (_ONE - f)
        dX[base + 2 * D] = dh * t * o * (_ONE - o)
        dX[base + 3 * D] = term * i * (_ONE - g * g)


_F = float32[::1]

KERNELS: dict[str, tuple[Any, list]] = {
    "lstm_unit_fwd_v1": (lstm_unit_fwd_v1, [void(_F, _F, _F, _F, _F, int64, int64)]),
    "lstm_unit_bwd_v1": (lstm_unit_bwd_v1, [void(_F, _F, _F, _F, _F, _F, _F, _F, int64, int64)]),
}


def _dims(c_prev: Any, cont: Any) -> tuple[int, int]:
    n = int(as_device(cont).size)
    size = int(as_device(c_prev).size)
    if n == 0 or size % n:
        raise ValueError(f"lstm_unit: c_prev of {size} elements does not split into {n} streams")
    return n, size // n


def lstm_unit_fwd(c_prev: Any, x: Any, cont: Any, c: Any, h: Any) -> None:
    """c, h (N, D) = Caffe's LSTMUnit step of c_prev (N, D), gate input x (N, 4D), cont (N,)."""
    N, D = _dims(c_prev, cont)
    who = "lstm_unit_fwd"
    args = [flat_checked(who, c_prev, N * D), flat_checked(who, x, 4 * N * D),
            flat_checked(who, cont, N), flat_checked(who, c, N * D), flat_checked(who, h, N * D)]
    launch_1d(lstm_unit_fwd_v1, N * D, *args, np.int64(N), np.int64(D))


def lstm_unit_bwd(c_prev: Any, x: Any, cont: Any, c: Any, dc: Any, dh: Any, dc_prev: Any,
                  dx: Any) -> None:
    """dc_prev (N, D) and dx (N, 4D) (both written) from the top gradients dc, dh (N, D); c is the
    forward's cell output."""
    N, D = _dims(c_prev, cont)
    who = "lstm_unit_bwd"
    args = [flat_checked(who, c_prev, N * D), flat_checked(who, x, 4 * N * D),
            flat_checked(who, cont, N), flat_checked(who, c, N * D), flat_checked(who, dc, N * D),
            flat_checked(who, dh, N * D), flat_checked(who, dc_prev, N * D),
            flat_checked(who, dx, 4 * N * D)]
    launch_1d(lstm_unit_bwd_v1, N * D, *args, np.int64(N), np.int64(D))
