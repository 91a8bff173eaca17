"""``nbcaffe upgrade_solver_proto_text IN OUT``: Caffe's tools/upgrade_solver_proto_text: ``solver_type``
enums rewritten as ``type`` strings (runner/commands/_upgrade.py)."""
from __future__ import annotations

from runner.commands._upgrade import add_arguments, upgrade

__all__ = ["add_arguments", "run"]


def run(args) -> int:
    return upgrade("solver_proto_text", args)
