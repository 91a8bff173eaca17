"""``nbcaffe export-onnx MODEL [-weights W.caffemodel] -o model.onnx``: one checked ONNX model.

    nbcaffe export-onnx deploy.prototxt -weights w.caffemodel -o model.onnx
    nbcaffe export-onnx train_val.prototxt -weights w.caffemodel -o model.onnx -phase TEST \\
        --input-shape data=1,3,227,227 --batch 8 --opset 21

The net is built for ``-phase`` (default TEST) and ``-stage`` / ``-level`` like ``nbcaffe test``;
data layers become graph inputs of their tops' shapes (read from their sources when they exist,
else given with ``--input-shape BLOB=N,C,H,W``), loss and metric layers are dropped (a note says
so), ``--batch dynamic`` (default) gives every input a symbolic first axis ``batch``, ``--batch
N`` fixes it. Layers that ONNX cannot express exactly stop the export with a one-line error
naming the layer and why. The file is written to ``<out>.tmp`` and renamed.
"""
from __future__ import annotations

import argparse
import sys

from runner.commands._common import add_state_flags, stages_of


def _batch(value: str) -> int | str:
    if value.lower() == "dynamic":
        return "dynamic"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a batch size >= 1 or 'dynamic', got {value!r}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="net prototxt (deploy, or train_val with -phase)")
    p.add_argument("--weights", default="",
                   help="trained .caffemodel (comma-separated: copied in order, like Caffe's); "
                   "without it the parameters are the fillers' initial values (a note says so)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=19, help="ONNX opset, 19 or newer (default 19)")
    p.add_argument("--batch", type=_batch, default="dynamic", metavar="N|dynamic",
                   help="fixed batch size, or 'dynamic' (default): a symbolic first axis")
    p.add_argument("--phase", default="TEST", choices=("TRAIN", "TEST"), type=str.upper)
    add_state_flags(p)
    p.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                   help="shape of a top of a data layer whose source is absent, e.g. "
                   "data=1,3,227,227 and label=1 (repeatable)")


def _fmt(shape: list) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def export_net_for(model: str, phase: str = "TEST", stages: tuple[str, ...] = (), level: int = 0,
                   input_shape: list[str] | None = None, weights: list[str] = ()):
    """The runner Net ``nbcaffe export-onnx`` exports: ``model`` for the NetState, data layers that
    read files turned into Input layers of their shapes (from the sources, or ``input_shape``
    items ``BLOB=N,C,H,W``), ``weights`` copied in order. Refused layer types fail first."""
    from argparse import Namespace

    from netdef.graph import filter_layers, net_state
    from netdef.prototxt import is_solver, read_net
    from runner.commands.inspect import load
    from runner.net import Net
    from runner.onnx_export.export import check_refused
    from runner.onnx_export.plan import data_as_inputs

    if not is_solver(model):
        param = read_net(model)
        check_refused(filter_layers(param, net_state(param, phase, stages, level)))
    graph, net_param, _ = load(Namespace(model=model, phase=phase, stage=list(stages), level=level,
                                         test_net=0, input_shape=list(input_shape or [])))
    net = Net(data_as_inputs(net_param, graph), phase=phase, stages=stages, level=level)
    for w in weights:
        net.copy_from(w)
    return net


def run(args) -> int:
    net = export_net_for(args.model, args.phase, stages_of(args), args.level, args.input_shape,
                         [w for w in args.weights.split(",") if w])
    info = net.to_onnx(args.output, opset=args.opset, batch=args.batch)
    if not args.weights and any(layer.blobs for layer in net.layers):
        info.notes.insert(0, "no -weights given: the parameters are the fillers' initial values")
    for note in info.notes:
        print(f"nbcaffe: note: {note}", file=sys.stderr)
    ins = ", ".join(f"{n} {_fmt(s)}" for n, s in info.inputs.items()) or "none"
    outs = ", ".join(f"{n} {_fmt(s)}" for n, s in info.outputs.items())
    print(f"wrote {args.output}: ONNX opset {info.opset}; inputs {ins}; outputs {outs}")
    return 0
