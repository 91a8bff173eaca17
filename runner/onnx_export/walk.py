"""Walk a plan's layers in order and emit each one's ONNX nodes through its mapping.

    walk = emit(plan, builder, bind, params, constant)      # bind: data top -> tensor name

The exporter runs it once over the net; a mapping that holds a net of its own (RNN / LSTM: Caffe's
unrolled net) runs it again over that net with ``prefix`` set, so every tensor it names is
``<prefix>/<blob>`` and cannot meet the outer net's names.

Tensor names: the tensor holding a blob's final value is named after the blob (with the prefix);
an earlier value of a blob that a later layer overwrites in place is ``<blob>@<layer>``; a data
top is the tensor ``bind`` gives; Split tops are their bottom's tensor; Silence consumes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from netdef.errors import ExportError
from netdef.graph import LayerNode
from runner.onnx_export.builder import GraphBuilder, LayerContext
from runner.onnx_export.plan import Dims, Plan
from runner.onnx_export.table import MAPPINGS, REFUSED, load_all, mapped_types

Params = Callable[[str], Sequence[np.ndarray] | None]
Constant = Callable[[LayerNode], list[np.ndarray]]


@dataclass
class Walk:
    """What ``emit`` produced."""
    cur: dict[str, str]                                   # blob -> tensor of its current value
    produced: dict[str, Dims] = field(default_factory=dict)   # tensor -> shape, in order
    blob_of: dict[str, str] = field(default_factory=dict)     # tensor -> blob
    silenced: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def check_mapped(plan: Plan) -> None:
    """ExportError for the first layer whose type is refused or has no mapping."""
    load_all()
    for node in plan.graph.layers:
        if plan.kind(node) != "layer":
            continue
        if node.type in REFUSED:
            raise ExportError(f"layer '{node.name}' ({node.type}): {REFUSED[node.type]}")
        if node.type not in MAPPINGS:
            raise ExportError(f"layer '{node.name}' ({node.type}): no ONNX mapping for this type "
                              f"(mapped types: {', '.join(mapped_types())})")


def tensor_names(plan: Plan, prefix: str = "") -> dict[int, list[str]]:
    """Layer index -> the tensor names of its tops (see the module docstring)."""
    data_tops = set(plan.data_tops)
    last: dict[str, int] = {}
    for i, node in enumerate(plan.graph.layers):
        if plan.kind(node) == "layer":
            for t in node.tops:
                last[t] = i
    pre = f"{prefix}/" if prefix else ""
    names: dict[int, list[str]] = {}
    taken: set[str] = {pre + b for b in plan.graph.blob_shapes}
    for i, node in enumerate(plan.graph.layers):
        if plan.kind(node) != "layer":
            continue
        out = []
        for t in node.tops:
            if last[t] == i and t not in data_tops:
                out.append(pre + t)
                continue
            name, k = f"{pre}{t}@{node.name}", 0
            while name in taken:
                k += 1
                name = f"{pre}{t}@{node.name}_{k}"
            taken.add(name)
            out.append(name)
        names[i] = out
    return names


def emit(plan: Plan, builder: GraphBuilder, bind: Mapping[str, str], params: Params,
         constant: Constant | None, prefix: str = "") -> Walk:
    """Emit every layer of ``plan`` (see the module docstring); raises ExportError naming the
    layer for what cannot be exported."""
    check_mapped(plan)
    names = tensor_names(plan, prefix)
    for outs in names.values():
        for j, o in enumerate(outs):
            if prefix:                      # an inner net: never a name the outer graph holds
                outs[j] = builder.fresh(o)
            else:
                builder.claim(o)
    walk = Walk(cur={})
    dropped_by: dict[str, LayerNode] = {}
    for i, node in enumerate(plan.graph.layers):
        kind = plan.kind(node)
        if kind == "data":
            for t in node.tops:
                if t in bind:
                    walk.cur[t] = bind[t]
            continue
        if kind == "dropped":
            walk.notes.append(f"dropped layer '{node.name}' ({node.type}): "
                              f"{plan.dropped[node.name]}")
            for t in node.tops:
                dropped_by[t] = node
            continue
        for b in node.bottoms:
            if b not in walk.cur:
                src = dropped_by.get(b)
                if src is None:
                    raise ExportError(f"layer '{node.name}' ({node.type}) reads '{b}', which has "
                                      "no value in the exported model")
                raise ExportError(f"layer '{node.name}' ({node.type}) reads '{b}', a top of layer "
                                  f"'{src.name}' ({src.type}), which an inference model drops "
                                  f"({plan.dropped[src.name]})")
        ins = [walk.cur[b] for b in node.bottoms]
        if kind == "split":
            for t in node.tops:
                walk.cur[t] = ins[0]
            continue
        if kind == "silence":
            walk.silenced.update(ins)
            continue
        outs = names[i]
        arrays = (params(node.name) or []) if node.param_shapes else []
        ctx = LayerContext(builder, plan, node, ins, outs, arrays, constant)
        before = len(builder.nodes)
        MAPPINGS[node.type](ctx)
        written = {o for n in builder.nodes[before:] for o in n.output}
        missing = [o for o in outs if o not in written]
        if missing:
            raise RuntimeError(f"ONNX mapping of {node.type} did not write {missing} "
                               f"(layer '{node.name}')")
        walk.notes.extend(ctx.notes)
        for t, o in zip(node.tops, outs):
            walk.cur[t] = o
            walk.produced[o] = plan.dims[t]
            walk.blob_of[o] = t
    return walk
