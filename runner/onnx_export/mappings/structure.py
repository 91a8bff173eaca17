"""Layers that move or combine data: Concat, Slice, Crop, Flatten, Reshape, Tile, Permute (SSD),
Eltwise, Parameter.

- Concat -> Concat on Caffe's axis (``concat_dim`` when set). Slice -> Split with the top sizes
  netdef computed from ``slice_point`` (or equal parts).
- Crop -> Slice of bottom 0 from ``axis`` on: start = netdef's offset of the axis (one for all
  axes, one per axis, or 0), end = start + bottom 1's size (read from bottom 1's shape at run time
  when it scales with the batch).
- Flatten -> Flatten(axis 1) when it folds axes 1..last, else Reshape to the top shape. Reshape ->
  Reshape to netdef's top shape (Caffe's 0 / -1 / axis / num_axes already applied), the axis that
  scales with the batch written as -1.
- Tile -> Tile with ``tiles`` repeats on the axis (np.tile order, Caffe's). Permute -> Transpose
  by netdef's ``PermuteGeometry.order`` (``order`` completed with the missing axes in increasing
  order, SSD's PermuteLayer).
- Eltwise: SUM -> Sum of coeff_i * x_i (no multiply for coeff 1), PROD -> Mul chain, MAX -> Max.
- Parameter -> its blob as a constant.
- BatchReindex -> Gather of the items named by bottom 1 (truncated to integers, as Caffe).
- Filter -> Compress of each bottom along axis 0 by selector != 0 (Caffe's ``if (selector)``):
  a data-dependent number of items, so only with a dynamic batch axis (plan.py declares that axis
  of every blob computed from a Filter as of unknown size).
- Im2col (Caffe's layout: row c * prod(kernel) + kernel offset in C order): zero Pad, then one
  strided Slice per kernel offset, stacked and reshaped -- copies only, so exact for any value.
"""
from __future__ import annotations

import itertools

from proto import caffe_pb2 as pb
from runner.onnx_export.builder import INT64, LayerContext
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
    a, ref = ctx.bottom_dims(0), ctx.bottom_dims(1)
    axis = ctx.axis(ctx.param.crop_param.axis)
    axes = list(range(axis, a.rank))
    offsets = [ctx.shapes().geometry[i] for i in axes]     # netdef's per-axis offsets
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
    order = ctx.shapes().geometry.order        # completed with the unnamed axes (netdef)
    ctx.op("Transpose", ctx.inputs, ctx.outputs[0], perm=list(order))


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


@maps("BatchReindex")
def batch_reindex(ctx: LayerContext) -> None:
    index = ctx.op("Cast", [ctx.inputs[1]], to=INT64)     # Caffe's static_cast<int>: truncation
    ctx.op("Gather", [ctx.inputs[0], index], ctx.outputs[0], axis=0)


@maps("Filter")
def filter_(ctx: LayerContext) -> None:
    if ctx.plan.batch is not None:
        raise ctx.refuse("it keeps a data-dependent number of items, which a fixed batch cannot "
                         "hold; export with a dynamic batch axis")
    for j in range(len(ctx.outputs)):
        if ctx.bottom_dims(j).dyn != 0:
            raise ctx.refuse(f"bottom {j} has no batch axis first, and the kept items are a "
                             "data-dependent count along it")
    sel = ctx.op("Reshape", [ctx.inputs[-1], ctx.ints([-1], "flat")])
    keep = ctx.op("Not", [ctx.op("Equal", [sel, ctx.const(0.0, "zero")])])   # Caffe: if (selector)
    for x, y in zip(ctx.inputs[:-1], ctx.outputs):
        ctx.op("Compress", [x, keep], y, axis=0)


@maps("Im2col")
def im2col(ctx: LayerContext) -> None:
    g = ctx.shapes().geometry
    d = ctx.bottom_dims()
    caxis = ctx.axis(ctx.param.convolution_param.axis)
    ctx.static(d, range(caxis, d.rank), "im2col")
    x = ctx.inputs[0]
    if caxis != 1:
        x = ctx.reshape(x, (g.num, g.channels) + tuple(g.in_spatial),
                        dyn=0 if d.dyn is not None else None)
    n_sp = len(g.kernel)
    if any(g.pad):
        x = ctx.op("Pad", [x, ctx.ints([0, 0, *g.pad, 0, 0, *g.pad], "pads")])
    axes = ctx.ints(range(2, 2 + n_sp), "axes")
    steps = ctx.ints(g.stride, "steps")
    cols = []
    for offset in itertools.product(*(range(k) for k in g.kernel)):   # Caffe's row order
        starts = [o * dl for o, dl in zip(offset, g.dilation)]
        ends = [s + (o - 1) * st + 1 for s, o, st in zip(starts, g.out_spatial, g.stride)]
        col = ctx.op("Slice", [x, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), axes, steps])
        cols.append(ctx.op("Unsqueeze", [col, ctx.ints([2], "unsqueeze_axis")]))
    ctx.reshape(ctx.op("Concat", cols, axis=2), ctx.top_dims(), ctx.outputs[0])
