"""``nbcaffe draw MODEL [--phase TRAIN|TEST] [-o out.dot]``: the net's graph as Graphviz dot.

Like Caffe's python/draw_net.py: layers are boxes (name, type and the main parameters), blobs are
ovals, edges run bottom blob -> layer -> top blob. An in-place layer's top is drawn as a new oval
of the same name so the chain reads top to bottom. Split layers inserted by nbcaffe are not drawn
(the blob fans out directly, as in Caffe's drawing of the prototxt). An output ending in another
extension than .dot/.gv (``-o net.png``, ``-o net.svg``) is rendered by Graphviz's ``dot``
program, which must be on PATH (``render``).
"""
from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="net prototxt (or solver: its train net)")
    parser.add_argument("--phase", choices=["TRAIN", "TEST", "train", "test"], default=None)
    parser.add_argument("--stage", action="append", default=None)
    parser.add_argument("--level", type=int, default=None)
    parser.add_argument("--test-net", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                        help="shape of a data/input blob, shown on the blobs (repeatable)")
    parser.add_argument("--rankdir", choices=["TB", "LR", "BT", "RL"], default="TB")
    parser.add_argument("-o", "--output", default=None,
                        help="output .dot file, or .png/.svg/... rendered by Graphviz's dot "
                             "(default: dot text on stdout)")


def _q(s: str) -> str:
    """A dot string literal; newlines become dot's \\n line breaks."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _lr_mults(lp) -> str:
    return ("\nlr mult " + ", ".join(f"{p.lr_mult:g}" for p in lp.param)) if len(lp.param) else ""


def _detail(lp) -> str:
    t = lp.type
    if t in ("Convolution", "Deconvolution"):
        p = lp.convolution_param
        k = list(p.kernel_size) or [p.kernel_h, p.kernel_w]
        s = list(p.stride) or [1]
        pad = list(p.pad) or [0]
        return f"kernel {k} stride {s} pad {pad}\nout {p.num_output}"
    if t == "Pooling":
        p = lp.pooling_param
        name = p.PoolMethod.Name(p.pool)
        if p.global_pooling:
            return f"{name} global"
        return f"{name} kernel {p.kernel_size or (p.kernel_h, p.kernel_w)} stride {p.stride}"
    if t == "InnerProduct":
        return f"out {lp.inner_product_param.num_output}"
    if t == "LRN":
        return f"size {lp.lrn_param.local_size}"
    return ""


def to_dot(graph, rankdir: str = "TB", shapes: bool = True, lr_mults: bool = False) -> str:
    """Graphviz dot text for a netdef.graph.Graph (or any object with ``name``, ``layers`` of
    ``name``/``type``/``param``/``bottoms``/``tops``/``is_loss`` and, with ``shapes``,
    ``blob_shapes``); ``lr_mults`` adds each layer's parameter lr_mults to its box."""
    lines = [f"digraph {_q(graph.name or 'net')} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    version: dict[str, int] = {}
    alias: dict[str, str] = {}  # split top -> blob it copies

    def blob_node(name: str, new: bool) -> str:
        name = alias.get(name, name)
        if new or name not in version:
            version[name] = version.get(name, -1) + 1
            nid = f"blob_{name}_{version[name]}"
            shape = graph.blob_shapes.get(name)
            label = name + (f"\n{'x'.join(map(str, shape)) or 'scalar'}"
                            if shapes and shape is not None else "")
            lines.append(f"  {_q(nid)} [shape=ellipse, style=filled, fillcolor=\"#E0E0E0\", "
                         f"label={_q(label)}];")
        return f"blob_{name}_{version[name]}"

    for i, n in enumerate(graph.layers):
        if n.type == "Split" and len(n.bottoms) == 1:
            for t in n.tops:
                alias[t] = alias.get(n.bottoms[0], n.bottoms[0])
            continue
        lid = f"layer_{i}"
        detail = _detail(n.param) + (_lr_mults(n.param) if lr_mults else "")
        label = f"{n.name}\n({n.type})" + (f"\n{detail}" if detail else "")
        color = "#FFD0D0" if n.is_loss else "#C6DBEF"
        lines.append(f"  {_q(lid)} [shape=box, style=filled, fillcolor=\"{color}\", "
                     f"label={_q(label)}];")
        for b in n.bottoms:
            lines.append(f"  {_q(blob_node(b, False))} -> {_q(lid)};")
        for t in n.tops:
            lines.append(f"  {_q(lid)} -> {_q(blob_node(t, True))};")
    lines.append("}")
    return "\n".join(lines) + "\n"


DOT_TEXT = ("dot", "gv", "raw")


def render(text: str, fmt: str) -> bytes:
    """``text`` (dot) as a ``fmt`` file (png, svg, pdf, ...) made by Graphviz's ``dot`` program;
    dot/gv/raw return the text itself. CaffeError when ``dot`` is missing or fails."""
    import shutil
    import subprocess

    from netdef.errors import CaffeError
    fmt = fmt.lower().lstrip(".")
    if fmt in DOT_TEXT:
        return text.encode()
    exe = shutil.which("dot")
    if exe is None:
        raise CaffeError(f"drawing a .{fmt} picture needs Graphviz's 'dot' program, which is not on "
                         "PATH: install Graphviz (e.g. apt-get install graphviz), or write a .dot "
                         "file and render it elsewhere")
    done = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True)
    if done.returncode != 0:
        msg = " ".join(done.stderr.decode(errors="replace").split())
        raise CaffeError(f"Graphviz's dot could not write .{fmt}: {msg}")
    return done.stdout


def write(path: str, text: str) -> None:
    """Write the dot ``text`` to ``path``, rendered after its extension (see ``render``);
    atomically."""
    ext = os.path.splitext(path)[1].lstrip(".") or "dot"
    data = render(text, ext)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def run(args) -> int:
    from runner.commands.inspect import load

    graph, _, _ = load(args)
    text = to_dot(graph, args.rankdir)
    if args.output:
        write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
