"""``nbcaffe upgrade_net_proto_binary IN OUT``: Caffe's tools/upgrade_net_proto_binary: a V0/V1 binary
NetParameter (.caffemodel) rewritten in the current format (runner/commands/_upgrade.py)."""
from __future__ import annotations

from runner.commands._upgrade import add_arguments, upgrade

__all__ = ["add_arguments", "run"]


def run(args) -> int:
    return upgrade("net_proto_binary", args)
