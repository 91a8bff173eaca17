"""Normalisations and broadcast arithmetic: BatchNorm, Scale, Bias, MVN, Normalize (SSD).

- BatchNorm with global statistics (the TEST default): mean = blob0 / s, var = blob1 / s with
  s = blob2[0] the moving-average scale factor (0 when s == 0, as Caffe), then
  BatchNormalization(scale 1, bias 0, epsilon eps) = (x - mean) / sqrt(var + eps) per channel
  (axis 1; a 1-D bottom is one channel). With ``use_global_stats: false`` the batch's own biased
  statistics over all axes but 1: ReduceMean, Sub, ReduceMean of the square, Sqrt(var + eps), Div.
- Scale: x * s (+ b), s the parameter (axes axis..axis+num_axes, num_axes 0: a scalar) or bottom 1
  (a scalar bottom: axis 0), given trailing unit axes so ONNX broadcasting lines it up with x's
  axes from ``axis`` on; the bias broadcasts like the scale. Bias: x + b, the same way.
- MVN: Caffe's y = (x - E[x]) / (sqrt(E[(x - E[x])^2]) + eps) over the axes after the channel
  axis (``across_channels``: after the batch axis); without normalize_variance, x - E[x].
- Normalize (SSD): y = x / sqrt(sum x^2 + eps) * scale, the sum over C, H, W
  (``across_spatial``, default) or over C per position; scale one value or one per channel.
"""
from __future__ import annotations

import numpy as np

from proto import caffe_pb2 as pb
from runner.onnx_export.builder import LayerContext
from runner.onnx_export.table import maps


@maps("BatchNorm")
def batch_norm(ctx: LayerContext) -> None:
    p = ctx.param.batch_norm_param
    use_global = (p.use_global_stats if p.HasField("use_global_stats")
                  else ctx.plan.graph.phase == pb.TEST)
    x, rank = ctx.inputs[0], ctx.bottom_dims().rank
    eps = float(p.eps)
    if not use_global:
        axes = ctx.ints([0] + list(range(2, rank)), "axes")
        mean = ctx.op("ReduceMean", [x, axes], keepdims=1)
        d = ctx.op("Sub", [x, mean])
        var = ctx.op("ReduceMean", [ctx.op("Mul", [d, d]), axes], keepdims=1)
        std = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.const(eps, "eps")])])
        ctx.op("Div", [d, std], ctx.outputs[0])
        return
    sf = float(ctx.blob(2).reshape(-1)[0])
    f = np.float32(0.0 if sf == 0 else 1.0 / sf)
    mean, var = ctx.blob(0) * f, ctx.blob(1) * f
    if rank >= 2:
        c = mean.shape[0]
        ctx.op("BatchNormalization",
               [x, ctx.const(np.ones(c), "scale"), ctx.const(np.zeros(c), "bias"),
                ctx.const(mean, "mean"), ctx.const(var, "var")], ctx.outputs[0], epsilon=eps)
        return
    inv = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
    centred = ctx.op("Sub", [x, ctx.const(mean.reshape(()), "mean")])
    ctx.op("Mul", [centred, ctx.const(inv.reshape(()), "inv_std")], ctx.outputs[0])


def _broadcast_shape(ctx: LayerContext, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` (applied to bottom 0 from axis ``axis``) with trailing unit axes for ONNX."""
    if not shape:
        return ()
    return tuple(shape) + (1,) * (ctx.bottom_dims(0).rank - axis - len(shape))


def _start(ctx: LayerContext, axis: int, operand_rank: int) -> int:
    """Caffe's axis_ of Scale/Bias: 0 for a scalar operand, else the canonical axis."""
    return 0 if operand_rank == 0 else ctx.axis(axis)


def _operand(ctx: LayerContext, axis: int, label: str) -> tuple[str, tuple[int, ...]]:
    """The scale or bias operand (bottom 1 or parameter 0), broadcastable to bottom 0, and its
    broadcast shape."""
    if len(ctx.inputs) > 1:
        d = ctx.bottom_dims(1)
        start = _start(ctx, axis, d.rank)
        trailing = ctx.bottom_dims(0).rank - start - d.rank
        if d.rank == 0 or trailing == 0:
            return ctx.inputs[1], _broadcast_shape(ctx, d.ref, start)
        axes = ctx.ints(range(d.rank, d.rank + trailing), "axes")
        return ctx.op("Unsqueeze", [ctx.inputs[1], axes]), _broadcast_shape(ctx, d.ref, start)
    shape = tuple(ctx.node.param_shapes[0])
    target = _broadcast_shape(ctx, shape, _start(ctx, axis, len(shape)))
    return ctx.param_tensor(0, label, target), target


@maps("Scale")
def scale(ctx: LayerContext) -> None:
    p = ctx.param.scale_param
    s, target = _operand(ctx, p.axis, "scale")
    if not p.bias_term:
        ctx.op("Mul", [ctx.inputs[0], s], ctx.outputs[0])
        return
    k = len(ctx.node.param_shapes) - 1
    bias = ctx.blob(k)
    if bias.size != int(np.prod(target, dtype=np.int64)):
        raise ctx.refuse(f"bias shape {bias.shape} does not match the scale's {target}")
    b = ctx.param_tensor(k, "bias", target)
    ctx.op("Add", [ctx.op("Mul", [ctx.inputs[0], s]), b], ctx.outputs[0])


@maps("Bias")
def bias(ctx: LayerContext) -> None:
    b, _ = _operand(ctx, ctx.param.bias_param.axis, "bias")
    ctx.op("Add", [ctx.inputs[0], b], ctx.outputs[0])


@maps("MVN")
def mvn(ctx: LayerContext) -> None:
    p = ctx.param.mvn_param
    x, rank = ctx.inputs[0], ctx.bottom_dims().rank
    axes = ctx.ints(range(1 if p.across_channels else 2, rank), "axes")
    mean = ctx.op("ReduceMean", [x, axes], keepdims=1, noop_with_empty_axes=1)
    if not p.normalize_variance:
        _to_top(ctx, ctx.op("Sub", [x, mean]))
        return
    d = ctx.op("Sub", [x, mean])
    var = ctx.op("ReduceMean", [ctx.op("Mul", [d, d]), axes], keepdims=1, noop_with_empty_axes=1)
    std = ctx.op("Add", [ctx.op("Sqrt", [var]), ctx.const(p.eps, "eps")])
    _to_top(ctx, ctx.op("Div", [d, std]))


def _to_top(ctx: LayerContext, y: str) -> None:
    """Write ``y`` as the top: Caffe's MVN top has the bottom's legacy 4-D shape (num, channels,
    height, width) when netdef's rule says so, else the bottom's shape."""
    if ctx.top_dims().rank == ctx.bottom_dims().rank:
        ctx.op("Identity", [y], ctx.outputs[0])
    else:
        ctx.reshape(y, ctx.top_dims(), ctx.outputs[0])


@maps("Normalize")
def normalize(ctx: LayerContext) -> None:
    p = ctx.param.norm_param
    x, rank = ctx.inputs[0], ctx.bottom_dims().rank
    if rank < 2:
        raise ctx.refuse(f"the bottom must have at least 2 axes, got {rank}")
    axes = ctx.ints(range(1, rank) if p.across_spatial else [1], "axes")
    sq = ctx.op("ReduceSumSquare", [x, axes], keepdims=1)
    norm = ctx.op("Sqrt", [ctx.op("Add", [sq, ctx.const(p.eps, "eps")])])
    y = ctx.op("Div", [x, norm])
    shape = tuple(ctx.node.param_shapes[0])
    if p.channel_shared or shape in ((), (1,)):
        s = ctx.param_tensor(0, "scale", ())
    else:
        s = ctx.param_tensor(0, "scale", (shape[0],) + (1,) * (rank - 2))
    ctx.op("Mul", [y, s], ctx.outputs[0])
