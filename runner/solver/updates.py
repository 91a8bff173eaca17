"""Caffe's six update rules as one table: for each solver type, the backend op that applies it,
how many history blobs it keeps per parameter, the solver constants it takes and the rate its op
is given. The ops themselves are backend methods (``runner.backend.base``: numpy on cpu,
``kernels.solver_update`` on cuda), each doing, for one parameter blob, Caffe's

    normalize:   diff *= 1 / iter_size
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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from netdef.errors import SolverError
from proto import caffe_pb2 as pb


def adam_rate(local_rate: float, p: pb.SolverParameter, t: int) -> float:
    """Adam's rate for step t = iter + 1: local_rate * sqrt(1 - beta2^t) / (1 - beta1^t), with
    float32 betas, std::pow in double and a float32 result, as Caffe's adam_solver.cpp."""
    b1, b2 = float(np.float32(p.momentum)), float(np.float32(p.momentum2))
    correction = np.float32(math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))
    return float(np.float32(np.float32(local_rate) * correction))


def _same_rate(local_rate: float, p: pb.SolverParameter, t: int) -> float:
    return local_rate


@dataclass(frozen=True)
class UpdateRule:
    """One update rule: ``op`` names the backend method, ``history`` the history blobs per
    parameter, ``constants(p)`` its keyword arguments from the SolverParameter, ``rate(local_rate,
    p, t)`` the rate it is given at step t (the one float a replayed update re-binds)."""
    op: str
    history: int
    constants: Callable[[pb.SolverParameter], dict[str, float]]
    rate: Callable[[float, pb.SolverParameter, int], float] = _same_rate


RULES: dict[str, UpdateRule] = {
    "SGD": UpdateRule("sgd_update", 1, lambda p: {"momentum": p.momentum}),
    "Nesterov": UpdateRule("nesterov_update", 1, lambda p: {"momentum": p.momentum}),
    "AdaGrad": UpdateRule("adagrad_update", 1, lambda p: {"delta": p.delta}),
    "RMSProp": UpdateRule("rmsprop_update", 1, lambda p: {"rms_decay": p.rms_decay, "delta": p.delta}),
    "AdaDelta": UpdateRule("adadelta_update", 2, lambda p: {"momentum": p.momentum, "delta": p.delta}),
    "Adam": UpdateRule("adam_update", 2, lambda p: {"beta1": p.momentum, "beta2": p.momentum2,
                                                    "eps_hat": p.delta}, adam_rate),
}
# upgraded solver_type enum value -> type string (SolverParameter.SolverType)
ENUM_TO_TYPE = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}


def solver_type(param: pb.SolverParameter) -> str:
    """The solver type name from ``type`` (case-insensitive Caffe names) or the legacy enum."""
    if param.HasField("type"):
        name = param.type
    elif param.HasField("solver_type"):
        name = ENUM_TO_TYPE[param.solver_type]
    else:
        name = "SGD"
    for known in RULES:
        if name.lower() == known.lower():
            return known
    raise SolverError(f"Unknown solver type: {name!r} (known: {', '.join(RULES)})")


def check_params(kind: str, param: pb.SolverParameter) -> None:
    """Caffe's constructor checks for each solver type."""
    if kind in ("AdaGrad",) and param.momentum != 0:
        raise SolverError("Momentum cannot be used with AdaGrad.")
    if kind == "RMSProp":
        if param.momentum != 0:
            raise SolverError("Momentum cannot be used with RMSProp.")
        if not (0 <= param.rms_decay <= 1):
            raise SolverError("rms_decay should lie between 0 and 1.")
    if param.regularization_type not in ("L1", "L2"):
        raise SolverError(f"Unknown regularization type: {param.regularization_type!r} (L2 or L1)")
