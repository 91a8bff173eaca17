"""How a Solver runs its training net: one interface, two implementations.

The Solver calls only ``clear_param_diffs()``, ``forward_backward() -> loss`` and
``update(steps, rates, static)`` on its executor, and logs ``notes``; ``after_backward`` (None or a
callable taking a layer index) is called after each layer's backward has been issued. ``EagerExecutor`` (here)
runs the Net's own methods and each update step as it comes; the cuda backend's
``runner.backend.replay.NetReplay`` has the same methods and re-issues recorded launches instead.
``Backend.executor(net, replay)`` picks one, so the Solver never asks which backend it is on.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class EagerExecutor:
    """Runs everything as it comes (the cpu backend, or cuda with replay off)."""

    replays = False

    def __init__(self, net: Any):
        self.net = net
        self.notes: list[str] = []     # nothing is ever left eager: there is nothing to report
        self.after_backward: Callable[[int], None] | None = None

    def clear_param_diffs(self) -> None:
        """Zero every learnable parameter's diff."""
        self.net.clear_param_diffs()

    def forward_backward(self) -> float:
        """The net's forward and backward; returns the weighted loss."""
        return self.net.forward_backward(self.after_backward)

    def update(self, steps: Sequence[Callable[[], None]], rates: Sequence[float], static: Any) -> None:
        """Run each parameter's update step (``rates``/``static`` matter only to replay)."""
        for step in steps:
            step()
