"""``nbcaffe draw NET [OUT] [-o OUT] [--rankdir LR] [--phase TRAIN|TEST|ALL]``: Caffe's
python/draw_net.py (``draw_net.py net.prototxt net.png``; ``-o`` works too).

The format follows OUT's extension: ``.dot``/``.gv`` write the Graphviz text; ``.png``, ``.svg``,
``.pdf`` (and jpg, gif, ps, eps) are rendered by Graphviz's ``dot`` program, which must be on
PATH (otherwise a one-line error says how to get it; nothing is written). Without OUT the dot
text goes to stdout. ``--rankdir`` (default LR) and ``--phase`` (default ALL: every layer) are
draw_net.py's; with a phase, blob shapes are added to the drawing when they can be computed
(``--input-shape`` for data sources that are not at hand). The drawing itself is
``runner.draw`` (Caffe's draw.py styles; pycaffe's caffe.draw uses it too).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NET", help="net prototxt (or solver: its train net)")
    parser.add_argument("output_file", metavar="OUT", nargs="?", default=None,
                        help="output file; the format follows the extension (.dot .png .svg .pdf)")
    parser.add_argument("-o", "--output", default=None, help="output file (same as OUT)")
    parser.add_argument("--rankdir", choices=["LR", "TB", "BT", "RL"], default="LR",
                        help="graph direction (draw_net.py's; default LR)")
    parser.add_argument("--phase", choices=["TRAIN", "TEST", "ALL"], type=str.upper, default="ALL",
                        help="which layers to draw, by their include/exclude phase (default ALL)")
    parser.add_argument("--stage", action="append", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--test-net", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                        help="shape of a data/input blob, for the shapes shown with --phase")


def _net_param(path: str):
    from netdef.prototxt import is_solver, read_net, read_solver, solver_nets
    if is_solver(path):
        return solver_nets(read_solver(path), path).train
    return read_net(path)


def _shapes(args):
    """Blob shapes for the chosen phase, or None when they need data that is not at hand."""
    from runner.commands.inspect import MissingSourceError, load
    if args.phase == "ALL":
        return None
    try:
        graph, _, _ = load(args)
    except MissingSourceError:
        return None
    return graph.blob_shapes


def run(args) -> int:
    from netdef.errors import CaffeError
    from runner.draw import dot_source, draw_net_to_file
    if args.output and args.output_file and args.output != args.output_file:
        raise CaffeError(f"draw: two outputs given ({args.output_file} and -o {args.output})")
    out = args.output or args.output_file
    net = _net_param(args.model)
    phase = None if args.phase == "ALL" else args.phase
    shapes = _shapes(args)
    if out is None:
        sys.stdout.write(dot_source(net, args.rankdir, phase, blob_shapes=shapes))
        return 0
    draw_net_to_file(net, out, args.rankdir, phase, blob_shapes=shapes)
    print(f"Drawing net to {out}")
    return 0
