"""nbcaffe runner: Blob, Net, layers, backends, solvers, data, CLI.

``from runner import Net`` is cheap: the Net (and numba-heavy backends) load on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Net", "Blob", "get_backend"]


def __getattr__(name: str) -> Any:
    if name == "Net":
        from runner.net import Net
        return Net
    if name == "Blob":
        from runner.blob import Blob
        return Blob
    if name == "get_backend":
        from runner.backend import get_backend
        return get_backend
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
