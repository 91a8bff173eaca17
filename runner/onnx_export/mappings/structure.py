"""Layers that move or combine data: Concat, Slice, Crop, Flatten, Reshape, Tile, Permute (SSD),
Eltwise, Parameter.

- Concat -> Concat on Caffe's axis (``concat_dim`` when set). Slice -> Split with the top sizes
  netdef computed from ``slice_point`` (or equal parts).
- Crop -> Slice of bottom 0 from ``axis`` on: start = offset (one for all axes, one per axis, or
  0), end = start + bottom 1's size (read from bottom 1's shape at run time when it scales with
  the batch).
- Flatten -> Flatten(axis 1) when it folds axes 1..last, else Reshape to the top shape. Reshape ->
  Reshape to netdef's top shape (Caffe's 0 / -1 / axis / num_axes already applied), the axis that
  scales with the batch written as -1.
- Tile -> Tile with ``tiles`` repeats on the axis (np.tile order, Caffe's). Permute -> Transpose
  by ``order`` completed with the missing axes in increasing order (SSD's PermuteLayer).
- Eltwise: SUM -> Sum of coeff_i * x_i (no multiply for coeff 1), PROD -> Mul chain, MAX -> Max.
- Parameter -> its blob as a constant.
"""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.onnx_export.builder import LayerContext
from runner.onnx_export.table import maps


@maps("Concat")
def concat(ctx: LayerContext) -> None:
    p = ctx.param.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") else ctx.axis(p.axis)
    ctx.op("Concat", ctx.inputs, ctx.outputs[0], axis=int(axis))


@maps("Slice")
def slice_(ctx: LayerContext) -> None:
    p = ctx.param.slice_param
    axis = int(p.slice_dim if p.HasField("slice_dim") else ctx.axis(p.axis))
    if len(ctx.outputs) == 1:
        ctx.op("Identity", ctx.inputs, ctx.outputs[0])
        return
    for j in range(len(ctx.outputs)):
        ctx.static(ctx.top_dims(j), [axis], "the slice")
    sizes = [ctx.top_dims(j).ref[axis] for j in range(len(ctx.outputs))]
    ctx.op_n("Split", [ctx.inputs[0], ctx.ints(sizes, "split")], ctx.outputs, axis=axis)


@maps("Crop")
def crop(ctx: LayerContext) -> None:
    p = ctx.param.crop_param
    a, ref = ctx.bottom_dims(0), ctx.bottom_dims(1)
    axis = ctx.axis(p.axis)
    axes = list(range(axis, a.rank))
    offsets = [0 if not len(p.offset) else int(p.offset[0 if len(p.offset) == 1 else i - axis])
               for i in axes]
    starts = ctx.ints(offsets, "starts")
    if ref.dyn is not None and ref.dyn in axes:
        sizes = ctx.op("Slice", [ctx.op("Shape", [ctx.inputs[1]]), ctx.ints([axis], "from"),
                                 ctx.ints([a.rank], "to")])
        ends = ctx.op("Add", [starts, sizes])
    else:
        ends = ctx.ints([o + ref.ref[i] for o, i in zip(offsets, axes)], "ends")
    ctx.op("Slice", [ctx.inputs[0], starts, ends, ctx.ints(axes, "axes")], ctx.outputs[0])


@maps("Flatten")
def flatten(ctx: LayerContext) -> None:
    p = ctx.param.flatten_param
    d = ctx.bottom_dims()
    start = ctx.axis(p.axis, what="flatten axis")
    end = ctx.axis(p.end_axis, what="flatten end_axis")
    if start == 1 and end == d.rank - 1:
        ctx.op("Flatten", ctx.inputs, ctx.outputs[0], axis=1)
    else:
        ctx.reshape(ctx.inputs[0], ctx.top_dims(), ctx.outputs[0])


@maps("Reshape")
def reshape(ctx: LayerContext) -> None:
    ctx.reshape(ctx.inputs[0], ctx.top_dims(), ctx.outputs[0])


@maps("Tile")
def tile(ctx: LayerContext) -> None:
    p = ctx.param.tile_param
    repeats = [1] * ctx.bottom_dims().rank
    repeats[ctx.axis(p.axis)] = int(p.tiles)
    ctx.op("Tile", [ctx.inputs[0], ctx.ints(repeats, "repeats")], ctx.outputs[0])


@maps("Permute")
def permute(ctx: LayerContext) -> None:
    rank = ctx.bottom_dims().rank
    order = [int(o) for o in ctx.param.permute_param.order]
    if len(set(order)) != len(order) or any(not 0 <= o < rank for o in order):
        raise ctx.refuse(f"permute_param.order {order} must list distinct axes of a {rank}-D bottom")
    order += [i for i in range(rank) if i not in order]
    ctx.op("Transpose", ctx.inputs, ctx.outputs[0], perm=order)


@maps("Eltwise")
def eltwise(ctx: LayerContext) -> None:
    p = ctx.param.eltwise_param
    xs = ctx.inputs
    if p.operation == pb.EltwiseParameter.SUM:
        coeffs = [float(c) for c in p.coeff] or [1.0] * len(xs)
        terms = [x if c == 1.0 else ctx.op("Mul", [x, ctx.const(c, f"coeff{i}")])
                 for i, (x, c) in enumerate(zip(xs, coeffs))]
        ctx.op("Sum", terms, ctx.outputs[0])
    elif p.operation == pb.EltwiseParameter.PROD:
        acc = xs[0]
        for i, x in enumerate(xs[1:], 1):
            acc = ctx.op("Mul", [acc, x], ctx.outputs[0] if i == len(xs) - 1 else None)
    else:
        ctx.op("Max", xs, ctx.outputs[0])


@maps("Parameter")
def parameter(ctx: LayerContext) -> None:
    ctx.op("Identity", [ctx.param_tensor(0, "value")], ctx.outputs[0])
