"""pycaffe's ``caffe.draw``: a picture of a net definition (Graphviz), drawn by ``runner.draw`` in
Caffe's draw.py styles (the same drawing ``nbcaffe draw`` makes).

``draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False)`` writes
``filename``: dot text for ``.dot``/``.gv``, otherwise the format its extension names (png, svg,
pdf, ...) rendered by Graphviz's ``dot`` program (a clear error when it is not installed).
``draw_net`` returns those bytes, ``get_pydot_graph`` a pydot graph (needs pydot).
``caffe_net`` is a NetParameter (legacy V1 nets are upgraded first); ``phase`` (caffe.TRAIN or
caffe.TEST) keeps only that phase's layers, None draws every layer; ``display_lrm`` adds each
layer's lr_mults.
"""
from __future__ import annotations

from typing import Any

from proto import caffe_pb2


def _dot(caffe_net: caffe_pb2.NetParameter, rankdir: str, phase: int | None, display_lrm: bool,
         label_edges: bool = True) -> str:
    from netdef.upgrade import upgrade_net
    from runner.draw import dot_source
    return dot_source(upgrade_net(caffe_net), rankdir, phase, label_edges=label_edges,
                      display_lrm=display_lrm)


def draw_net(caffe_net: caffe_pb2.NetParameter, rankdir: str, ext: str = "png",
             phase: int | None = None, display_lrm: bool = False) -> bytes:
    """The net drawn as a ``ext`` file's bytes (dot text for dot/gv)."""
    from runner.draw import TEXT_FORMATS, render
    text = _dot(caffe_net, rankdir, phase, display_lrm)
    return text.encode() if ext in TEXT_FORMATS else render(text, ext)


def draw_net_to_file(caffe_net: caffe_pb2.NetParameter, filename: str, rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Write the net's picture to ``filename`` in the format its extension names."""
    from netdef.upgrade import upgrade_net
    from runner.draw import draw_net_to_file as draw
    draw(upgrade_net(caffe_net), filename, rankdir, phase, display_lrm=display_lrm)


def get_pydot_graph(caffe_net: caffe_pb2.NetParameter, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> Any:
    """The net as a ``pydot.Dot`` graph (requires the pydot package)."""
    try:
        import pydot
    except ImportError:
        raise ImportError("caffe.draw.get_pydot_graph needs the pydot package (pip install pydot); "
                          "draw_net_to_file writes .dot files without it") from None
    return pydot.graph_from_dot_data(_dot(caffe_net, rankdir, phase, display_lrm, label_edges))[0]
