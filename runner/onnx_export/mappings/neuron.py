"""Elementwise layers (Caffe's NeuronLayer family), each with Caffe's forward formula.

ReLU: Relu, or LeakyRelu(negative_slope) (x > 0 ? x : slope * x). PReLU: PRelu with the slopes
shaped (C, 1, ...) for axis 1 (one shared slope: a scalar). ELU: Elu(alpha). Sigmoid, TanH,
AbsVal: the ONNX op. BNLL: Caffe's overflow-free log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)
(composed, so no runtime's Softplus can overflow). Power: (shift + scale x)^power; power * scale
== 0 gives Caffe's constant (1 for power 0, else shift^power) in x's shape. Exp: base^(shift +
scale x) = outer * e^(ln(base) * scale * x) with outer = base^shift. Log: log(scale x + shift) /
ln(base). Threshold: x > t ? 1 : 0. Clip: max(min, min(x, max)) (Caffe's order: ONNX's Clip only
when min <= max, where both agree). Swish: x * sigmoid(beta x). Dropout: Identity (TEST phase;
a TRAIN-phase dropout draws a random mask and is refused).
"""
from __future__ import annotations

import math

from proto import caffe_pb2 as pb
from runner.onnx_export.builder import FLOAT, LayerContext
from runner.onnx_export.table import maps


def _affine(ctx: LayerContext, x: str, scale: float, shift: float) -> str:
    """shift + scale * x, skipping a multiply by 1 and an add of 0 (as Caffe's layers do)."""
    if scale != 1.0:
        x = ctx.op("Mul", [x, ctx.const(scale, "scale")])
    if shift != 0.0:
        x = ctx.op("Add", [x, ctx.const(shift, "shift")])
    return x


@maps("ReLU")
def relu(ctx: LayerContext) -> None:
    slope = float(ctx.param.relu_param.negative_slope)
    if slope == 0.0:
        ctx.op("Relu", ctx.inputs, ctx.outputs[0])
    else:
        ctx.op("LeakyRelu", ctx.inputs, ctx.outputs[0], alpha=slope)


@maps("PReLU")
def prelu(ctx: LayerContext) -> None:
    rank = ctx.bottom_dims().rank
    if ctx.param.prelu_param.channel_shared:
        slope = ctx.param_tensor(0, "slope", ())
    else:
        c = ctx.node.param_shapes[0][0]
        slope = ctx.param_tensor(0, "slope", (c,) + (1,) * (rank - 2))
    ctx.op("PRelu", [ctx.inputs[0], slope], ctx.outputs[0])


@maps("ELU")
def elu(ctx: LayerContext) -> None:
    ctx.op("Elu", ctx.inputs, ctx.outputs[0], alpha=float(ctx.param.elu_param.alpha))


@maps("Sigmoid", "TanH", "AbsVal")
def plain(ctx: LayerContext) -> None:
    op = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs"}[ctx.type]
    ctx.op(op, ctx.inputs, ctx.outputs[0])


@maps("BNLL")
def bnll(ctx: LayerContext) -> None:
    x = ctx.inputs[0]
    e = ctx.op("Exp", [ctx.op("Neg", [ctx.op("Abs", [x])])])
    log = ctx.op("Log", [ctx.op("Add", [e, ctx.const(1.0, "one")])])
    ctx.op("Add", [ctx.op("Relu", [x]), log], ctx.outputs[0])


@maps("Power")
def power(ctx: LayerContext) -> None:
    p = ctx.param.power_param
    pw, scale, shift = float(p.power), float(p.scale), float(p.shift)
    x = ctx.inputs[0]
    if pw * scale == 0.0:
        value = 1.0 if pw == 0.0 else shift ** pw
        ctx.op("Expand", [ctx.const(value, "value"), ctx.op("Shape", [x])], ctx.outputs[0])
        return
    base = _affine(ctx, x, scale, shift)
    if pw == 1.0:
        ctx.op("Identity", [base], ctx.outputs[0])
    else:
        ctx.op("Pow", [base, ctx.const(pw, "power")], ctx.outputs[0])


@maps("Exp")
def exp(ctx: LayerContext) -> None:
    p = ctx.param.exp_param
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    if base != -1.0 and base <= 0:
        raise ctx.refuse(f"exp_param.base must be strictly positive (or -1 for e), got {base}")
    ln_base = 1.0 if base == -1.0 else math.log(base)
    outer = 1.0 if shift == 0.0 else (math.exp(shift) if base == -1.0 else base ** shift)
    inner = ln_base * scale
    x = ctx.inputs[0]
    if inner != 1.0:
        x = ctx.op("Mul", [x, ctx.const(inner, "inner_scale")])
    if outer == 1.0:
        ctx.op("Exp", [x], ctx.outputs[0])
    else:
        ctx.op("Mul", [ctx.op("Exp", [x]), ctx.const(outer, "outer_scale")], ctx.outputs[0])


@maps("Log")
def log(ctx: LayerContext) -> None:
    p = ctx.param.log_param
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    if base != -1.0 and base <= 0:
        raise ctx.refuse(f"log_param.base must be strictly positive (or -1 for e), got {base}")
    x = _affine(ctx, ctx.inputs[0], scale, shift)
    if base == -1.0:
        ctx.op("Log", [x], ctx.outputs[0])
    else:
        ctx.op("Mul", [ctx.op("Log", [x]), ctx.const(1.0 / math.log(base), "base_scale")],
               ctx.outputs[0])


@maps("Threshold")
def threshold(ctx: LayerContext) -> None:
    t = ctx.const(ctx.param.threshold_param.threshold, "threshold")
    ctx.op("Cast", [ctx.op("Greater", [ctx.inputs[0], t])], ctx.outputs[0], to=FLOAT)


@maps("Clip")
def clip(ctx: LayerContext) -> None:
    p = ctx.param.clip_param
    lo, hi = ctx.const(p.min, "min"), ctx.const(p.max, "max")
    if p.min <= p.max:
        ctx.op("Clip", [ctx.inputs[0], lo, hi], ctx.outputs[0])
    else:
        ctx.op("Max", [ctx.op("Min", [ctx.inputs[0], hi]), lo], ctx.outputs[0])


@maps("Swish")
def swish(ctx: LayerContext) -> None:
    beta = float(ctx.param.swish_param.beta)
    x = ctx.inputs[0]
    bx = x if beta == 1.0 else ctx.op("Mul", [x, ctx.const(beta, "beta")])
    ctx.op("Mul", [x, ctx.op("Sigmoid", [bx])], ctx.outputs[0])


@maps("Dropout")
def dropout(ctx: LayerContext) -> None:
    if ctx.plan.graph.phase == pb.TRAIN:
        raise ctx.refuse("in phase TRAIN dropout draws a random mask every forward; export phase "
                         "TEST (where it is the identity)")
    ctx.op("Identity", ctx.inputs, ctx.outputs[0])
