"""Layers with weight matrices: Convolution, Deconvolution, InnerProduct, Embed.

- Convolution -> Conv, Deconvolution -> ConvTranspose, with the geometry netdef.shapes parsed
  (2-D or N-D: kernel, stride, symmetric pad, dilation per spatial axis, group); Caffe's weight
  layouts are ONNX's ((out, in/group, *kernel) and (in, out/group, *kernel)). A channel axis other
  than 1 views the
  leading axes as one batch axis (Reshape around the op). Each bottom gets its own node on the
  same initializers.
- InnerProduct: x viewed as (M, K) = (count(0, axis), count(axis)) -> Gemm with W (N, K) transposed
  (``transpose: true``: W (K, N) as is) and bias -> top shape x.shape[:axis] + (N,).
- Embed: Gather(W, int(x)) (Caffe's static_cast<int>: truncation, which Cast does) + bias.
"""
from __future__ import annotations

from netdef.geometry import ConvGeometry, ConvNdGeometry
from netdef.shapes import count
from runner.onnx_export.builder import INT64, LayerContext
from runner.onnx_export.plan import Dims
from runner.onnx_export.table import maps


def _conv_attrs(g: ConvGeometry | ConvNdGeometry) -> dict:
    """ONNX Conv/ConvTranspose attributes of netdef's geometry (symmetric pads)."""
    if isinstance(g, ConvGeometry):
        kernel, stride = (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w)
        pad, dilation = (g.pad_h, g.pad_w), (g.dilation_h, g.dilation_w)
    else:
        kernel, stride, pad, dilation = g.kernel, g.stride, g.pad, g.dilation
    return dict(kernel_shape=list(kernel), strides=list(stride), pads=list(pad) * 2,
                dilations=list(dilation), group=g.group)


@maps("Convolution", "Deconvolution")
def convolution(ctx: LayerContext) -> None:
    p = ctx.param.convolution_param
    attrs = _conv_attrs(ctx.shapes().geometry)
    w = ctx.param_tensor(0, "weight")
    b = [ctx.param_tensor(1, "bias")] if p.bias_term else []
    op = "ConvTranspose" if ctx.type == "Deconvolution" else "Conv"
    caxis = ctx.axis(p.axis)
    for j, (x, y) in enumerate(zip(ctx.inputs, ctx.outputs)):
        bd = ctx.bottom_dims(j)
        if caxis == 1:
            ctx.op(op, [x, w, *b], y, **attrs)
            continue
        ctx.static(bd, range(caxis, bd.rank), "the convolution")
        lead = count(bd.ref, 0, caxis)
        x4 = ctx.reshape(x, (lead,) + bd.ref[caxis:], dyn=0 if bd.dyn is not None else None)
        ctx.reshape(ctx.op(op, [x4, w, *b], **attrs), ctx.top_dims(j), y)


def _as_matrix(ctx: LayerContext, x: str, dims: Dims, axis: int) -> str:
    """x viewed as (count(0, axis), count(axis)), the batch axis (if any) in the first."""
    ctx.static(dims, range(axis, dims.rank), "the inner product")
    if axis == 1 and dims.rank == 2:
        return x
    if axis == 1:
        return ctx.op("Flatten", [x], axis=1)
    return ctx.reshape(x, (count(dims.ref, 0, axis), count(dims.ref, axis)),
                       dyn=0 if dims.dyn is not None else None)


@maps("InnerProduct")
def inner_product(ctx: LayerContext) -> None:
    p = ctx.param.inner_product_param
    bd = ctx.bottom_dims()
    axis = ctx.axis(p.axis)
    x2 = _as_matrix(ctx, ctx.inputs[0], bd, axis)
    ins = [x2, ctx.param_tensor(0, "weight")] + ([ctx.param_tensor(1, "bias")] if p.bias_term else [])
    td = ctx.top_dims()
    if td.rank == 2:
        ctx.op("Gemm", ins, ctx.outputs[0], transB=0 if p.transpose else 1)
    else:
        ctx.reshape(ctx.op("Gemm", ins, transB=0 if p.transpose else 1), td, ctx.outputs[0])


@maps("Embed")
def embed(ctx: LayerContext) -> None:
    p = ctx.param.embed_param
    index = ctx.op("Cast", [ctx.inputs[0]], to=INT64)
    w = ctx.param_tensor(0, "weight")
    if p.bias_term:
        y = ctx.op("Gather", [w, index], axis=0)
        ctx.op("Add", [y, ctx.param_tensor(1, "bias")], ctx.outputs[0])
    else:
        ctx.op("Gather", [w, index], ctx.outputs[0], axis=0)
