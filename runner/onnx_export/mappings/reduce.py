"""Layers that reduce along axes: Softmax, ArgMax, Reduction.

- Softmax -> Softmax on Caffe's axis (ONNX >= 13 normalises along that one axis, as Caffe).
- ArgMax: Caffe ranks by value with ties going to the *higher* index; ONNX TopK puts the lower
  index first, so the model runs TopK on the axis reversed and maps index i back to dim-1-i.
  With ``axis``: the top_k indices (or with out_max_val the values) along it. Without: over all
  axes after the first, top (N, 1, top_k) of indices, or (N, 2, top_k) with the values as the
  second row (out_max_val); indices as floats.
- Reduction (axis..last): SUM -> ReduceSum, ASUM -> ReduceL1, SUMSQ -> ReduceSumSquare, MEAN ->
  ReduceMean, times ``coeff``; top shape x.shape[:axis].
"""
from __future__ import annotations

import numpy as np

from netdef.shapes import count
from proto import caffe_pb2 as pb
from runner.onnx_export.builder import FLOAT, LayerContext
from runner.onnx_export.table import maps


@maps("Softmax")
def softmax(ctx: LayerContext) -> None:
    axis = ctx.axis(ctx.param.softmax_param.axis, what="softmax axis")
    ctx.op("Softmax", ctx.inputs, ctx.outputs[0], axis=axis)


def _top_k(ctx: LayerContext, x: str, axis: int, k: int, dim: int,
           values_out: str | None = None) -> tuple[str, str]:
    """(values, float indices) of the k largest entries along ``axis`` (size ``dim``), ties to
    the higher index (Caffe's std::greater on (value, index) pairs)."""
    rev = ctx.op("Slice", [x, ctx.ints([-1], "rev_start"), ctx.ints([np.iinfo(np.int64).min],
                                                                    "rev_end"),
                           ctx.ints([axis], "rev_axis"), ctx.ints([-1], "rev_step")])
    vals, idx = ctx.op_n("TopK", [rev, ctx.ints([k], "k")], [values_out or ctx.tmp("values"),
                                                            ctx.tmp("indices")],
                         axis=axis, largest=1, sorted=1)
    orig = ctx.op("Sub", [ctx.const(np.int64(dim - 1), "last", np.int64), idx])
    return vals, orig


@maps("ArgMax")
def argmax(ctx: LayerContext) -> None:
    p = ctx.param.argmax_param
    d = ctx.bottom_dims()
    k = int(p.top_k)
    x, out = ctx.inputs[0], ctx.outputs[0]
    if p.HasField("axis"):
        axis = ctx.axis(p.axis)
        ctx.static(d, [axis], "the argmax")
        if p.out_max_val:
            _top_k(ctx, x, axis, k, d.ref[axis], values_out=out)
        else:
            _, idx = _top_k(ctx, x, axis, k, d.ref[axis])
            ctx.op("Cast", [idx], out, to=FLOAT)
        return
    ctx.static(d, range(1, d.rank), "the argmax")
    flat = ctx.op("Flatten", [x], axis=1)
    vals, idx = _top_k(ctx, flat, 1, k, count(d.ref, 1))
    one = ctx.ints([1], "unsqueeze_axis")
    rows = [ctx.op("Unsqueeze", [ctx.op("Cast", [idx], to=FLOAT), one])]
    if p.out_max_val:
        rows.append(ctx.op("Unsqueeze", [vals, one]))
    td = ctx.top_dims()
    if td.rank == 3:
        ctx.op("Concat", rows, out, axis=1)
    else:
        ctx.reshape(ctx.op("Concat", rows, axis=1), td, out)


_REDUCE = {pb.ReductionParameter.SUM: "ReduceSum", pb.ReductionParameter.ASUM: "ReduceL1",
           pb.ReductionParameter.SUMSQ: "ReduceSumSquare", pb.ReductionParameter.MEAN: "ReduceMean"}


@maps("Reduction")
def reduction(ctx: LayerContext) -> None:
    p = ctx.param.reduction_param
    rank = ctx.bottom_dims().rank
    if rank == 0:
        raise ctx.refuse("a scalar bottom has no axis to reduce")
    axis = ctx.axis(p.axis)
    axes = ctx.ints(range(axis, rank), "axes")
    op = _REDUCE[p.operation]
    if p.coeff == 1.0:
        ctx.op(op, [ctx.inputs[0], axes], ctx.outputs[0], keepdims=0)
    else:
        y = ctx.op(op, [ctx.inputs[0], axes], keepdims=0)
        ctx.op("Mul", [y, ctx.const(p.coeff, "coeff")], ctx.outputs[0])
