"""Export a Caffe net to ONNX with Caffe's semantics, checked by the official ``onnx`` package.

    from runner import Net
    net = Net("deploy.prototxt", weights="model.caffemodel")
    info = net.to_onnx("model.onnx")                 # dynamic batch axis, opset 19
    info = net.to_onnx("model.onnx", opset=21, batch=8)

One ONNX model: the net's data layers become graph inputs (named after their blobs, first axis
``batch`` unless a fixed batch is asked for), every layer maps to ONNX operators with Caffe's
semantics exactly (several operators where one does not match: a pooling's dropped last window,
its clipped average divisor, BatchNorm's scale factor, Eltwise coefficients, LRN's ``k``),
parameters become initializers, loss and metric layers are dropped with a note. A layer that
cannot be expressed exactly is refused with an ExportError naming it and why.

Modules: ``plan`` (what the export holds, from netdef alone), ``builder`` (the ONNX graph and the
per-layer context), ``table`` (the mapping table keyed by Caffe type), ``mappings/`` (one
function per type, by family), ``export`` (assembly, check, atomic write).
"""
from __future__ import annotations

from runner.onnx_export.export import (
    DEFAULT_OPSET,
    OPSET_MIN,
    ExportInfo,
    build_model,
    export_graph,
    export_net,
    net_sources,
    opset_range,
    write_model,
)
from runner.onnx_export.table import mapped_types

__all__ = ["DEFAULT_OPSET", "OPSET_MIN", "ExportInfo", "build_model", "export_graph", "export_net",
           "mapped_types", "net_sources", "opset_range", "write_model"]
