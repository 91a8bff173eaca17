"""Caffe's learning-rate policies (SGDSolver::GetLearningRate), one function of the iteration.

    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ (-power)
    multistep  base_lr * gamma ^ current_step  (current_step advances by at most one per call,
               when iter >= stepvalue[current_step] -- Caffe's ``if``, not ``while``)
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))
"""
from __future__ import annotations

import math

from netdef.errors import SolverError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


class LearningRate:
    """Stateful lr schedule (``current_step`` is part of the solver state, as in Caffe)."""

    def __init__(self, param, log=None):
        """``param``: caffe_pb2.SolverParameter; ``log``: callable(str) for MultiStep status lines."""
        self.p = param
        self.policy = param.lr_policy or ""
        self.current_step = 0
        self.log = log
        if self.policy not in POLICIES:
            raise SolverError(f"Unknown learning rate policy: {self.policy!r} (one of {', '.join(POLICIES)})")
        if self.policy in ("step",) and param.stepsize <= 0:
            raise SolverError("lr_policy 'step' needs stepsize > 0")
        if self.policy == "poly" and param.max_iter <= 0:
            raise SolverError("lr_policy 'poly' needs max_iter > 0")
        if self.policy == "multistep":
            sv = list(param.stepvalue)
            if any(b <= a for a, b in zip(sv, sv[1:])):
                raise SolverError(f"multistep stepvalue must increase, got {sv}")

    def __call__(self, it: int) -> float:
        """Learning rate at iteration ``it`` (float32-rounded like Caffe's Dtype rate)."""
        p = self.p
        base = float(p.base_lr)
        pol = self.policy
        if pol == "fixed":
            rate = base
        elif pol == "step":
            self.current_step = it // p.stepsize
            rate = base * math.pow(p.gamma, self.current_step)
        elif pol == "exp":
            rate = base * math.pow(p.gamma, it)
        elif pol == "inv":
            rate = base * math.pow(1.0 + p.gamma * it, -p.power)
        elif pol == "multistep":
            if self.current_step < len(p.stepvalue) and it >= p.stepvalue[self.current_step]:
                self.current_step += 1
                if self.log:
                    self.log(f"MultiStep Status: Iteration {it}, step = {self.current_step}")
            rate = base * math.pow(p.gamma, self.current_step)
        elif pol == "poly":
            rate = base * math.pow(1.0 - it / p.max_iter, p.power)
        else:  # sigmoid
            rate = base * (1.0 / (1.0 + math.exp(-p.gamma * (it - p.stepsize))))
        import numpy as np
        return float(np.float32(rate))
