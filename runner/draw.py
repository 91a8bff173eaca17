"""A net's graph as Graphviz dot, and its rendering: what Caffe's python/caffe/draw.py and
python/draw_net.py do, in one place (``nbcaffe draw`` and pycaffe's ``caffe.draw`` call it).

    text = dot_source(net_param, rankdir="LR", phase=None)     # NetParameter -> dot text
    draw_net_to_file(net_param, "net.png", rankdir="LR")       # format from the extension

Drawing follows Caffe's draw.py: a layer is a ``record`` node labelled with its name and type
(and kernel size, stride and pad for convolution and pooling), coloured by type (Convolution
#FF5050, Pooling #FF9900, InnerProduct #CC33FF, an in-place neuron layer #90EE90, others
#6495ED); a blob is a grey ``octagon``; edges run bottom blob -> layer -> top blob, labelled
with the batch size of a Data layer and the num_output of Convolution / InnerProduct layers.
``phase`` (caffe_pb2.TRAIN / TEST, or None for every layer) keeps the layers whose include /
exclude rules name that phase, as draw.py does. Two differences: the top of an in-place layer
is drawn as a new node of the same name (so the chain reads in order instead of looping back),
and ``blob_shapes`` ({blob: shape}, e.g. from ``netdef.graph.build_graph``) adds each blob's
shape to its label.

``.dot``/``.gv`` files are the dot text; other extensions (png, svg, pdf, ...) are rendered by
Graphviz's ``dot`` program, which must be on PATH (a one-line ResourceError says how to get it
otherwise). Files are written to a temporary name and renamed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from netdef.errors import CaffeError, ResourceError
from proto import caffe_pb2 as pb

LAYER_COLOURS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                 "InnerProduct": "#CC33FF"}
DEFAULT_COLOUR = "#6495ED"
NEURON_COLOUR = "#90EE90"
BLOB_COLOUR = "#E0E0E0"
TEXT_FORMATS = ("dot", "gv")
RENDERED_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "gif", "ps", "eps")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
                "graphviz; conda: conda install graphviz), or write a .dot file and render it "
                "elsewhere")


def _q(s: str) -> str:
    """A dot string literal (line breaks as dot's \\n)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _record(s: str) -> str:
    """A quoted Graphviz record label: backslashes, quotes and the record syntax characters
    escaped, line breaks as dot's \\n."""
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    for c in "{}|<>":
        s = s.replace(c, "\\" + c)
    return '"' + s.replace("\n", "\\n") + '"'


def layer_label(lp: pb.LayerParameter, rankdir: str, display_lrm: bool = False) -> str:
    """draw.py's get_layer_label: name, (type), and kernel/stride/pad for conv and pooling;
    fields separated by a space for TB/BT and by line breaks for LR/RL; ``display_lrm`` adds the
    lr_mult of each parameter spec the layer gives."""
    label = _layer_label(lp, rankdir)
    if display_lrm and len(lp.param):
        sep = " " if rankdir in ("TB", "BT") else "\n"
        label += f"{sep}lr mult: " + ", ".join(f"{p.lr_mult:g}" for p in lp.param)
    return label


def _layer_label(lp: pb.LayerParameter, rankdir: str) -> str:
    sep = " " if rankdir in ("TB", "BT") else "\n"
    name, kind = lp.name, lp.type
    if lp.type in ("Convolution", "Deconvolution"):
        p = lp.convolution_param
        k = p.kernel_size[0] if len(p.kernel_size) else p.kernel_h
        s = p.stride[0] if len(p.stride) else (p.stride_h or 1)
        pad = p.pad[0] if len(p.pad) else p.pad_h
        return f"{name}{sep}({kind}){sep}kernel size: {k}{sep}stride: {s}{sep}pad: {pad}"
    if lp.type == "Pooling":
        p = lp.pooling_param
        method = pb.PoolingParameter.PoolMethod.Name(p.pool)
        k = "global" if p.global_pooling else (p.kernel_size or p.kernel_h)
        return (f"{name}{sep}({kind} {method}){sep}kernel size: {k}{sep}stride: "
                f"{p.stride_h or p.stride}{sep}pad: {p.pad_h or p.pad}")
    return f"{name}{sep}({kind})"


def edge_label(lp: pb.LayerParameter) -> str:
    """draw.py's get_edge_label: 'Batch N' out of a Data layer, num_output out of Convolution,
    Deconvolution and InnerProduct, nothing otherwise."""
    if lp.type == "Data":
        return f"Batch {lp.data_param.batch_size}"
    if lp.type in ("Convolution", "Deconvolution"):
        return str(lp.convolution_param.num_output)
    if lp.type == "InnerProduct":
        return str(lp.inner_product_param.num_output)
    return ""


def _in_phase(lp: pb.LayerParameter, phase: int | None) -> bool:
    """draw.py's phase rule: included unless an include rule names another phase only, or an
    exclude rule names this one."""
    if phase is None:
        return True
    if len(lp.include) and len(lp.exclude):
        raise CaffeError(f"layer '{lp.name}' has both include and exclude specified")
    included = not len(lp.include)
    for r in lp.include:
        included = included or r.phase == phase
    for r in lp.exclude:
        included = included and r.phase != phase
    return included


def dot_source(net: pb.NetParameter, rankdir: str = "LR", phase: int | str | None = None,
               label_edges: bool = True,
               blob_shapes: Mapping[str, Sequence[int]] | None = None,
               display_lrm: bool = False) -> str:
    """Graphviz dot text of ``net`` (see the module docstring). ``phase``: caffe_pb2.TRAIN /
    TEST (or 'TRAIN' / 'TEST'), None for every layer."""
    if rankdir not in ("LR", "TB", "BT", "RL"):
        raise CaffeError(f"rankdir must be LR, TB, BT or RL, got {rankdir!r}")
    if isinstance(phase, str):
        phase = None if phase.upper() == "ALL" else pb.Phase.Value(phase.upper())
    lines = [f"digraph {_q(net.name or 'Net')} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    version: dict[str, int] = {}

    def blob(name: str, new: bool) -> str:
        if new or name not in version:
            version[name] = version.get(name, -1) + 1
            label = name
            if blob_shapes is not None and name in blob_shapes:
                label += "\n" + (" x ".join(map(str, blob_shapes[name])) or "scalar")
            lines.append(f"  {_q(f'{name}_blob_{version[name]}')} [shape=octagon, style=filled, "
                         f"fillcolor=\"{BLOB_COLOUR}\", label={_q(label)}];")
        return f"{name}_blob_{version[name]}"

    for i, lp in enumerate(net.layer):
        if not _in_phase(lp, phase):
            continue
        node = f"{lp.name}_{lp.type}_{i}"
        neuron = len(lp.bottom) == 1 and len(lp.top) == 1 and lp.bottom[0] == lp.top[0]
        colour = NEURON_COLOUR if neuron else LAYER_COLOURS.get(lp.type, DEFAULT_COLOUR)
        lines.append(f"  {_q(node)} [shape=record, style=filled, fillcolor=\"{colour}\", "
                     f"label={_record(layer_label(lp, rankdir, display_lrm))}];")
        for b in lp.bottom:
            lines.append(f"  {_q(blob(b, False))} -> {_q(node)};")
        label = edge_label(lp) if label_edges else ""
        for t in lp.top:
            attr = f" [label={_q(label)}]" if label else ""
            lines.append(f"  {_q(node)} -> {_q(blob(t, True))}{attr};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def output_format(path: str) -> str:
    """The format a file name asks for: its extension, lower case (CaffeError if unknown)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in TEXT_FORMATS + RENDERED_FORMATS:
        raise CaffeError(f"{path}: unknown drawing format '.{ext}' (use "
                         f"{', '.join('.' + e for e in TEXT_FORMATS + RENDERED_FORMATS)})")
    return ext


def render(dot_text: str, fmt: str, what: str = "the drawing") -> bytes:
    """``dot -T<fmt>`` of ``dot_text``; ResourceError when Graphviz's dot is not on PATH."""
    exe = shutil.which("dot")
    if exe is None:
        raise ResourceError(f"{what}: rendering .{fmt} needs Graphviz's 'dot' program, which is not "
                            f"on PATH; {INSTALL_HINT}")
    fmt = "jpeg" if fmt == "jpg" else fmt
    r = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True)
    if r.returncode != 0:
        msg = " ".join(r.stderr.decode(errors="replace").split())
        raise CaffeError(f"{what}: Graphviz dot failed: {msg or f'exit code {r.returncode}'}")
    return r.stdout


def draw_net_to_file(net: pb.NetParameter, path: str, rankdir: str = "LR",
                     phase: int | str | None = None,
                     blob_shapes: Mapping[str, Sequence[int]] | None = None,
                     display_lrm: bool = False) -> None:
    """Write the drawing of ``net`` to ``path`` in the format its extension names (caffe.draw's
    draw_net_to_file): dot text, or rendered by Graphviz (atomic: temp name, then rename)."""
    from netdef.weights import atomic_file
    fmt = output_format(path)
    text = dot_source(net, rankdir, phase, blob_shapes=blob_shapes, display_lrm=display_lrm)
    data = text.encode() if fmt in TEXT_FORMATS else render(text, fmt, path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_file(path, write)
