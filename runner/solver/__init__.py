"""Caffe's solvers: the training loop (solver.py), lr policies (lr_policy.py), update rules
(updates.py), glog-style log lines (glog.py) and the log parser (parse_log.py).

    from runner.solver import Solver
    Solver("lenet_solver.prototxt", device="cpu").solve()
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "Solver":
        from runner.solver.solver import Solver
        return Solver
    raise AttributeError(name)
