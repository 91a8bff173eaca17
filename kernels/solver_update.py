"""Fused per-parameter-blob solver updates with Caffe's exact rules (SGD, Nesterov, AdaGrad,
RMSProp, AdaDelta, Adam): one launch per parameter blob per iteration.

Caffe's SGDSolver::ApplyUpdate runs, per learnable blob: Normalize (diff *= 1/iter_size),
Regularize, ComputeUpdateValue (history update, diff := the update value), and finally
Net::Update (w -= diff). Each kernel here does all of it for one element in registers, in Caffe's
CPU operation order (so float32 rounding follows Caffe's CPU path; the GPU may contract a multiply
and an add into an FMA: at most 1 ulp per step). Per element, with g = diff[i], w = w[i]:

  g = g * diff_scale                     Normalize (diff_scale = 1/iter_size, host-computed)
  g = local_decay * w + g                Regularize L2 (reg = REG_L2)
  g = local_decay * sign(w) + g          Regularize L1 (reg = REG_L1; sign(0) = 0)
  then the rule (lr = local_rate = rate * lr_mult; local_decay = weight_decay * decay_mult):
  SGD:      h = momentum*h + lr*g;  upd = h
  Nesterov: hp = h;  h = momentum*h + lr*g;  upd = (1+momentum)*h - momentum*hp
  AdaGrad:  h = h + g^2;  upd = lr * (g / (sqrt(h) + delta))
  RMSProp:  h = rms_decay*h + (1-rms_decay)*g^2;  upd = lr * (g / (sqrt(h) + delta))
  AdaDelta: h = momentum*h + (1-momentum)*g^2;  u = g * sqrt((h2 + delta) / (h + delta));
            h2 = momentum*h2 + (1-momentum)*u^2;  upd = lr * u
  Adam:     m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2;
            upd = rate * (m / (sqrt(v) + eps_hat)), rate = lr * correction,
            correction = sqrt(1 - beta2^t) / (1 - beta1^t), t = iter + 1 (computed on the host
            by the caller)
  diff[i] = upd;  w[i] = w - upd         (Caffe leaves the update value in the diff)

History buffers are Caffe's solverstate history blobs: SGD/Nesterov/AdaGrad/RMSProp: history[i];
AdaDelta: history[i] (E[g^2]) and history[n_params + i] (E[dx^2]); Adam: history[i] (m) and
history[n_params + i] (v). So a resumed .solverstate continues exactly.

Shapes: w, diff and each history buffer have the same number of elements (any shape, flattened).
Scalars are float32 kernel arguments computed by the host (learning rate policy, corrections).

Versions: v1 only: one thread per element in a grid-stride loop (memory bound: reads w, diff and the
history once, writes them once).

Launch geometry: 1-D grid from ``kernels._launch.grid_1d(n)``, cached per n.

Global gradient clipping (Caffe's clip_gradients) uses ``kernels.reduce.sumsq_total`` over all
diffs (one host read) and ``kernels.fill.scal`` on each diff.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import grid_1d
from kernels.fill import flat

REG_NONE = 0   # local_decay == 0: Caffe skips Regularize
REG_L2 = 1
REG_L1 = 2

F1 = float32[::1]


@cuda.jit(device=True, inline=True)
def _grad(g, w, i, reg, decay, diff_scale):
    """Normalized, regularized gradient of element i (Caffe's Normalize then Regularize)."""
    gi = g[i] * diff_scale
    wi = w[i]
    if reg == REG_L2:
        gi = decay * wi + gi
    elif reg == REG_L1:
        sign = float32(0)
        if wi > float32(0):
            sign = float32(1)
        elif wi < float32(0):
            sign = float32(-1)
        gi = decay * sign + gi
    return gi


@cuda.jit
def sgd_update_v1(w, g, h, n, local_rate, momentum, reg, decay, diff_scale):
    """SGD with momentum: h = momentum*h + lr*g; diff = h; w -= h."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        hi = momentum * h[i] + local_rate * gi
        h[i] = hi
        g[i] = hi
        w[i] = w[i] - hi


@cuda.jit
def nesterov_update_v1(w, g, h, n, local_rate, momentum, reg, decay, diff_scale):
    """Nesterov: h_new = momentum*h + lr*g; diff = (1+momentum)*h_new - momentum*h; w -= diff."""
    one_plus_momentum = float32(1) + momentum
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        h_prev = h[i]
        h_new = momentum * h_prev + local_rate * gi
        h[i] = h_new
        upd = -momentum * h_prev + one_plus_momentum * h_new
        g[i] = upd
        w[i] = w[i] - upd


@cuda.jit
def adagrad_update_v1(w, g, h, n, local_rate, delta, reg, decay, diff_scale):
    """AdaGrad: h += g^2; diff = lr * (g / (sqrt(h) + delta)); w -= diff."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        hi = gi * gi + h[i]
        h[i] = hi
        upd = local_rate * (gi / (math.sqrt(hi) + delta))
        g[i] = upd
        w[i] = w[i] - upd


@cuda.jit
def rmsprop_update_v1(w, g, h, n, local_rate, rms_decay, delta, reg, decay, diff_scale):
    """RMSProp: h = rms_decay*h + (1-rms_decay)*g^2; diff = lr * (g / (sqrt(h) + delta))."""
    one_minus_decay = float32(1) - rms_decay
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        hi = rms_decay * h[i] + one_minus_decay * (gi * gi)
        h[i] = hi
        upd = local_rate * (gi / (math.sqrt(hi) + delta))
        g[i] = upd
        w[i] = w[i] - upd


@cuda.jit
def adadelta_update_v1(w, g, h, h2, n, local_rate, momentum, delta, reg, decay, diff_scale):
    """AdaDelta: h = m*h + (1-m)*g^2; u = g*sqrt((h2+delta)/(h+delta)); h2 = m*h2 + (1-m)*u^2;
    diff = lr * u."""
    one_minus_momentum = float32(1) - momentum
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        hi = momentum * h[i] + one_minus_momentum * (gi * gi)
        h[i] = hi
        ui = gi * math.sqrt((delta + h2[i]) / (delta + hi))
        h2[i] = momentum * h2[i] + one_minus_momentum * (ui * ui)
        upd = local_rate * ui
        g[i] = upd
        w[i] = w[i] - upd


@cuda.jit
def adam_update_v1(w, g, m, v, n, corrected_rate, beta1, beta2, eps_hat, reg, decay, diff_scale):
    """Adam: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; diff = rate * (m / (sqrt(v) + eps_hat)),
    rate = local_rate * correction (host)."""
    one_minus_beta1 = float32(1) - beta1
    one_minus_beta2 = float32(1) - beta2
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = _grad(g, w, i, reg, decay, diff_scale)
        mi = beta1 * m[i] + one_minus_beta1 * gi
        m[i] = mi
        vi = beta2 * v[i] + one_minus_beta2 * (gi * gi)
        v[i] = vi
        upd = corrected_rate * (mi / (math.sqrt(vi) + eps_hat))
        g[i] = upd
        w[i] = w[i] - upd


_F = float32
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "sgd_update_v1": (sgd_update_v1, [void(F1, F1, F1, _I, _F, _F, _I, _F, _F)]),
    "nesterov_update_v1": (nesterov_update_v1, [void(F1, F1, F1, _I, _F, _F, _I, _F, _F)]),
    "adagrad_update_v1": (adagrad_update_v1, [void(F1, F1, F1, _I, _F, _F, _I, _F, _F)]),
    "rmsprop_update_v1": (rmsprop_update_v1, [void(F1, F1, F1, _I, _F, _F, _F, _I, _F, _F)]),
    "adadelta_update_v1": (adadelta_update_v1,
                           [void(F1, F1, F1, F1, _I, _F, _F, _F, _I, _F, _F)]),
    "adam_update_v1": (adam_update_v1, [void(F1, F1, F1, F1, _I, _F, _F, _F, _F, _I, _F, _F)]),
}


def _reg(regularization: str, local_decay: float) -> tuple[int, np.float32]:
    """Kernel regularization code and decay; local_decay == 0 skips it (as Caffe's ``if``)."""
    decay = np.float32(local_decay)
    if decay == 0:
        return REG_NONE, decay
    if regularization == "L2":
        return REG_L2, decay
    if regularization == "L1":
        return REG_L1, decay
    raise ValueError(f"Unknown regularization type: {regularization!r} (Caffe knows L1 and L2)")


def _arrays(name: str, *arrays: Any) -> list[Any]:
    flats = [flat(a) for a in arrays]
    for a in flats:
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected float32 arrays, got {a.dtype}")
        if a.size != flats[0].size:
            raise ValueError(f"{name}: weight, diff and history differ in size "
                             f"({[x.size for x in flats]})")
    return flats


def sgd_update(w: Any, diff: Any, history: Any, local_rate: float, momentum: float,
               local_decay: float = 0.0, regularization: str = "L2", diff_scale: float = 1.0) -> None:
    """Caffe SGD step on one parameter blob (w, diff, history: same size): diff becomes the update
    value, history the momentum buffer, w -= update."""
    wf, gf, hf = _arrays("sgd_update", w, diff, history)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    sgd_update_v1[blocks, threads](wf, gf, hf, n, np.float32(local_rate), np.float32(momentum),
                                   reg, decay, np.float32(diff_scale))


def nesterov_update(w: Any, diff: Any, history: Any, local_rate: float, momentum: float,
                    local_decay: float = 0.0, regularization: str = "L2",
                    diff_scale: float = 1.0) -> None:
    """Caffe Nesterov step on one parameter blob (same-size w, diff, history)."""
    wf, gf, hf = _arrays("nesterov_update", w, diff, history)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    nesterov_update_v1[blocks, threads](wf, gf, hf, n, np.float32(local_rate), np.float32(momentum),
                                        reg, decay, np.float32(diff_scale))


def adagrad_update(w: Any, diff: Any, history: Any, local_rate: float, delta: float,
                   local_decay: float = 0.0, regularization: str = "L2",
                   diff_scale: float = 1.0) -> None:
    """Caffe AdaGrad step on one parameter blob (history = sum of squared gradients)."""
    wf, gf, hf = _arrays("adagrad_update", w, diff, history)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    adagrad_update_v1[blocks, threads](wf, gf, hf, n, np.float32(local_rate), np.float32(delta),
                                       reg, decay, np.float32(diff_scale))


def rmsprop_update(w: Any, diff: Any, history: Any, local_rate: float, rms_decay: float,
                   delta: float, local_decay: float = 0.0, regularization: str = "L2",
                   diff_scale: float = 1.0) -> None:
    """Caffe RMSProp step on one parameter blob (history = running mean of squared gradients)."""
    wf, gf, hf = _arrays("rmsprop_update", w, diff, history)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    rmsprop_update_v1[blocks, threads](wf, gf, hf, n, np.float32(local_rate), np.float32(rms_decay),
                                       np.float32(delta), reg, decay, np.float32(diff_scale))


def adadelta_update(w: Any, diff: Any, history: Any, update_history: Any, local_rate: float,
                    momentum: float, delta: float, local_decay: float = 0.0,
                    regularization: str = "L2", diff_scale: float = 1.0) -> None:
    """Caffe AdaDelta step on one parameter blob: ``history`` = E[g^2] (Caffe's history_[i]),
    ``update_history`` = E[dx^2] (history_[n_params + i])."""
    wf, gf, hf, h2f = _arrays("adadelta_update", w, diff, history, update_history)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    adadelta_update_v1[blocks, threads](wf, gf, hf, h2f, n, np.float32(local_rate),
                                        np.float32(momentum), np.float32(delta), reg, decay,
                                        np.float32(diff_scale))


def adam_update(w: Any, diff: Any, m: Any, v: Any, rate: float, beta1: float, beta2: float,
                eps_hat: float, local_decay: float = 0.0, regularization: str = "L2",
                diff_scale: float = 1.0) -> None:
    """Caffe Adam step on one parameter blob: ``m`` = history_[i], ``v`` = history_[n_params + i];
    ``rate`` = the step's bias-corrected rate local_rate * sqrt(1 - beta2^t) / (1 - beta1^t)
    (computed on the host by the solver's rule table); beta1 = solver momentum, beta2 =
    momentum2, eps_hat = delta."""
    wf, gf, mf, vf = _arrays("adam_update", w, diff, m, v)
    reg, decay = _reg(regularization, local_decay)
    n = wf.size
    blocks, threads = grid_1d(n)
    adam_update_v1[blocks, threads](wf, gf, mf, vf, n, np.float32(rate), np.float32(beta1),
                                    np.float32(beta2), np.float32(eps_hat), reg, decay,
                                    np.float32(diff_scale))
