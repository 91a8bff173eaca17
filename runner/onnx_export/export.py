"""Turn a Caffe net (netdef graph + parameter arrays) into one checked ONNX model.

    model, info = build_model(net_param, graph, params, opset=19, batch="dynamic")
    info = export_graph(net_param, graph, params, "model.onnx")   # build, check, write atomically
    info = export_net(net, "model.onnx")                          # a runner Net (Net.to_onnx)

Naming: graph inputs are the data layers' tops that some exported layer reads; graph outputs are
the tensors no exported layer reads (the net's outputs once loss layers are dropped). Every
tensor that holds a blob's final value is named after the blob; an earlier value of a blob that
a later layer overwrites in place is ``<blob>@<layer that wrote it>``; Split tops are the same
tensor as their bottom. Parameters are initializers named ``<layer>.<role>`` (``conv1.weight``);
a blob shared by ``param { name: ... }`` is one initializer, named after its owner.

Every blob tensor is declared with its Caffe shape (netdef.graph's, with ``batch`` for the batch
axis), so ``onnx.checker.check_model(full_check=True)``, whose strict shape inference must agree
with every declaration, checks each mapping's shapes against Caffe's rules at export time.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper

from netdef.errors import ExportError
from netdef.graph import Graph, LayerNode
from proto import caffe_pb2 as pb
from runner.onnx_export.builder import FLOAT, GraphBuilder
from runner.onnx_export.plan import Dims, make_plan
from runner.onnx_export.table import REFUSED, load_all
from runner.onnx_export.walk import emit

OPSET_MIN = 19          # ONNX's pooling output size and AveragePool divisor rules settle at 19
DEFAULT_OPSET = 19
PROTOBUF_LIMIT = 2**31 - 1

Params = Callable[[str], Sequence[np.ndarray]] | Mapping[str, Sequence[np.ndarray]]
Constant = Callable[[LayerNode], list[np.ndarray]]


def opset_range() -> range:
    """The opsets the exporter writes: 19 up to the newest the installed onnx package knows."""
    return range(OPSET_MIN, onnx.defs.onnx_opset_version() + 1)


@dataclass
class ExportInfo:
    """What an export produced: input/output names with their ONNX shapes (``batch`` marks the
    dynamic axis), the dropped layers with why, and notes for the user."""
    opset: int
    inputs: dict[str, list[Any]]
    outputs: dict[str, list[Any]]
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    path: str | None = None
    blobs: dict[str, str] = field(default_factory=dict)   # output tensor -> the blob it holds


def _value_info(name: str, dims: Dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, FLOAT, dims.onnx_shape())


def check_refused(layers: Sequence[pb.LayerParameter]) -> None:
    """Raise the ExportError of the first layer whose type is refused (before anything is built:
    netdef may not even know the type's shapes)."""
    load_all()
    for lp in layers:
        if lp.type in REFUSED:
            raise ExportError(f"layer '{lp.name}' ({lp.type}): {REFUSED[lp.type]}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("nbcaffe")
    except PackageNotFoundError:
        return "dev"


def build_model(net_param: pb.NetParameter, graph: Graph, params: Params, opset: int = DEFAULT_OPSET,
                batch: int | str | None = "dynamic",
                constant: Constant | None = None) -> tuple[onnx.ModelProto, ExportInfo]:
    """The checked ONNX model of ``graph`` (built by netdef.graph from ``net_param``) with the
    parameter arrays ``params`` (layer name -> arrays in Caffe's shapes, or a function of the
    layer name). ``batch``: "dynamic" (default) or a fixed int. ``constant(node)`` computes the
    tops of layers exported as constants (PriorBox) with nbcaffe's forward. Raises ExportError
    naming the layer for anything that cannot be exported faithfully."""
    if opset not in opset_range():
        raise ExportError(f"opset {opset} is not supported: nbcaffe writes opsets "
                          f"{opset_range().start}..{opset_range().stop - 1} (19 is the first whose "
                          "pooling rules can express Caffe's)")
    get = params.get if isinstance(params, Mapping) else params
    plan = make_plan(net_param, graph, batch)
    g = plan.graph
    check_refused([n.param for n in g.layers])
    builder = GraphBuilder(g.blob_shapes)
    walk = emit(plan, builder, {t: t for t in plan.data_tops}, get, constant)
    info = ExportInfo(opset, {}, {}, dict(plan.dropped), list(walk.notes))
    produced, blob_of = walk.produced, walk.blob_of
    inputs = [t for t in plan.data_tops if t in builder.consumed]
    for t in plan.data_tops:
        if t in builder.consumed:
            continue
        if t in plan.read:
            info.notes.append(f"blob '{t}' is read only for its shape, which the model holds: "
                              "not a model input")
        else:
            info.notes.append(f"blob '{t}' is read only by dropped layers: not a model input")
    outputs = [o for o in produced if o not in builder.consumed and o not in walk.silenced]
    if not outputs:
        raise ExportError(f"net '{g.name}': nothing to export (no layer output is left once the "
                          "loss and metric layers are dropped)")
    in_dims = {t: plan.dims[t] for t in inputs} | builder.extra_inputs
    out_dims = {o: produced[o] for o in outputs} | builder.extra_outputs
    info.inputs = {t: d.onnx_shape() for t, d in in_dims.items()}
    info.outputs = {o: d.onnx_shape() for o, d in out_dims.items()}
    info.blobs = {o: blob_of[o] for o in outputs}
    for o in outputs:
        if o != blob_of[o]:
            info.notes.append(f"output '{o}' holds blob '{blob_of[o]}' (written in place over the "
                              "input of the same name)")
    declared = builder.declared | produced
    vis = [_value_info(o, d) for o, d in declared.items() if o not in out_dims]
    graph_proto = helper.make_graph(
        builder.nodes, g.name or "net", [_value_info(t, d) for t, d in in_dims.items()],
        [_value_info(o, d) for o, d in out_dims.items()], initializer=builder.initializers,
        value_info=vis)
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(graph_proto, opset_imports=[opset_id], producer_name="nbcaffe",
                              producer_version=_version())
    model.ir_version = helper.find_min_ir_version_for([opset_id])
    model.doc_string = (f"Caffe net '{g.name}' (phase {pb.Phase.Name(g.phase)}"
                        f"{', stages ' + ','.join(g.stages) if g.stages else ''}) exported by nbcaffe")
    if plan.dropped:
        helper.set_model_props(model, {"caffe_dropped_layers": ",".join(plan.dropped)})
    size = model.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise ExportError(f"net '{g.name}': the model is {size / 2**30:.2f} GiB, over protobuf's "
                          "2 GiB limit for one ONNX file")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"net '{g.name}': the ONNX checker rejects the exported model ({first}); "
                          "this is an nbcaffe exporter bug, please report it with the prototxt") from e
    return model, info


def write_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Serialize ``model`` to ``path`` atomically (``<path>.tmp``, then os.replace)."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def export_graph(net_param: pb.NetParameter, graph: Graph, params: Params, path: str | os.PathLike,
                 opset: int = DEFAULT_OPSET, batch: int | str | None = "dynamic",
                 constant: Constant | None = None) -> ExportInfo:
    """``build_model`` then ``write_model``; returns the ExportInfo with ``path`` set."""
    model, info = build_model(net_param, graph, params, opset, batch, constant)
    write_model(model, path)
    info.path = os.fspath(path)
    return info


def net_sources(net: Any) -> tuple[Callable[[str], list[np.ndarray]], Constant]:
    """The parameter and constant-forward callbacks of a runner Net."""
    index = {name: i for i, name in enumerate(net.layer_names)}

    def params(name: str) -> list[np.ndarray]:
        return [np.array(b.host_data()) for b in net.layer_dict[name].blobs]

    def constant(node: LayerNode) -> list[np.ndarray]:
        i = index[node.name]
        layer, bottoms, tops = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
        layer.reshape(bottoms, tops)
        layer.forward(bottoms, tops)
        return [np.array(t.host_data()) for t in tops]

    return params, constant


def export_net(net: Any, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
               batch: int | str | None = "dynamic") -> ExportInfo:
    """Export a runner Net (its phase, stages and weights as loaded) to ``path``."""
    params, constant = net_sources(net)
    return export_graph(net.net_param, net.graph, params, path, opset, batch, constant)
