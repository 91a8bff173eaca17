"""``nbcaffe`` command line: a table of verbs, each in its own module under runner/commands/.

Accepts Caffe's own flag spellings: ``-solver x``, ``--solver=x``, ``-gpu 0``, ``-weights w``,
``-iterations 50``; and Caffe's verb spellings (``device_query`` == ``device-query``).
Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from netdef.errors import CaffeError

# verb -> (module under runner.commands, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "train": ("train", "train or fine-tune a model from a solver prototxt"),
    "test": ("test", "score a model: run the test phase for -iterations batches"),
    "time": ("time", "benchmark per-layer forward/backward time"),
    "device-query": ("device_query", "show the CUDA device (or the CPU) nbcaffe would use"),
    "inspect": ("inspect", "print a net's layers, shapes, parameter counts and FLOPs"),
    "convert-mnist": ("convert_mnist", "convert MNIST idx files to a Caffe LMDB"),
    "convert-imageset": ("convert_imageset", "convert an image list to a Caffe LMDB"),
    "compute-mean": ("compute_mean", "compute the mean image of an LMDB as .binaryproto"),
    "data": ("data", "fetch and prepare example data sets (mnist)"),
    "plot-log": ("plot_log", "plot loss/accuracy curves of a training log to PNG"),
    "draw": ("draw", "write a net's graph as Graphviz dot"),
}
ALIASES = {v.replace("-", "_"): v for v in VERBS}


def normalize_argv(argv: list[str]) -> list[str]:
    """Turn Caffe/gflags spellings into argparse ones: ``-solver`` -> ``--solver``,
    ``-solver=x`` -> ``--solver=x``. Single-letter flags and negative numbers are left alone."""
    out = []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and len(a) > 2 and a[1].isalpha():
            a = "-" + a
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            a = name.replace("_", "-") + eq + val
        out.append(a)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbcaffe", description="Caffe-compatible CNN framework")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb, (module, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text)
        try:
            mod = importlib.import_module(f"runner.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"runner.commands.{module}":
                raise
            p.set_defaults(_missing=verb)
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ALIASES:
        argv[0] = ALIASES[argv[0]]
    parser = build_parser()
    args = parser.parse_args(normalize_argv(argv))
    if args.verb is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"nbcaffe: '{args._missing}' is not available in this build", file=sys.stderr)
        return 2
    import numpy as np
    try:
        # numpy's overflow/invalid RuntimeWarnings are not the user's messages: a diverging run
        # is reported by the solver's loss check, in one line
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return int(args._run(args) or 0)
    except CaffeError as e:
        print(f"nbcaffe: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbcaffe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
