"""``nbcaffe`` command line: a table of verbs, each in its own module under runner/commands/.

Accepts Caffe's own flag spellings: ``-solver x``, ``--solver=x``, ``-gpu 0``, ``-weights w``,
``-iterations 50``, gflags booleans (``-shuffle``, ``-shuffle=true``, ``-gray=false``,
``-noshuffle``); and Caffe's verb and tool spellings (``device_query`` == ``device-query``,
``compute_image_mean`` == ``compute-mean``).
Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import runner.registry  # noqa: F401 -- unknown-type errors list the types that run
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
    "draw": ("draw", "write a net's graph as Graphviz dot (or a picture, with Graphviz)"),
    "extract-features": ("extract_features", "write blobs of a trained net, batch by batch, to "
                                             "databases (Caffe's extract_features)"),
    "upgrade-net-proto-text": ("upgrade_net_proto_text", "rewrite a legacy net prototxt in the "
                                                         "current format"),
    "upgrade-net-proto-binary": ("upgrade_net_proto_binary", "rewrite a legacy binary net "
                                                             "(.caffemodel) in the current format"),
    "upgrade-solver-proto-text": ("upgrade_solver_proto_text", "rewrite a legacy solver prototxt "
                                                               "in the current format"),
    "export-onnx": ("export_onnx", "export a net and its weights as one ONNX model"),
}
ALIASES = {v.replace("-", "_"): v for v in VERBS}
# the names of Caffe's own tools (tools/*.cpp, examples/mnist/convert_mnist_data.cpp)
ALIASES.update({"compute_image_mean": "compute-mean", "convert_mnist_data": "convert-mnist"})

_GFLAGS_BOOL = {"true": True, "t": True, "yes": True, "y": True, "1": True,
                "false": False, "f": False, "no": False, "n": False, "0": False}


def normalize_argv(argv: list[str], bool_flags: frozenset[str] = frozenset()) -> list[str]:
    """Turn Caffe/gflags spellings into argparse ones: ``-solver`` -> ``--solver``,
    ``-solver=x`` -> ``--solver=x``. Single-letter flags and negative numbers are left alone.
    For the boolean flags named in ``bool_flags`` (e.g. "shuffle", "check-size") gflags' forms
    ``-shuffle``, ``-shuffle=true|false`` (t/f, yes/no, 1/0) and ``-noshuffle`` become
    ``--shuffle`` or nothing, the last one given winning, as in gflags."""
    out: list[str] = []
    last: dict[str, int] = {}          # boolean flag -> index in out of its last spelling
    value: dict[str, bool] = {}
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and len(a) > 2 and a[1].isalpha():
            a = "-" + a
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            name = name[2:].replace("_", "-")
            a = "--" + name + eq + val
            flag = None
            if name in bool_flags and (not eq or val.lower() in _GFLAGS_BOOL):
                flag, on = name, (not eq) or _GFLAGS_BOOL[val.lower()]
            elif not eq and name.startswith("no") and name[2:].lstrip("-") in bool_flags:
                flag, on = name[2:].lstrip("-"), False
            if flag is not None:
                last[flag], value[flag] = len(out), on
                out.append("")
                continue
        out.append(a)
    for flag, i in last.items():
        out[i] = f"--{flag}" if value[flag] else ""
    return [a for a in out if a != ""]


def bool_flags(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Names (without dashes) of the on/off flags (``store_true``) of ``parser``."""
    return frozenset(o[2:] for a in parser._actions if a.nargs == 0 and a.const is True
                     for o in a.option_strings if o.startswith("--"))


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
    flags: frozenset[str] = frozenset()
    if argv and argv[0] in VERBS:
        verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        flags = bool_flags(verbs.choices[argv[0]])
    args = parser.parse_args(normalize_argv(argv, flags))
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
