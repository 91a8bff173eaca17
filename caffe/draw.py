"""pycaffe's ``caffe.draw``: a picture of a net definition (Graphviz).

``draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False)`` writes
``filename``: dot text for ``.dot``/``.gv``, otherwise the format its extension names (png, svg,
pdf, ...) rendered by Graphviz's ``dot`` program (a clear error when it is not installed).
``draw_net`` returns those bytes, ``get_pydot_graph`` a pydot graph (needs pydot).
``caffe_net`` is a NetParameter (legacy V1 nets are upgraded first); ``phase`` (caffe.TRAIN or
caffe.TEST) keeps only that phase's layers, None draws every layer. Layers are boxes (type and
main settings; loss layers in red; ``display_lrm`` adds lr_mults), blobs are ovals, as nbcaffe's
``draw`` command draws them (runner/commands/draw.py).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from proto import caffe_pb2


def _dot(caffe_net: caffe_pb2.NetParameter, rankdir: str, phase: int | None, display_lrm: bool) -> str:
    from netdef.graph import default_loss_weights, filter_layers
    from netdef.upgrade import upgrade_net
    from runner.commands.draw import to_dot
    net = upgrade_net(caffe_net)
    kept = net.layer if phase is None else filter_layers(net, caffe_pb2.NetState(phase=phase))
    nodes = [SimpleNamespace(name=lp.name, type=lp.type, param=lp, bottoms=list(lp.bottom),
                             tops=list(lp.top), is_loss=any(default_loss_weights(lp)))
             for lp in kept]
    graph = SimpleNamespace(name=net.name, layers=nodes, blob_shapes={})
    return to_dot(graph, rankdir, shapes=False, lr_mults=display_lrm)


def draw_net(caffe_net: caffe_pb2.NetParameter, rankdir: str, ext: str = "png",
             phase: int | None = None, display_lrm: bool = False) -> bytes:
    """The net drawn as a ``ext`` file's bytes (dot text for dot/gv)."""
    from runner.commands.draw import render
    return render(_dot(caffe_net, rankdir, phase, display_lrm), ext)


def draw_net_to_file(caffe_net: caffe_pb2.NetParameter, filename: str, rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Write the net's picture to ``filename`` in the format its extension names."""
    from runner.commands.draw import write
    write(filename, _dot(caffe_net, rankdir, phase, display_lrm))


def get_pydot_graph(caffe_net: caffe_pb2.NetParameter, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> Any:
    """The net as a ``pydot.Dot`` graph (requires the pydot package). ``label_edges`` is
    accepted for pycaffe's signature: what pycaffe wrote on edges (batch size, num_output) is in
    the layer boxes here."""
    try:
        import pydot
    except ImportError:
        raise ImportError("caffe.draw.get_pydot_graph needs the pydot package (pip install pydot); "
                          "draw_net_to_file writes .dot files without it") from None
    return pydot.graph_from_dot_data(_dot(caffe_net, rankdir, phase, display_lrm))[0]
