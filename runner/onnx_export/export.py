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
from runner.onnx_export.builder import FLOAT, GraphBuilder, LayerContext
from runner.onnx_export.plan import Dims, Plan, make_plan
from runner.onnx_export.table import MAPPINGS, REFUSED, load_all, mapped_types

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


def _tensor_names(plan: Plan) -> dict[int, list[str]]:
    """Layer index -> the tensor names of its tops (see the module docstring)."""
    data_tops = set(plan.data_tops)
    last: dict[str, int] = {}
    for i, node in enumerate(plan.graph.layers):
        if plan.kind(node) == "layer":
            for t in node.tops:
                last[t] = i
    names: dict[int, list[str]] = {}
    taken: set[str] = set(plan.graph.blob_shapes)
    for i, node in enumerate(plan.graph.layers):
        if plan.kind(node) != "layer":
            continue
        out = []
        for t in node.tops:
            if last[t] == i and t not in data_tops:
                out.append(t)
                continue
            name, k = f"{t}@{node.name}", 0
            while name in taken:
                k += 1
                name = f"{t}@{node.name}_{k}"
            taken.add(name)
            out.append(name)
        names[i] = out
    return names


def build_model(net_param: pb.NetParameter, graph: Graph, params: Params, opset: int = DEFAULT_OPSET,
                batch: int | str | None = "dynamic",
                constant: Constant | None = None) -> tuple[onnx.ModelProto, ExportInfo]:
    """The checked ONNX model of ``graph`` (built by netdef.graph from ``net_param``) with the
    parameter arrays ``params`` (layer name -> arrays in Caffe's shapes, or a function of the
    layer name). ``batch``: "dynamic" (default) or a fixed int. ``constant(node)`` computes the
    tops of layers exported as constants (PriorBox) with nbcaffe's forward. Raises ExportError
    naming the layer for anything that cannot be exported faithfully."""
    load_all()
    if opset not in opset_range():
        raise ExportError(f"opset {opset} is not supported: nbcaffe writes opsets "
                          f"{opset_range().start}..{opset_range().stop - 1} (19 is the first whose "
                          "pooling rules can express Caffe's)")
    get = params.get if isinstance(params, Mapping) else params
    plan = make_plan(net_param, graph, batch)
    g = plan.graph
    check_refused([n.param for n in g.layers])
    for node in g.layers:
        if plan.kind(node) == "layer" and node.type not in MAPPINGS:
            raise ExportError(f"layer '{node.name}' ({node.type}): no ONNX mapping for this type "
                              f"(mapped types: {', '.join(mapped_types())})")

    names = _tensor_names(plan)
    builder = GraphBuilder(g.blob_shapes)
    info = ExportInfo(opset, {}, {}, dict(plan.dropped))
    cur: dict[str, str] = {}                 # blob -> tensor holding its current value
    dropped_by: dict[str, LayerNode] = {}    # top of a dropped layer -> that layer
    silenced: set[str] = set()
    produced: dict[str, Dims] = {}           # tensor -> shape, in production order
    blob_of: dict[str, str] = {}             # tensor -> blob
    for i, node in enumerate(g.layers):
        kind = plan.kind(node)
        if kind == "data":
            for t in node.tops:
                cur[t] = t
            continue
        if kind == "dropped":
            info.notes.append(f"dropped layer '{node.name}' ({node.type}): "
                              f"{plan.dropped[node.name]}")
            for t in node.tops:
                dropped_by[t] = node
            continue
        for b in node.bottoms:
            if b not in cur:
                src = dropped_by[b]
                raise ExportError(f"layer '{node.name}' ({node.type}) reads '{b}', a top of layer "
                                  f"'{src.name}' ({src.type}), which an inference model drops "
                                  f"({plan.dropped[src.name]})")
        ins = [cur[b] for b in node.bottoms]
        if kind == "split":
            for t in node.tops:
                cur[t] = ins[0]
            continue
        if kind == "silence":
            silenced.update(ins)
            continue
        outs = names[i]
        arrays = (get(node.name) or []) if node.param_shapes else []
        ctx = LayerContext(builder, plan, node, ins, outs, arrays, constant)
        before = len(builder.nodes)
        MAPPINGS[node.type](ctx)
        written = {o for n in builder.nodes[before:] for o in n.output}
        missing = [o for o in outs if o not in written]
        if missing:
            raise RuntimeError(f"ONNX mapping of {node.type} did not write {missing} "
                               f"(layer '{node.name}')")
        for t, o in zip(node.tops, outs):
            cur[t] = o
            produced[o] = plan.dims[t]
            blob_of[o] = t

    inputs = [t for t in plan.data_tops if t in builder.consumed]
    for t in plan.data_tops:
        if t in builder.consumed:
            continue
        if t in plan.read:
            info.notes.append(f"blob '{t}' is read only for its shape, which the model holds: "
                              "not a model input")
        else:
            info.notes.append(f"blob '{t}' is read only by dropped layers: not a model input")
    outputs = [o for o in produced if o not in builder.consumed and o not in silenced]
    if not outputs:
        raise ExportError(f"net '{g.name}': nothing to export (no layer output is left once the "
                          "loss and metric layers are dropped)")
    info.inputs = {t: plan.dims[t].onnx_shape() for t in inputs}
    info.outputs = {o: produced[o].onnx_shape() for o in outputs}
    info.blobs = {o: blob_of[o] for o in outputs}
    for o in outputs:
        if o != blob_of[o]:
            info.notes.append(f"output '{o}' holds blob '{blob_of[o]}' (written in place over the "
                              "input of the same name)")
    vis = [_value_info(o, d) for o, d in produced.items() if o not in info.outputs]
    graph_proto = helper.make_graph(
        builder.nodes, g.name or "net", [_value_info(t, plan.dims[t]) for t in inputs],
        [_value_info(o, produced[o]) for o in outputs], initializer=builder.initializers,
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
