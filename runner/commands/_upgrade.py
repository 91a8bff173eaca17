"""Caffe's proto upgrade tools, Caffe's argument order (input, output):

- ``nbcaffe upgrade_net_proto_text IN.prototxt OUT.prototxt``: a V0/V1 (or current) net prototxt
  rewritten in the current format (``layer`` entries, string types, ``param { lr_mult }``, an
  Input layer for legacy inputs, data transformations in ``transform_param``);
- ``nbcaffe upgrade_net_proto_binary IN.caffemodel OUT.caffemodel``: the same for a binary
  NetParameter (weights kept as they are);
- ``nbcaffe upgrade_solver_proto_text IN.prototxt OUT.prototxt``: ``solver_type`` enums become the
  ``type`` string (inline nets upgraded too).

A file already in the current format is written unchanged, with Caffe's log line saying so. The
upgrade rules are netdef.upgrade's; output is written to a temporary name, then renamed.
"""
from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="file in an old (or the current) format")
    p.add_argument("output", help="where to write the upgraded file")


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _upgrade(kind: str, args) -> int:
    from google.protobuf import text_format

    from netdef.prototxt import read_net, read_solver
    from netdef.weights import read_caffemodel
    from runner.solver.glog import GLog

    log = GLog()
    if kind == "net_proto_binary":
        old, new = read_caffemodel(args.input, upgrade=False), read_caffemodel(args.input)
    elif kind == "net_proto_text":
        old, new = read_net(args.input, upgrade=False), read_net(args.input)
    else:
        old, new = read_solver(args.input, upgrade=False), read_solver(args.input)
    if new == old:
        log(f"File already in latest proto format: {args.input}", severity="E")
    what = "SolverParameter" if kind.startswith("solver") else "NetParameter"
    if kind == "net_proto_binary":
        _write(args.output, new.SerializeToString())
        log(f"Wrote upgraded {what} binary proto to {args.output}")
    else:
        _write(args.output, text_format.MessageToString(new).encode())
        log(f"Wrote upgraded {what} text proto to {args.output}")
    return 0


def upgrade(kind: str, args) -> int:
    """Run the ``upgrade_<kind>`` tool (kind: net_proto_text, net_proto_binary, solver_proto_text)."""
    return _upgrade(kind, args)
