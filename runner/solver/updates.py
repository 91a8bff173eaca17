"""Caffe's update rules in numpy (float32, the same operation order as sgd_solver.cpp & co.).

For each learnable parameter, after the diffs of ``iter_size`` passes are accumulated and the
global gradient clip applied, the solver calls, in Caffe's order:

    normalize:   diff *= 1 / iter_size                       (only when iter_size > 1)
    regularize:  L2: diff += weight_decay*decay_mult * data;  L1: diff += ... * sign(data)
    rule:        diff = step(diff, history, local_rate = lr * lr_mult)   (below)
    apply:       data -= diff

Rules (``h``, ``h2`` are the history blobs; Adam's ``t = iter + 1``):

    SGD       h = local_rate*g + momentum*h;                           step = h
    Nesterov  h_old = h; h = momentum*h + local_rate*g;                step = (1+momentum)*h - momentum*h_old
    AdaGrad   h += g^2;                                                step = local_rate*g / (sqrt(h)+delta)
    RMSProp   h = rms_decay*h + (1-rms_decay)*g^2;                     step = local_rate*g / (sqrt(h)+delta)
    AdaDelta  h = momentum*h + (1-momentum)*g^2;  u = g * sqrt((h2+delta)/(h+delta));
              h2 = momentum*h2 + (1-momentum)*u^2;                     step = local_rate * u
    Adam      m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2   (b1 = momentum, b2 = momentum2)
              step = local_rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta)

AdaDelta and Adam keep two history blobs per parameter; in the .solverstate all first histories
come first, then all second ones (Caffe's ``history_`` layout).
"""
from __future__ import annotations

import math

import numpy as np

from netdef.errors import SolverError

F = np.float32

# type string -> number of history blobs per parameter
HISTORY_BLOBS = {"SGD": 1, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2, "Adam": 2}
# upgraded solver_type enum value -> type string (SolverParameter.SolverType)
ENUM_TO_TYPE = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}


def solver_type(param) -> str:
    """The solver type name from ``type`` (case-insensitive Caffe names) or the legacy enum."""
    if param.HasField("type"):
        name = param.type
    elif param.HasField("solver_type"):
        name = ENUM_TO_TYPE[param.solver_type]
    else:
        name = "SGD"
    for known in HISTORY_BLOBS:
        if name.lower() == known.lower():
            return known
    raise SolverError(f"Unknown solver type: {name!r} (known: {', '.join(HISTORY_BLOBS)})")


def check_params(kind: str, param) -> None:
    """Caffe's constructor checks for each solver type."""
    if kind in ("AdaGrad",) and param.momentum != 0:
        raise SolverError("Momentum cannot be used with AdaGrad.")
    if kind == "RMSProp":
        if param.momentum != 0:
            raise SolverError("Momentum cannot be used with RMSProp.")
        if not (0 <= param.rms_decay <= 1):
            raise SolverError("rms_decay should lie between 0 and 1.")


def normalize(diff: np.ndarray, iter_size: int) -> None:
    """diff *= 1/iter_size in place (Caffe's Normalize; a no-op for iter_size 1)."""
    if iter_size != 1:
        diff *= F(1.0 / iter_size)


def regularize(data: np.ndarray, diff: np.ndarray, local_decay: float, reg_type: str) -> None:
    """diff += local_decay * data (L2) or local_decay * sign(data) (L1), in place."""
    if local_decay == 0:
        return
    if reg_type == "L2":
        diff += F(local_decay) * data
    elif reg_type == "L1":
        diff += F(local_decay) * np.sign(data).astype(F)
    else:
        raise SolverError(f"Unknown regularization type: {reg_type!r} (L2 or L1)")


def compute_update(kind: str, diff: np.ndarray, hist: list[np.ndarray], local_rate: float, param,
                   it: int) -> None:
    """Turn the (normalized, regularized) gradient ``diff`` into the step to subtract, in place,
    updating the history arrays ``hist`` (1 or 2 of them, same shape as diff)."""
    lr = F(local_rate)
    if kind == "SGD":
        h = hist[0]
        h *= F(param.momentum)
        h += lr * diff
        diff[...] = h
    elif kind == "Nesterov":
        h = hist[0]
        old = h.copy()
        mom = F(param.momentum)
        h *= mom
        h += lr * diff
        diff[...] = (F(1) + mom) * h - mom * old
    elif kind == "AdaGrad":
        h = hist[0]
        h += diff * diff
        diff[...] = lr * (diff / (np.sqrt(h) + F(param.delta)))
    elif kind == "RMSProp":
        h = hist[0]
        d = F(param.rms_decay)
        h[...] = d * h + (F(1) - d) * (diff * diff)
        diff[...] = lr * (diff / (np.sqrt(h) + F(param.delta)))
    elif kind == "AdaDelta":
        h, h2 = hist
        mom = F(param.momentum)
        delta = F(param.delta)
        h[...] = (F(1) - mom) * (diff * diff) + mom * h
        u = np.sqrt((h2 + delta) / (h + delta))
        diff *= u
        h2[...] = (F(1) - mom) * (diff * diff) + mom * h2
        diff *= lr
    elif kind == "Adam":
        m, v = hist
        b1, b2 = F(param.momentum), F(param.momentum2)
        t = it + 1
        corr = F(math.sqrt(1.0 - math.pow(float(b2), t)) / (1.0 - math.pow(float(b1), t)))
        m[...] = (F(1) - b1) * diff + b1 * m
        v[...] = (F(1) - b2) * (diff * diff) + b2 * v
        diff[...] = (lr * corr) * (m / (np.sqrt(v) + F(param.delta)))
    else:
        raise SolverError(f"Unknown solver type: {kind!r}")
