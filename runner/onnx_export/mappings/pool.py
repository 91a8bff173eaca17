"""Pooling, SPP and LRN.

Pooling (netdef.geometry.PoolGeometry: Caffe's output size, ceil by default, with the last
window dropped when it would start in the padding). ONNX's own ceil mode and symmetric pads are
not used: the model pads ``pad`` before and ``end = max(0, (OH-1)*stride - pad + kernel - H)``
after, and pools in floor mode, so it has exactly Caffe's OH windows at Caffe's positions
(end < kernel, except for a last window that lies wholly past the image, which Caffe keeps when
there is no pad and kernel < stride: then the model pads explicitly, MAX with -FLT_MAX, Caffe's
starting value, AVE with zeros, whose 0 / divisor below is Caffe's NaN or -0 there).
- MAX -> MaxPool (padding never wins, as in Caffe). A second top (Caffe's argmax mask, h * W + w
  as float) is MaxPool's Indices (flat over N, C, H, W) mod H*W, cast to float.
- AVE -> AveragePool with count_include_pad: every window lies inside the padded input, so ONNX
  divides by kernel_h * kernel_w. Caffe divides by the window clipped to the image plus *its*
  padding, (min(hs + kh, H + pad_h) - hs) * (...), which is smaller only for a last window that
  reaches past H + pad (ceil rounding); then the model multiplies by kernel_h*kernel_w / divisor
  (a constant (OH, OW) map), else adds nothing.
- STOCHASTIC at TEST (nbcaffe's and Caffe's GPU rule, no padding): sum(x^2) / (FLT_MIN + sum(x))
  over each window clipped to the image: the two window sums are a depthwise convolution with a
  kernel of ones (zero-padded at the end like the others). In TRAIN it draws a random element
  per window and is refused.

SPP: netdef's pyramid (one PoolGeometry per level), each level pooled as above, flattened from
axis 1 and concatenated along axis 1 (one level: its 4-D top as is).

LRN ACROSS_CHANNELS -> LRN(size, alpha, beta, bias=k): ONNX's window (c - (n-1)/2 .. c + n/2) and
formula x / (k + alpha/n * sum x^2)^beta are Caffe's. WITHIN_CHANNEL is Caffe's own composition:
x * (1 + alpha * AVE_POOL(x^2, n x n, pad (n-1)/2, stride 1))^-beta, where every window's divisor
is n*n (padding counted).
"""
from __future__ import annotations

import numpy as np

from netdef.geometry import PoolGeometry
from proto import caffe_pb2 as pb
from runner.onnx_export.builder import FLOAT, LayerContext
from runner.onnx_export.table import maps

FLT_MAX = float(np.finfo(np.float32).max)   # Caffe's max pooling starts from -FLT_MAX
FLT_MIN = float(np.finfo(np.float32).tiny)  # Caffe's stochastic TEST pooling adds it to the sum


def _caffe_window_sizes(out: int, stride: int, pad: int, kernel: int, size: int) -> np.ndarray:
    """Caffe's AVE divisor along one axis: hend = min(hs + kernel, size + pad) - hs."""
    hs = np.arange(out) * stride - pad
    return np.minimum(hs + kernel, size + pad) - hs


def pool(ctx: LayerContext, x: str, g: PoolGeometry, method: int, outs: list[str | None]) -> str:
    """Caffe's pooling of ``x`` by geometry ``g`` (MAX, AVE or STOCHASTIC's TEST rule); writes
    ``outs[0]`` (and the MAX mask as ``outs[1]`` when given); returns the output's name."""
    end_h = max(0, (g.out_h - 1) * g.stride_h - g.pad_h + g.kernel_h - g.h)
    end_w = max(0, (g.out_w - 1) * g.stride_w - g.pad_w + g.kernel_w - g.w)
    pads = [g.pad_h, g.pad_w, end_h, end_w]
    strides = [g.stride_h, g.stride_w]
    if method == pb.PoolingParameter.STOCHASTIC:
        if ctx.plan.graph.phase == pb.TRAIN:
            raise ctx.refuse("STOCHASTIC pooling draws a random element per window in phase "
                             "TRAIN; export phase TEST (its probability-weighted average)")
        c = g.c
        ones = ctx.const(np.ones((c, 1, g.kernel_h, g.kernel_w)), "ones")
        attrs = dict(kernel_shape=[g.kernel_h, g.kernel_w], strides=strides, pads=pads, group=c)
        total = ctx.op("Conv", [x, ones], **attrs)
        squares = ctx.op("Conv", [ctx.op("Mul", [x, x]), ones], **attrs)
        return ctx.op("Div", [squares, ctx.op("Add", [total, ctx.const(FLT_MIN, "flt_min")])],
                      outs[0])
    is_max = method == pb.PoolingParameter.MAX
    if end_h >= g.kernel_h or end_w >= g.kernel_w:
        # a last window wholly past the image (kernel < stride, no pad): Caffe keeps it
        if len(outs) > 1:
            raise ctx.refuse("a last pooling window lies wholly outside the image (kernel < "
                             "stride with ceil rounding and no pad), where Caffe's mask top is -1; "
                             "this mask is not exported")
        fill = ctx.const(-FLT_MAX if is_max else 0.0, "pad_value")
        x = ctx.op("Pad", [x, ctx.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], "pads"),
                           fill])
        pads = [0, 0, 0, 0]
    attrs = dict(kernel_shape=[g.kernel_h, g.kernel_w], strides=strides, pads=pads)
    if is_max:
        if len(outs) == 1:
            return ctx.op("MaxPool", [x], outs[0], **attrs)
        y, idx = ctx.op_n("MaxPool", [x], [outs[0] or ctx.tmp("maxpool"), ctx.tmp("indices")],
                          **attrs)
        plane = ctx.const(np.int64(g.h * g.w), "plane", np.int64)
        ctx.op("Cast", [ctx.op("Mod", [idx, plane])], outs[1], to=FLOAT)
        return y
    rows = _caffe_window_sizes(g.out_h, g.stride_h, g.pad_h, g.kernel_h, g.h)
    cols = _caffe_window_sizes(g.out_w, g.stride_w, g.pad_w, g.kernel_w, g.w)
    divisor = np.outer(rows, cols).astype(np.float64)
    full = g.kernel_h * g.kernel_w
    if (divisor == full).all():
        return ctx.op("AveragePool", [x], outs[0], count_include_pad=1, **attrs)
    y = ctx.op("AveragePool", [x], count_include_pad=1, **attrs)
    with np.errstate(divide="ignore"):
        fix = full / divisor          # an empty window: 0 * inf = NaN or 0 * -k = -0, as 0 / size
    return ctx.op("Mul", [y, ctx.const(fix, "divisor_fix")], outs[0])


@maps("Pooling")
def pooling(ctx: LayerContext) -> None:
    pool(ctx, ctx.inputs[0], ctx.shapes().geometry, ctx.param.pooling_param.pool, list(ctx.outputs))


_SPP_METHOD = {pb.SPPParameter.MAX: pb.PoolingParameter.MAX,
               pb.SPPParameter.AVE: pb.PoolingParameter.AVE,
               pb.SPPParameter.STOCHASTIC: pb.PoolingParameter.STOCHASTIC}


@maps("SPP")
def spp(ctx: LayerContext) -> None:
    levels = ctx.shapes().geometry
    method = _SPP_METHOD[ctx.param.spp_param.pool]
    if len(levels) == 1:
        pool(ctx, ctx.inputs[0], levels[0], method, [ctx.outputs[0]])
        return
    flat = [ctx.op("Flatten", [pool(ctx, ctx.inputs[0], g, method, [None])], axis=1)
            for g in levels]
    ctx.op("Concat", flat, ctx.outputs[0], axis=1)


@maps("LRN")
def lrn(ctx: LayerContext) -> None:
    p = ctx.param.lrn_param
    n = int(p.local_size)
    x = ctx.inputs[0]
    if p.norm_region == pb.LRNParameter.ACROSS_CHANNELS:
        ctx.op("LRN", [x], ctx.outputs[0], size=n, alpha=float(p.alpha), beta=float(p.beta),
               bias=float(p.k))
        return
    pad = (n - 1) // 2
    mean_sq = ctx.op("AveragePool", [ctx.op("Mul", [x, x])], kernel_shape=[n, n], strides=[1, 1],
                     pads=[pad, pad, pad, pad], count_include_pad=1)
    scale = ctx.op("Add", [ctx.op("Mul", [mean_sq, ctx.const(p.alpha, "alpha")]),
                           ctx.const(1.0, "one")])
    ctx.op("Mul", [x, ctx.op("Pow", [scale, ctx.const(-p.beta, "neg_beta")])], ctx.outputs[0])
