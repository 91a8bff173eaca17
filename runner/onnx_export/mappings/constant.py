"""Layers exported as constants, and the types that are refused.

PriorBox (SSD): its output depends only on the shapes of its bottoms and its parameters, never on
their values, so the model holds it as a constant computed by nbcaffe's own PriorBox forward
(nothing about box generation is re-derived here).

Refused: DetectionOutput and Python (see the messages).
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from runner.onnx_export.builder import LayerContext
from runner.onnx_export.table import maps, refused


@maps("PriorBox")
def prior_box(ctx: LayerContext) -> None:
    td = ctx.top_dims()
    if td.dyn is not None:
        raise ctx.refuse(f"its top {td.describe()} scales with the batch; a constant cannot")
    tops = ctx.forward_constant()
    arr = np.asarray(tops[0], dtype=np.float32)
    if arr.shape != td.ref:
        raise ctx.refuse(f"nbcaffe's forward gave shape {arr.shape}, the net expects {td.ref}")
    value = numpy_helper.from_array(arr, f"{ctx.name}/priors")
    ctx.op("Constant", [], ctx.outputs[0], value=value)


refused("DetectionOutput",
        "Caffe's detection output (per-class NMS over the top_k scores above "
        "confidence_threshold with an adaptive eta, then keep_top_k across classes, one row per "
        "kept box, a row count that varies per image) has no faithful ONNX form "
        "(NonMaxSuppression has no pre-NMS top_k, no adaptive threshold and another tie order); "
        "remove the layer so its bottoms become the model's outputs, and run the NMS after it")
refused("Python",
        "its forward is arbitrary Python code (python_param module and layer), which ONNX "
        "cannot hold; remove or replace the layer")
