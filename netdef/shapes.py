"""Caffe's shape rules, one function per layer type, registered by type name.

    res = infer(layer_param, bottom_shapes, data_shapes=None)
    res.top_shapes    # list[tuple[int, ...]], one per ``layer_param.top``
    res.param_shapes  # list[tuple[int, ...]], the layer's learnable blobs in Caffe's order
    res.flops         # forward floating-point operations for this batch (convention below)

``infer`` is the single source of these rules: netdef.graph calls it for every layer and the
runner's layers call it from ``reshape``. Bad shapes raise ``netdef.errors.ShapeError`` naming the
layer, its type, and the shapes involved.

Data layers. Some layers' top shapes come from their data source (an LMDB's first Datum, an HDF5
file, an image on disk): Data, HDF5Data, ImageData without new_height/new_width, and Input with
no ``shape``. For those the caller passes ``data_shapes``: one full top shape per top (entries may
be None where the rule can derive the top itself, e.g. the label top of Data is (batch_size,)).
``needs_data_shapes(layer_param)`` says whether a layer needs them and ``datum_top_shapes`` turns a
Datum's (C, H, W) into a Data layer's tops (batch_size and crop_size applied) as Caffe does.
When ``data_shapes`` is given for any layer it overrides the param-derived shapes (so a runner can
reshape an Input layer to the batch it is fed).

FLOP convention (forward pass, whole batch, a multiply and an add count as 2):
- Convolution / Deconvolution / InnerProduct: 2 * MACs; bias adds are not counted.
- Pooling: kernel_h * kernel_w per output element (MAX compares or AVE adds); SPP: the same,
  summed over its pyramid levels.
- RNN / LSTM: 2 * MACs of the input, static-input and recurrent transforms (RNN: also W_ho), plus
  2 (RNN) or 8 (LSTM) per output element; LSTMUnit: 12 per cell element.
- LRN: (local_size + 3) per element (window sum of squares, scale, pow, multiply).
- Softmax: 3 per element (exp, sum, divide). Losses, per element of bottom[0]:
  SoftmaxWithLoss 3 (+1 per label), EuclideanLoss 3, SigmoidCrossEntropyLoss 4,
  ContrastiveLoss 4, HingeLoss / MultinomialLogisticLoss 2, InfogainLoss 3.
- BatchNorm 4 and MVN 4 per element; Scale 1 (2 with bias) and Bias 1 per element;
  Eltwise (n_bottoms - 1) per element.
- Elementwise activations (ReLU, Sigmoid, TanH, AbsVal, BNLL, ELU, Power, Exp, Log, Dropout,
  Threshold, PReLU, Clip, Swish): 1 per output element.
- Accuracy / ArgMax / Reduction: 1 per input element.
- Data layers, Input, Parameter, Split, Concat, Slice, Flatten, Reshape, Silence, Crop, Tile,
  Embed (a lookup), HDF5Output, BatchReindex, Filter, Im2col: 0 (memory only).
- SSD fork layers: Normalize 4 per element; Permute and PriorBox 0 (memory, or a function of the
  shapes only); DetectionOutput 2 per element of its loc and conf bottoms (decode, threshold; the
  NMS that follows depends on the data and is not counted).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netdef.errors import ShapeError
from netdef.geometry import (
    ConvGeometry,
    ConvNdGeometry,
    DetectionGeometry,
    Im2colGeometry,
    NormalizeGeometry,
    PermuteGeometry,
    PoolGeometry,
    PriorBoxGeometry,
)
from proto import caffe_pb2 as pb

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerShapes:
    """What ``infer`` returns: top shapes, learnable parameter shapes, forward FLOPs, and for
    Convolution / Deconvolution (``ConvGeometry`` for 2-D, ``ConvNdGeometry`` otherwise), Pooling
    (``PoolGeometry``), SPP (a tuple of ``PoolGeometry``, one per pyramid level), Im2col
    (``Im2colGeometry``), Crop (the offset on every axis of bottom 0, a tuple: 0 before
    ``crop_param.axis``) and the SSD layers the parsed ``netdef.geometry`` object the layer runs
    with (None for other types)."""
    top_shapes: list[Shape]
    param_shapes: list[Shape] = field(default_factory=list)
    flops: int = 0
    geometry: Any = None

    @property
    def num_params(self) -> int:
        return sum(count(s) for s in self.param_shapes)


Rule = Callable[["_Ctx"], LayerShapes]
RULES: dict[str, Rule] = {}

# layer types whose tops can need shapes from outside (their data source)
DATA_SOURCE_TYPES = ("Data", "HDF5Data", "ImageData", "Input")
# types Caffe implements as LossLayer subclasses: default loss_weight 1 on the first top
LOSS_TYPES = frozenset({"SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss",
                        "ContrastiveLoss", "HingeLoss", "InfogainLoss",
                        "MultinomialLogisticLoss"})


def register(*types: str) -> Callable[[Rule], Rule]:
    """Decorator: register a shape rule under one or more Caffe type names."""
    def deco(fn: Rule) -> Rule:
        for t in types:
            if t in RULES:
                raise ValueError(f"shape rule for '{t}' registered twice")
            RULES[t] = fn
        return fn
    return deco


def known_types() -> list[str]:
    """The layer types ``infer`` knows, sorted."""
    return sorted(RULES)


#: what the unknown-type error lists as known: ``known_types`` (types with shape rules) until the
#: runner installs its registry (``runner.registry``: the types that run), so that no error calls a
#: type known that a Net cannot build
_known_types_source: Callable[[], list[str]] = known_types


def set_known_types_source(source: Callable[[], list[str]]) -> None:
    """Make the unknown-type error list ``source()`` (the runner's registry of runnable types)."""
    global _known_types_source
    _known_types_source = source


def count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Product of shape[start:end] (1 for an empty range), like Blob::count."""
    return math.prod(shape[start:end])


def canonical_axis(axis: int, ndim: int, where: str, what: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end; out of range is a
    ShapeError naming ``where`` (the layer)."""
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{where}: {what} {axis} out of range for a {ndim}-D blob")
    return axis + ndim if axis < 0 else axis


def fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


class _Ctx:
    """What a rule sees: the layer, its bottoms, how many tops, optional data shapes."""

    def __init__(self, lp: pb.LayerParameter, bottoms: list[Shape],
                 data_shapes: list[Shape | None] | None):
        self.lp = lp
        self.b = bottoms
        self.ntop = len(lp.top)
        self.data = data_shapes

    def fail(self, what: str) -> ShapeError:
        b = f" [bottom shapes: {', '.join(fmt(s) for s in self.b)}]" if self.b else ""
        return ShapeError(f"layer '{self.lp.name}' ({self.lp.type}): {what}{b}")

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            raise self.fail(what)

    def nbottom(self, exact: int | None = None, lo: int | None = None, hi: int | None = None):
        n = len(self.b)
        if exact is not None and n != exact:
            raise self.fail(f"takes {exact} bottom blob(s), got {n}")
        if lo is not None and n < lo:
            raise self.fail(f"takes at least {lo} bottom blob(s), got {n}")
        if hi is not None and n > hi:
            raise self.fail(f"takes at most {hi} bottom blob(s), got {n}")

    def ntops(self, exact: int | None = None, lo: int | None = None, hi: int | None = None):
        n = self.ntop
        if exact is not None and n != exact:
            raise self.fail(f"produces {exact} top blob(s), got {n}")
        if lo is not None and n < lo:
            raise self.fail(f"produces at least {lo} top blob(s), got {n}")
        if hi is not None and n > hi:
            raise self.fail(f"produces at most {hi} top blob(s), got {n}")

    def axis(self, axis: int, shape: Shape, what: str = "axis") -> int:
        """``canonical_axis`` of ``axis`` in ``shape``, its error naming this layer."""
        return canonical_axis(axis, len(shape), f"layer '{self.lp.name}' ({self.lp.type}), bottom "
                              f"{fmt(shape)}", what)


def needs_data_shapes(lp: pb.LayerParameter) -> bool:
    """True when this layer's top shapes depend on its data source (see module docstring)."""
    if lp.type in ("Data", "HDF5Data"):
        return True
    if lp.type == "ImageData":
        return not (lp.image_data_param.new_height > 0 and lp.image_data_param.new_width > 0)
    if lp.type == "Input":
        return len(lp.input_param.shape) == 0
    return False


def datum_top_shapes(lp: pb.LayerParameter, chw: Sequence[int]) -> list[Shape]:
    """Top shapes of a Data layer whose first Datum is (C, H, W): data (batch, C, crop or H,
    crop or W) and, when the layer has a second top, label (batch,). Caffe's
    DataTransformer::InferBlobShape plus DataLayer::DataLayerSetUp."""
    c, h, w = (int(x) for x in chw)
    crop = lp.transform_param.crop_size
    batch = lp.data_param.batch_size if lp.type == "Data" else lp.image_data_param.batch_size
    if crop:
        if h < crop or w < crop:
            raise ShapeError(f"layer '{lp.name}' ({lp.type}): crop_size {crop} is larger than the "
                             f"data ({c}, {h}, {w})")
        h = w = crop
    tops = [(batch, c, h, w)]
    if len(lp.top) > 1:
        tops.append((batch,))
    return tops


def infer(layer_param: pb.LayerParameter, bottom_shapes: Sequence[Sequence[int]],
          data_shapes: Sequence[Sequence[int] | None] | None = None) -> LayerShapes:
    """Top shapes, parameter shapes and forward FLOPs of one layer given its bottom shapes, with
    Caffe's exact rules. ``data_shapes`` (one full shape or None per top) supplies the tops of
    layers whose shapes come from their data source. Raises ShapeError on an impossible shape or
    an unknown type (the message lists the known types: with the runner loaded, those that run)."""
    t = layer_param.type
    rule = RULES.get(t)
    if rule is None:
        raise ShapeError(f"layer '{layer_param.name}': unknown layer type '{t}' (known types: "
                         f"{', '.join(_known_types_source())})")
    bottoms = [tuple(int(d) for d in s) for s in bottom_shapes]
    ds = None if data_shapes is None else [None if s is None else tuple(int(d) for d in s)
                                           for s in data_shapes]
    ctx = _Ctx(layer_param, bottoms, ds)
    for s in bottoms:
        if any(d < 0 for d in s):
            raise ctx.fail("a bottom has a negative dimension")
    res = rule(ctx)
    if len(res.top_shapes) != ctx.ntop:
        raise ctx.fail(f"produces {len(res.top_shapes)} top blob(s) but the layer lists {ctx.ntop}")
    for s in res.top_shapes:
        if any(d < 0 for d in s):
            raise ctx.fail(f"computed a negative top dimension {fmt(s)}")
    return res


def _data_tops(ctx: _Ctx, derived: list[Shape | None]) -> list[Shape]:
    """Merge caller-given data shapes over derived ones; error if a top stays unknown."""
    tops: list[Shape | None] = list(derived) + [None] * (ctx.ntop - len(derived))
    if ctx.data is not None:
        if len(ctx.data) > ctx.ntop:
            raise ctx.fail(f"{len(ctx.data)} data shapes given for {ctx.ntop} top(s)")
        for i, s in enumerate(ctx.data):
            if s is not None:
                tops[i] = s
    missing = [ctx.lp.top[i] for i, s in enumerate(tops) if s is None]
    if missing:
        src = _source(ctx.lp)
        raise ctx.fail(
            f"the shape of top(s) {', '.join(repr(m) for m in missing)} depends on the data "
            f"source{f' {src!r}' if src else ''}; pass it, e.g. input_shapes={{'{missing[0]}': "
            f"(N, C, H, W)}} (nbcaffe inspect --input-shape {missing[0]}=N,C,H,W)")
    return tops  # type: ignore[return-value]


def _source(lp: pb.LayerParameter) -> str:
    for f in ("data_param", "hdf5_data_param", "image_data_param"):
        if lp.HasField(f):
            return getattr(lp, f).source
    return ""


# --------------------------------------------------------------------------- data layers

@register("Input")
def _input(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    shapes = [tuple(s.dim) for s in ctx.lp.input_param.shape]
    n = len(shapes)
    ctx.check(n in (0, 1, ctx.ntop), f"input_param gives {n} shapes for {ctx.ntop} tops; give 0, "
              "1 or one per top")
    derived: list[Shape | None]
    derived = [None] * ctx.ntop if n == 0 else [shapes[0] if n == 1 else shapes[i]
                                                for i in range(ctx.ntop)]
    return LayerShapes(_data_tops(ctx, derived))


@register("Data")
def _data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(lo=1, hi=2)
    batch = ctx.lp.data_param.batch_size
    ctx.check(batch > 0, "data_param.batch_size must be > 0")
    derived: list[Shape | None] = [None] + ([(batch,)] if ctx.ntop > 1 else [])
    return LayerShapes(_data_tops(ctx, derived))


@register("ImageData")
def _image_data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(lo=1, hi=2)
    p = ctx.lp.image_data_param
    ctx.check((p.new_height == 0) == (p.new_width == 0),
              "new_height and new_width must be set together")
    batch = p.batch_size
    ctx.check(batch > 0, "image_data_param.batch_size must be > 0")
    first: Shape | None = None
    if p.new_height > 0:
        h, w = p.new_height, p.new_width
        crop = ctx.lp.transform_param.crop_size
        if crop:
            ctx.check(crop <= h and crop <= w, f"crop_size {crop} larger than the resized image "
                      f"{h}x{w}")
            h = w = crop
        first = (batch, 3 if p.is_color else 1, h, w)
    derived: list[Shape | None] = [first] + ([(batch,)] if ctx.ntop > 1 else [])
    return LayerShapes(_data_tops(ctx, derived))


@register("WindowData")
def _window_data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(exact=2)
    p = ctx.lp.window_data_param
    crop = ctx.lp.transform_param.crop_size
    ctx.check(crop > 0, "transform_param.crop_size must be > 0 for WindowData")
    derived: list[Shape | None] = [(p.batch_size, 3, crop, crop), (p.batch_size,)]
    return LayerShapes(_data_tops(ctx, derived))


@register("HDF5Data")
def _hdf5_data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(lo=1)
    ctx.check(ctx.lp.hdf5_data_param.batch_size > 0, "hdf5_data_param.batch_size must be > 0")
    return LayerShapes(_data_tops(ctx, [None] * ctx.ntop))


@register("MemoryData")
def _memory_data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(exact=2)
    p = ctx.lp.memory_data_param
    ctx.check(p.batch_size * p.channels * p.height * p.width > 0,
              "batch_size, channels, height, and width must be specified and positive in "
              "memory_data_param")
    derived: list[Shape | None] = [(p.batch_size, p.channels, p.height, p.width), (p.batch_size,)]
    return LayerShapes(_data_tops(ctx, derived))


@register("DummyData")
def _dummy_data(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    p = ctx.lp.dummy_data_param
    n = ctx.ntop
    ctx.check(len(p.data_filler) in (0, 1, n), f"number of data fillers ({len(p.data_filler)}) "
              f"must be 0, 1 or the number of tops ({n})")
    legacy = [p.num, p.channels, p.height, p.width]
    if any(len(x) for x in legacy):
        ctx.check(len(p.shape) == 0, "both shape and legacy num/channels/height/width given")
        for name, x in zip(("num", "channels", "height", "width"), legacy):
            ctx.check(len(x) in (1, n), f"dummy_data_param.{name} must be given once or once "
                      f"per top ({n}), got {len(x)}")
        tops = [tuple(int(x[0] if len(x) == 1 else x[i]) for x in legacy) for i in range(n)]
    else:
        ctx.check(len(p.shape) in (1, n), f"dummy_data_param.shape must be given once or once "
                  f"per top ({n}), got {len(p.shape)}")
        tops = [tuple(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]
    return LayerShapes(_data_tops(ctx, tops))


# --------------------------------------------------------------------------- conv / pool / ip

def _conv_geometry(ctx: _Ctx, n_spatial: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, stride, pad, dilation per spatial axis from ConvolutionParameter."""
    p = ctx.lp.convolution_param

    def repeated(name: str, values: Sequence[int], default: int | None, h: str, w: str):
        has_hw = p.HasField(h) or p.HasField(w)
        if has_hw:
            ctx.check(n_spatial == 2, f"{h} & {w} can only be used for 2D convolution")
            ctx.check(len(values) == 0, f"either {name} or {h}/{w} should be given; not both")
            return [getattr(p, h), getattr(p, w)]
        n = len(values)
        if n == 0:
            if default is None:
                raise ctx.fail(f"{name} must be given")
            return [default] * n_spatial
        ctx.check(n in (1, n_spatial), f"{name} must be given once, or once per spatial dimension "
                  f"({name} given {n} times; {n_spatial} spatial dims)")
        return [int(values[0 if n == 1 else i]) for i in range(n_spatial)]

    kernel = repeated("kernel_size", p.kernel_size, None, "kernel_h", "kernel_w")
    stride = repeated("stride", p.stride, 1, "stride_h", "stride_w")
    pad = repeated("pad", p.pad, 0, "pad_h", "pad_w")
    n = len(p.dilation)
    ctx.check(n in (0, 1, n_spatial), f"dilation must be given 0, 1 or {n_spatial} times, got {n}")
    dilation = [1] * n_spatial if n == 0 else [int(p.dilation[0 if n == 1 else i])
                                               for i in range(n_spatial)]
    ctx.check(all(k > 0 for k in kernel), f"filter dimensions must be nonzero, got {kernel}")
    ctx.check(all(s > 0 for s in stride), f"stride dimensions must be nonzero, got {stride}")
    ctx.check(all(d > 0 for d in dilation), f"dilation must be nonzero, got {dilation}")
    return kernel, stride, pad, dilation


def _conv_out(ctx: _Ctx, in_spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
              pad: Sequence[int], dilation: Sequence[int]) -> list[int]:
    """Caffe's convolution output size per spatial axis, (in + 2*pad - extent) // stride + 1 with
    extent = dilation*(kernel-1) + 1; the extent must fit the padded input."""
    out = []
    for i, (x, k, s, pd, d) in enumerate(zip(in_spatial, kernel, stride, pad, dilation)):
        extent = d * (k - 1) + 1
        ctx.check(x + 2 * pd >= extent, f"spatial axis {i}: kernel extent {extent} (kernel {k}, "
                  f"dilation {d}) is larger than the padded input {x} + 2*{pd}")
        out.append((x + 2 * pd - extent) // s + 1)
    return out


def _conv_like(ctx: _Ctx, deconv: bool) -> LayerShapes:
    ctx.nbottom(lo=1)
    ctx.check(ctx.ntop == len(ctx.b), f"needs one top per bottom ({len(ctx.b)} bottoms, "
              f"{ctx.ntop} tops)")
    p = ctx.lp.convolution_param
    b0 = ctx.b[0]
    for i, s in enumerate(ctx.b[1:], 1):
        ctx.check(s == b0, f"shape mismatch - bottom[0]: {fmt(b0)} vs. bottom[{i}]: {fmt(s)}")
    caxis = ctx.axis(p.axis, b0)
    n_spatial = len(b0) - caxis - 1
    ctx.check(n_spatial >= 0, "no spatial axes after the channel axis")
    kernel, stride, pad, dilation = _conv_geometry(ctx, n_spatial)
    channels = b0[caxis]
    num_output = p.num_output
    group = p.group
    ctx.check(num_output > 0, "convolution_param.num_output must be > 0")
    ctx.check(group > 0, "group must be > 0")
    ctx.check(channels % group == 0, f"input channels ({channels}) must be a multiple of group "
              f"({group})")
    ctx.check(num_output % group == 0, f"num_output ({num_output}) must be a multiple of group "
              f"({group})")
    in_spatial = b0[caxis + 1:]
    if deconv:
        out_spatial = []
        for i, (x, k, s, pd, d) in enumerate(zip(in_spatial, kernel, stride, pad, dilation)):
            o = s * (x - 1) + d * (k - 1) + 1 - 2 * pd
            ctx.check(o > 0, f"spatial axis {i}: deconvolution output {o} <= 0 (input {x}, "
                      f"kernel {k}, stride {s}, pad {pd}, dilation {d})")
            out_spatial.append(o)
    else:
        out_spatial = _conv_out(ctx, in_spatial, kernel, stride, pad, dilation)
    top = tuple(b0[:caxis]) + (num_output,) + tuple(out_spatial)
    if deconv:
        weight = (channels, num_output // group) + tuple(kernel)
    else:
        weight = (num_output, channels // group) + tuple(kernel)
    params = [weight] + ([(num_output,)] if p.bias_term else [])
    outer = count(b0, 0, caxis)
    ksize = math.prod(kernel)
    if deconv:
        macs = outer * channels * count(in_spatial) * (num_output // group) * ksize
    else:
        macs = outer * num_output * count(out_spatial) * (channels // group) * ksize
    # a deconvolution runs as the forward convolution from its top back onto its bottom
    src, dst = (out_spatial, in_spatial) if deconv else (in_spatial, out_spatial)
    c_src, c_dst = (num_output, channels) if deconv else (channels, num_output)
    geometry: ConvGeometry | ConvNdGeometry
    if n_spatial == 2 and not p.force_nd_im2col:
        geometry = ConvGeometry(outer, c_src, src[0], src[1], c_dst, dst[0], dst[1],
                                kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1],
                                dilation[0], dilation[1], group)
    else:
        # Caffe's im2col_nd path (any number of spatial axes but 0, or force_nd_im2col)
        ctx.check(n_spatial >= 1, "convolution needs at least 1 spatial axis after the channel "
                  f"axis {caxis}")
        geometry = ConvNdGeometry(outer, c_src, tuple(src), c_dst, tuple(dst), tuple(kernel),
                                  tuple(stride), tuple(pad), tuple(dilation), group)
    return LayerShapes([top] * ctx.ntop, params, 2 * macs * len(ctx.b), geometry)


@register("Convolution")
def _convolution(ctx: _Ctx) -> LayerShapes:
    return _conv_like(ctx, deconv=False)


@register("Deconvolution")
def _deconvolution(ctx: _Ctx) -> LayerShapes:
    return _conv_like(ctx, deconv=True)


@register("Pooling")
def _pooling(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    p = ctx.lp.pooling_param
    ctx.ntops(lo=1, hi=2 if p.pool == pb.PoolingParameter.MAX else 1)
    b = ctx.b[0]
    ctx.check(len(b) == 4, f"input must have 4 axes (num, channels, height, width), got {len(b)}")
    n, c, h, w = b
    if p.global_pooling:
        ctx.check(not (p.HasField("kernel_size") or p.HasField("kernel_h")
                       or p.HasField("kernel_w")),
                  "with global_pooling: true the filter size cannot be given")
        kh, kw = h, w
    else:
        has_hw = p.HasField("kernel_h") and p.HasField("kernel_w")
        ctx.check(p.HasField("kernel_size") != has_hw,
                  "filter size is kernel_size OR kernel_h and kernel_w; not both")
        ctx.check(p.HasField("kernel_size") or has_hw,
                  "for non-square filters both kernel_h and kernel_w are required")
        kh, kw = (p.kernel_h, p.kernel_w) if has_hw else (p.kernel_size, p.kernel_size)
    ctx.check(kh > 0 and kw > 0, "filter dimensions cannot be zero")
    ctx.check((not p.HasField("pad") and p.HasField("pad_h") and p.HasField("pad_w"))
              or (not p.HasField("pad_h") and not p.HasField("pad_w")),
              "pad is pad OR pad_h and pad_w are required")
    ctx.check((not p.HasField("stride") and p.HasField("stride_h") and p.HasField("stride_w"))
              or (not p.HasField("stride_h") and not p.HasField("stride_w")),
              "stride is stride OR stride_h and stride_w are required")
    ph, pw = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    sh, sw = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    ctx.check(sh > 0 and sw > 0, "stride cannot be zero")
    if p.global_pooling:
        ctx.check(ph == 0 and pw == 0 and sh == 1 and sw == 1,
                  "with global_pooling: true only pad = 0 and stride = 1 are allowed")
    geometry = _pool_geometry(ctx, b, (kh, kw), (sh, sw), (ph, pw), p.round_mode, p.pool, "")
    top = (n, c, geometry.out_h, geometry.out_w)
    return LayerShapes([top] * ctx.ntop, [], count(top) * kh * kw, geometry)


def _pool_geometry(ctx: _Ctx, b: Shape, kernel: tuple[int, int], stride: tuple[int, int],
                   pad: tuple[int, int], round_mode: int, pool: int, where: str) -> PoolGeometry:
    """Caffe's PoolingLayer rules for a (N, C, H, W) input: padding only for MAX/AVE and smaller
    than the kernel, the kernel within the padded input, the output size by ``round_mode`` (CEIL:
    ceil((H + 2*pad - kernel) / stride) + 1) and, with any padding, the last window dropped when
    it would start at or past H + pad. ``where`` prefixes the messages (SPP's pyramid level)."""
    n, c, h, w = b
    kh, kw = kernel
    sh, sw = stride
    ph, pw = pad
    if ph or pw:
        ctx.check(pool in (pb.PoolingParameter.AVE, pb.PoolingParameter.MAX),
                  f"{where}padding is implemented only for AVE and MAX pooling")
        ctx.check(ph < kh and pw < kw, f"{where}pad ({ph}, {pw}) must be smaller than the kernel "
                  f"({kh}, {kw})")
    ctx.check(h + 2 * ph >= kh and w + 2 * pw >= kw,
              f"{where}kernel ({kh}, {kw}) is larger than the padded input ({h} + 2*{ph}, {w} + "
              f"2*{pw})")
    if round_mode == pb.PoolingParameter.FLOOR:
        oh = (h + 2 * ph - kh) // sh + 1
        ow = (w + 2 * pw - kw) // sw + 1
    else:
        oh = -(-(h + 2 * ph - kh) // sh) + 1
        ow = -(-(w + 2 * pw - kw) // sw) + 1
    if ph or pw:
        # the last pooling window must start inside the image (or its left/top padding)
        if (oh - 1) * sh >= h + ph:
            oh -= 1
        if (ow - 1) * sw >= w + pw:
            ow -= 1
    return PoolGeometry(n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw)


def spp_level(h: int, w: int, level: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """SPP's pooling window at pyramid ``level`` of an H x W input (Caffe's
    SPPLayer::GetPoolingParam): bins = 2**level per side; kernel = ceil(H / bins); the
    remainder kernel*bins - H is padded, pad = (remainder + 1) // 2; stride = kernel (the same
    for W). Returns ((kernel_h, kernel_w), (pad_h, pad_w))."""
    bins = 2 ** level
    kh, kw = -(-h // bins), -(-w // bins)
    return (kh, kw), ((kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2)


@register("SPP")
def _spp(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.spp_param
    b = ctx.b[0]
    ctx.check(len(b) == 4, f"input must have 4 axes (num, channels, height, width), got {len(b)}")
    n, c, h, w = b
    ctx.check(h > 0 and w > 0, "input dimensions cannot be zero")
    ctx.check(p.pyramid_height >= 1, f"spp_param.pyramid_height must be >= 1, got "
              f"{p.pyramid_height}")
    pool = {pb.SPPParameter.MAX: pb.PoolingParameter.MAX, pb.SPPParameter.AVE:
            pb.PoolingParameter.AVE, pb.SPPParameter.STOCHASTIC: pb.PoolingParameter.STOCHASTIC}[p.pool]
    levels = []
    for i in range(p.pyramid_height):
        kernel, pad = spp_level(h, w, i)
        levels.append(_pool_geometry(ctx, b, kernel, kernel, pad, pb.PoolingParameter.CEIL, pool,
                                     f"pyramid level {i} (kernel {kernel}, pad {pad}): "))
    flops = sum(n * c * g.out_h * g.out_w * g.kernel_h * g.kernel_w for g in levels)
    if len(levels) == 1:       # Caffe runs the one pooling layer alone: its 4-D top
        top: Shape = (n, c, levels[0].out_h, levels[0].out_w)
    else:                      # the flattened levels, concatenated along axis 1
        top = (n, sum(c * g.out_h * g.out_w for g in levels))
    return LayerShapes([top], [], flops, tuple(levels))


@register("InnerProduct")
def _inner_product(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.inner_product_param
    b = ctx.b[0]
    ctx.check(p.num_output > 0, "inner_product_param.num_output must be > 0")
    axis = ctx.axis(p.axis, b)
    k = count(b, axis)
    m = count(b, 0, axis)
    n = p.num_output
    weight = (k, n) if p.transpose else (n, k)
    params = [weight] + ([(n,)] if p.bias_term else [])
    return LayerShapes([tuple(b[:axis]) + (n,)], params, 2 * m * n * k)


@register("Embed")
def _embed(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.embed_param
    ctx.check(p.num_output > 0 and p.input_dim > 0, "embed_param.num_output and input_dim must "
              "be > 0")
    b = ctx.b[0]
    params = [(p.input_dim, p.num_output)] + ([(p.num_output,)] if p.bias_term else [])
    return LayerShapes([b + (p.num_output,)], params, 0)


@register("LRN")
def _lrn(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.lrn_param
    b = ctx.b[0]
    ctx.check(len(b) == 4, f"input must have 4 axes (num, channels, height, width), got {len(b)}")
    ctx.check(p.local_size % 2 == 1, f"LRN only supports odd values for local_size, got "
              f"{p.local_size}")
    return LayerShapes([b], [], count(b) * (p.local_size + 3))


# --------------------------------------------------------------------------- elementwise

def _same_shape(ctx: _Ctx, flops_per: int = 1) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    b = ctx.b[0]
    return LayerShapes([b], [], count(b) * flops_per)


for _t in ("ReLU", "Sigmoid", "TanH", "AbsVal", "BNLL", "ELU", "Power", "Exp", "Log", "Dropout",
           "Threshold", "Swish"):
    register(_t)(_same_shape)


@register("Clip")
def _clip(ctx: _Ctx) -> LayerShapes:
    p = ctx.lp.clip_param
    ctx.check(ctx.lp.HasField("clip_param") and p.HasField("min") and p.HasField("max"),
              "clip_param.min and clip_param.max are required")
    return _same_shape(ctx)


@register("Softmax")
def _softmax(ctx: _Ctx) -> LayerShapes:
    res = _same_shape(ctx, 3)
    ctx.axis(ctx.lp.softmax_param.axis, ctx.b[0], "softmax axis")
    return res


def legacy_shape(shape: Sequence[int]) -> Shape | None:
    """Caffe's Blob::LegacyShape view (num, channels, height, width) of a blob of at most 4 axes
    (missing trailing axes are 1); None for more axes, which Caffe's legacy accessors refuse."""
    if len(shape) > 4:
        return None
    return tuple(int(d) for d in shape) + (1,) * (4 - len(shape))


def legacy_4d(ctx: _Ctx, shape: Shape) -> Shape:
    """``legacy_shape`` of a bottom; more than 4 axes is this layer's ShapeError."""
    four = legacy_shape(shape)
    ctx.check(four is not None, f"cannot use legacy accessors on a blob with more than 4 axes "
              f"{fmt(shape)}")
    return four


@register("MVN")
def _mvn(ctx: _Ctx) -> LayerShapes:
    res = _same_shape(ctx, 4)
    # Caffe's MVNLayer::Reshape gives the top the legacy 4-D shape (num, channels, height, width)
    return LayerShapes([legacy_4d(ctx, ctx.b[0])], [], res.flops)


@register("PReLU")
def _prelu(ctx: _Ctx) -> LayerShapes:
    res = _same_shape(ctx, 1)
    b = ctx.b[0]
    ctx.check(len(b) >= 2, "number of axes of bottom blob must be >= 2 for PReLU")
    # channel_shared: Caffe's slope blob is 0-D (vector<int>(0)), one value
    return LayerShapes(res.top_shapes, [() if ctx.lp.prelu_param.channel_shared else (b[1],)],
                       res.flops)


@register("BatchNorm")
def _batch_norm(ctx: _Ctx) -> LayerShapes:
    res = _same_shape(ctx, 4)
    b = ctx.b[0]
    c = 1 if len(b) == 1 else b[1]
    return LayerShapes(res.top_shapes, [(c,), (c,), (1,)], res.flops)


def _scale_bias_shape(ctx: _Ctx, axis_: int, num_axes: int, what: str) -> Shape:
    b0 = ctx.b[0]
    ctx.check(num_axes >= -1, f"num_axes must be non-negative, or -1 to extend to the end of "
              f"bottom[0], got {num_axes}")
    if num_axes == 0:
        return ()
    axis = ctx.axis(axis_, b0)
    end = len(b0) if num_axes == -1 else axis + num_axes
    ctx.check(end <= len(b0), f"{what} blob's shape extends past bottom[0]'s shape when applied "
              f"starting with bottom[0] axis = {axis}")
    return tuple(b0[axis:end])


def _scale_or_bias(ctx: _Ctx, axis: int, num_axes: int, with_bias: bool, what: str,
                   flops_per: int) -> LayerShapes:
    ctx.nbottom(lo=1, hi=2)
    ctx.ntops(exact=1)
    b0 = ctx.b[0]
    params: list[Shape] = []
    if len(ctx.b) == 2:
        other = ctx.b[1]
        start = 0 if len(other) == 0 else ctx.axis(axis, b0)
        ctx.check(len(b0) >= start + len(other),
                  f"{what} blob {fmt(other)} does not fit bottom[0] starting at axis {start}")
        for i, d in enumerate(other):
            ctx.check(b0[start + i] == d, f"dimension mismatch between bottom[0]->shape("
                      f"{start + i}) = {b0[start + i]} and {what}->shape({i}) = {d}")
    else:
        params.append(_scale_bias_shape(ctx, axis, num_axes, what))
    if with_bias:       # Caffe's ScaleLayer: the bias spans bottom[1]'s axes when it has one
        bias_axes = len(ctx.b[1]) if len(ctx.b) == 2 else num_axes
        params.append(_scale_bias_shape(ctx, axis, bias_axes, "bias"))
    return LayerShapes([b0], params, count(b0) * flops_per)


@register("Scale")
def _scale(ctx: _Ctx) -> LayerShapes:
    p = ctx.lp.scale_param
    return _scale_or_bias(ctx, p.axis, p.num_axes, p.bias_term, "scale", 2 if p.bias_term else 1)


@register("Bias")
def _bias(ctx: _Ctx) -> LayerShapes:
    p = ctx.lp.bias_param
    return _scale_or_bias(ctx, p.axis, p.num_axes, False, "bias", 1)


@register("Eltwise")
def _eltwise(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=2)
    ctx.ntops(exact=1)
    p = ctx.lp.eltwise_param
    ctx.check(len(p.coeff) in (0, len(ctx.b)), "Eltwise layer takes one coefficient per bottom "
              f"blob ({len(ctx.b)} bottoms, {len(p.coeff)} coeff)")
    ctx.check(not (p.operation == pb.EltwiseParameter.PROD and len(p.coeff)),
              "Eltwise layer only takes coefficients for summation")
    b0 = ctx.b[0]
    for i, s in enumerate(ctx.b[1:], 1):
        ctx.check(s == b0, f"all bottoms must have the same shape: bottom[0] {fmt(b0)}, "
                  f"bottom[{i}] {fmt(s)}")
    return LayerShapes([b0], [], count(b0) * (len(ctx.b) - 1))


# --------------------------------------------------------------------------- losses / metrics

def _loss_first_dims(ctx: _Ctx) -> None:
    a, b = ctx.b[0], ctx.b[1]
    ctx.check(len(a) > 0 and len(b) > 0 and a[0] == b[0],
              f"the data and label should have the same first dimension: {fmt(a)} vs {fmt(b)}")


@register("SoftmaxWithLoss")
def _softmax_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=2, hi=2)
    ctx.ntops(lo=1, hi=2)
    _loss_first_dims(ctx)
    b0, lab = ctx.b
    axis = ctx.axis(ctx.lp.softmax_param.axis, b0, "softmax axis")
    ctx.check(count(b0, 0, axis) * count(b0, axis + 1) == count(lab),
              f"number of labels must match number of predictions; prediction shape {fmt(b0)} "
              f"with softmax axis {axis} needs {count(b0, 0, axis) * count(b0, axis + 1)} labels, "
              f"label shape {fmt(lab)} has {count(lab)}")
    tops: list[Shape] = [()] + ([b0] if ctx.ntop > 1 else [])
    return LayerShapes(tops, [], 3 * count(b0) + count(lab))


@register("EuclideanLoss")
def _euclidean_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    _loss_first_dims(ctx)
    a, b = ctx.b
    ctx.check(count(a, 1) == count(b, 1), f"inputs must have the same dimension: {fmt(a)} vs "
              f"{fmt(b)}")
    return LayerShapes([()], [], 3 * count(a))


@register("SigmoidCrossEntropyLoss")
def _sigmoid_ce_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    _loss_first_dims(ctx)
    a, b = ctx.b
    ctx.check(count(a) == count(b), f"SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same "
              f"count: {fmt(a)} vs {fmt(b)}")
    return LayerShapes([()], [], 4 * count(a))


@register("ContrastiveLoss")
def _contrastive_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=3)
    ctx.ntops(exact=1)
    _loss_first_dims(ctx)
    a, b, y = ctx.b

    def chw(s: Shape) -> tuple[int, int, int]:
        s4 = tuple(s) + (1,) * (4 - len(s))
        return s4[1], s4[2], s4[3]

    ca, ha, wa = chw(a)
    cb, hb, wb = chw(b)
    cy, hy, wy = chw(y)
    ctx.check(ca == cb, f"bottom[0] and bottom[1] must have the same channels: {fmt(a)} vs {fmt(b)}")
    ctx.check(ha == wa == hb == wb == 1, f"bottom[0] and bottom[1] must have height = width = 1: "
              f"{fmt(a)}, {fmt(b)}")
    ctx.check(cy == hy == wy == 1, f"bottom[2] (similarity) must be (N, 1, 1, 1), got {fmt(y)}")
    return LayerShapes([()], [], 4 * count(a))


@register("HingeLoss", "MultinomialLogisticLoss")
def _simple_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    _loss_first_dims(ctx)
    a, lab = ctx.b
    ctx.check(count(lab, 1) == 1, f"label must have one value per example, got {fmt(lab)}")
    return LayerShapes([()], [], 2 * count(a))


@register("InfogainLoss")
def _infogain_loss(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=2, hi=3)
    ctx.ntops(lo=1, hi=2)
    _loss_first_dims(ctx)
    a, lab = ctx.b[0], ctx.b[1]
    axis = ctx.axis(ctx.lp.infogain_loss_param.axis, a, "infogain axis")
    positions = count(a, 0, axis) * count(a, axis + 1)
    ctx.check(positions == count(lab), f"number of labels must match number of predictions; "
              f"prediction shape {fmt(a)} with infogain axis {axis} needs {positions} labels, label "
              f"shape {fmt(lab)} has {count(lab)}")
    if len(ctx.b) == 3:
        c = a[axis]
        ctx.check(count(ctx.b[2]) == c * c, f"the infogain matrix H (bottom[2]) must have "
                  f"{c}x{c} = {c * c} values, got {fmt(ctx.b[2])}")
    tops: list[Shape] = [()] + ([a] if ctx.ntop > 1 else [])
    return LayerShapes(tops, [], 3 * count(a))


@register("Accuracy")
def _accuracy(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(lo=1, hi=2)
    p = ctx.lp.accuracy_param
    b0, lab = ctx.b
    ctx.check(count(lab) > 0 and p.top_k <= count(b0) // count(lab),
              f"top_k ({p.top_k}) must be less than or equal to the number of classes")
    axis = ctx.axis(p.axis, b0, "accuracy axis")
    ctx.check(count(b0, 0, axis) * count(b0, axis + 1) == count(lab),
              f"number of labels must match number of predictions; prediction shape {fmt(b0)} "
              f"with label axis {axis} needs {count(b0, 0, axis) * count(b0, axis + 1)} labels, "
              f"label shape {fmt(lab)} has {count(lab)}")
    tops: list[Shape] = [()] + ([(b0[axis],)] if ctx.ntop > 1 else [])
    return LayerShapes(tops, [], count(b0))


@register("ArgMax")
def _argmax(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.argmax_param
    b = ctx.b[0]
    ctx.check(p.top_k >= 1, "top_k must be >= 1")
    if p.HasField("axis"):
        axis = ctx.axis(p.axis, b)
        ctx.check(p.top_k <= b[axis], f"top_k ({p.top_k}) must be <= the dimension of the axis "
                  f"({b[axis]})")
        top = list(b)
        top[axis] = p.top_k
    else:
        ctx.check(p.top_k <= count(b, 1), f"top_k ({p.top_k}) must be <= the number of classes "
                  f"({count(b, 1)})")
        top = [1] * max(len(b), 3)
        top[0] = b[0]
        top[2] = p.top_k
        if p.out_max_val:
            top[1] = 2
    return LayerShapes([tuple(top)], [], count(b))


# --------------------------------------------------------------------------- structure

@register("Split")
def _split(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(lo=1)
    return LayerShapes([ctx.b[0]] * ctx.ntop, [], 0)


@register("Silence")
def _silence(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=1)
    ctx.ntops(exact=0)
    return LayerShapes([], [], 0)


@register("HDF5Output")
def _hdf5_output(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=0)
    return LayerShapes([], [], 0)


@register("Concat")
def _concat(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=1)
    ctx.ntops(exact=1)
    p = ctx.lp.concat_param
    ctx.check(not (p.HasField("axis") and p.HasField("concat_dim")),
              "either axis or concat_dim should be specified; not both")
    b0 = ctx.b[0]
    if p.HasField("concat_dim"):
        axis = p.concat_dim
        ctx.check(axis < len(b0), f"concat_dim {axis} out of range for {len(b0)}-D bottoms")
    else:
        axis = ctx.axis(p.axis, b0, "concat axis")
    top = list(b0)
    for i, s in enumerate(ctx.b[1:], 1):
        ctx.check(len(s) == len(b0), f"all inputs must have the same #axes: bottom[0] {fmt(b0)}, "
                  f"bottom[{i}] {fmt(s)}")
        for j in range(len(b0)):
            if j != axis:
                ctx.check(s[j] == b0[j], f"all inputs must have the same shape, except at concat "
                          f"axis {axis}: bottom[0] {fmt(b0)}, bottom[{i}] {fmt(s)}")
        top[axis] += s[axis]
    return LayerShapes([tuple(top)], [], 0)


@register("Slice")
def _slice(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(lo=1)
    p = ctx.lp.slice_param
    b = ctx.b[0]
    if p.HasField("slice_dim"):
        axis = p.slice_dim
        ctx.check(axis < len(b), f"slice_dim {axis} out of range for {len(b)}-D bottom")
    else:
        axis = ctx.axis(p.axis, b, "slice axis")
    dim = b[axis]
    n = ctx.ntop
    if len(p.slice_point):
        ctx.check(len(p.slice_point) == n - 1, f"{len(p.slice_point)} slice_point(s) for {n} tops; "
                  "give one fewer than the tops")
        ctx.check(n <= dim, f"{n} tops but the slice axis has only {dim} entries")
        sizes, prev = [], 0
        for sp in p.slice_point:
            ctx.check(sp > prev, f"slice_point values must increase, got {list(p.slice_point)}")
            sizes.append(sp - prev)
            prev = sp
        ctx.check(dim - prev > 0, f"last slice_point {prev} must be < the slice axis size {dim}")
        sizes.append(dim - prev)
    else:
        ctx.check(dim % n == 0, f"number of top blobs ({n}) should evenly divide input slice axis "
                  f"({dim})")
        sizes = [dim // n] * n
    tops = []
    for s in sizes:
        t = list(b)
        t[axis] = s
        tops.append(tuple(t))
    return LayerShapes(tops, [], 0)


@register("Flatten")
def _flatten(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.flatten_param
    b = ctx.b[0]
    start = ctx.axis(p.axis, b, "flatten axis")
    end = ctx.axis(p.end_axis, b, "flatten end_axis")
    ctx.check(start <= end, f"flatten axis {start} must not come after end_axis {end}")
    return LayerShapes([tuple(b[:start]) + (count(b, start, end + 1),) + tuple(b[end + 1:])], [], 0)


@register("Reshape")
def _reshape(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.reshape_param
    b = ctx.b[0]
    new = [int(d) for d in p.shape.dim]
    copy_axes = [i for i, d in enumerate(new) if d == 0]
    inferred = [i for i, d in enumerate(new) if d == -1]
    ctx.check(len(inferred) <= 1, "new shape contains multiple -1 dims; at most a single (1) value "
              "of -1 may be specified")
    ctx.check(all(d >= -1 for d in new), f"new shape dims must be >= -1, got {new}")
    start = p.axis if p.axis >= 0 else len(b) + p.axis + 1
    ctx.check(0 <= start <= len(b), f"axis {p.axis} out of range for {len(b)}-D bottom")
    ctx.check(p.num_axes >= -1, "num_axes must be >= 0, or -1 for all")
    end = len(b) if p.num_axes == -1 else start + p.num_axes
    ctx.check(end <= len(b), f"end_axis = axis + num_axes = {end} is out of range for "
              f"{len(b)}-D bottom")
    top = list(b[:start]) + new + list(b[end:])
    for i in copy_axes:
        ctx.check(start + i < len(b), f"new shape contains a 0 at index {i}, but there was no "
                  "corresponding bottom axis to copy")
        top[start + i] = b[start + i]
    if inferred:
        explicit = count(b, 0, start) * count(b, end) * math.prod(d for d in new if d > 0)
        for i in copy_axes:
            explicit *= b[start + i]
        ctx.check(explicit > 0 and count(b) % explicit == 0,
                  f"bottom count ({count(b)}) must be divisible by the product of the specified "
                  f"dimensions ({explicit})")
        top[start + inferred[0]] = count(b) // explicit
    ctx.check(count(top) == count(b), f"output count must match input count: reshape {fmt(b)} "
              f"({count(b)}) to {fmt(top)} ({count(top)})")
    return LayerShapes([tuple(top)], [], 0)


@register("Crop")
def _crop(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    p = ctx.lp.crop_param
    a, ref = ctx.b
    axis = ctx.axis(p.axis, a, "crop axis")
    ctx.check(len(ref) >= len(a), f"bottom[1] {fmt(ref)} needs at least the {len(a)} axes of "
              f"bottom[0] to give the crop size")
    n = len(a) - axis
    ctx.check(len(p.offset) in (0, 1, n), f"number of offset values specified must be 0, 1 or "
              f"equal to the number of dimensions following axis ({n}), got {len(p.offset)}")
    top = list(a)
    offsets = [0] * len(a)
    for i in range(axis, len(a)):
        off = 0 if not len(p.offset) else int(p.offset[0 if len(p.offset) == 1 else i - axis])
        ctx.check(a[i] - off >= ref[i], f"invalid crop: axis {i} of size {a[i]} with offset {off} "
                  f"cannot give size {ref[i]}")
        top[i] = ref[i]
        offsets[i] = off
    return LayerShapes([tuple(top)], [], 0, tuple(offsets))


@register("Tile")
def _tile(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.tile_param
    b = ctx.b[0]
    ctx.check(p.HasField("tiles"), "number of tiles must be specified (tile_param.tiles)")
    ctx.check(p.tiles > 0, f"number of tiles must be positive, got {p.tiles}")
    axis = ctx.axis(p.axis, b)
    top = list(b)
    top[axis] *= p.tiles
    return LayerShapes([tuple(top)], [], 0)


@register("Reduction")
def _reduction(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    b = ctx.b[0]
    axis = ctx.axis(ctx.lp.reduction_param.axis, b) if b else 0
    return LayerShapes([tuple(b[:axis])], [], count(b))


@register("Parameter")
def _parameter(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=0)
    ctx.ntops(exact=1)
    s = tuple(ctx.lp.parameter_param.shape.dim)
    return LayerShapes([s], [s], 0)


# --------------------------------------------------------------------------- recurrent

#: Caffe's RecurrentLayer subclasses: the number of recurrent state blobs (RNN: h; LSTM: h, c)
RECURRENT_STATES = {"RNN": 1, "LSTM": 2}


def recurrent_bottoms(lp: pb.LayerParameter, nbottom: int) -> tuple[bool, int]:
    """(static_input, number of exposed hidden bottoms) of an RNN/LSTM layer with ``nbottom``
    bottoms (Caffe's RecurrentLayer::LayerSetUp: x, cont, [x_static], [h_0 (, c_0)] when
    ``expose_hidden``)."""
    exposed = RECURRENT_STATES[lp.type] if lp.recurrent_param.expose_hidden else 0
    return nbottom > 2 + exposed, exposed


@register("RNN", "LSTM")
def _recurrent(ctx: _Ctx) -> LayerShapes:
    p = ctx.lp.recurrent_param
    static, exposed = recurrent_bottoms(ctx.lp, len(ctx.b))
    ctx.nbottom(lo=2 + exposed, hi=3 + exposed)
    ctx.ntops(exact=1 + exposed)
    ctx.check(p.num_output > 0, "recurrent_param.num_output must be positive")
    x, cont = ctx.b[0], ctx.b[1]
    ctx.check(len(x) >= 2, f"bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...), "
              f"got {fmt(x)}")
    t, n = x[0], x[1]
    ctx.check(len(cont) == 2 and cont == (t, n), f"bottom[1] (cont) must be (#timesteps, #streams) "
              f"= {fmt((t, n))}, got {fmt(cont)}")
    hdim = int(p.num_output)
    gates = 4 * hdim if ctx.lp.type == "LSTM" else hdim
    params: list[Shape] = [(gates, count(x, 2)), (gates,)]
    if static:
        xs = ctx.b[2]
        ctx.check(len(xs) >= 1 and xs[0] == n, f"bottom[2] (x_static) must be (#streams = {n}, ...), "
                  f"got {fmt(xs)}")
        params.append((gates, count(xs, 1)))
    params.append((gates, hdim))                 # W_hc / W_hh
    if ctx.lp.type == "RNN":
        params += [(hdim, hdim), (hdim,)]        # W_ho, b_o
    state = (1, n, hdim)
    for i, s in enumerate(ctx.b[2 + static:], 2 + static):
        ctx.check(s == state, f"bottom[{i}] shape must match hidden state input shape: {fmt(state)}, "
                  f"got {fmt(s)}")
    tops: list[Shape] = [(t, n, hdim)] + [state] * exposed
    macs = t * n * gates * (count(x, 2) + hdim) + (n * gates * count(ctx.b[2], 1) if static else 0)
    if ctx.lp.type == "RNN":
        macs += t * n * hdim * hdim
    return LayerShapes(tops, params, 2 * macs + count(tops[0]) * (8 if gates > hdim else 2))


@register("LSTMUnit")
def _lstm_unit(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=3)
    ctx.ntops(exact=2)
    c_prev, gates, cont = ctx.b
    ctx.check(len(c_prev) == 3 and len(gates) == 3, f"bottom[0] (c_prev) and bottom[1] (gate "
              f"input) must have 3 axes (1, #streams, dim), got {fmt(c_prev)} and {fmt(gates)}")
    ctx.check(len(cont) == 2, f"bottom[2] (cont) must have 2 axes (1, #streams), got {fmt(cont)}")
    n = c_prev[1]
    for i, s in enumerate(ctx.b):
        ctx.check(s[0] == 1 and s[1] == n, f"bottom[{i}] must be (1, {n}, ...), got {fmt(s)}")
    ctx.check(gates[2] == 4 * c_prev[2], f"bottom[1] (gate input) must have 4 * {c_prev[2]} = "
              f"{4 * c_prev[2]} entries per stream, got {gates[2]}")
    return LayerShapes([c_prev, c_prev], [], count(c_prev) * 12)


@register("Python")
def _python(ctx: _Ctx) -> LayerShapes:
    mod = f"{ctx.lp.python_param.module}.{ctx.lp.python_param.layer}"
    raise ctx.fail(f"the shapes of a Python layer ({mod}) come from running its setup and reshape; "
                   "build the net with runner.Net (or caffe.Net), which does")


# --------------------------------------------------------------------------- SSD fork layers
# Wei Liu's SSD fork of Caffe (weiliu89/caffe, branch ssd): Normalize, Permute, PriorBox,
# DetectionOutput, with the fork's LayerSetUp/Reshape checks. The fork reads shapes through
# Caffe's legacy num/channels/height/width accessors, which refuse blobs of more than 4 axes and
# give 1 for missing trailing axes.

def _legacy(ctx: _Ctx, shape: Shape, index: int, what: str) -> int:
    """Blob::LegacyShape(index) of a bottom: shape[index], 1 past the last axis."""
    four = legacy_shape(shape)
    ctx.check(four is not None, f"{what} {fmt(shape)} has more than 4 axes (the SSD layers read "
              "num/channels/height/width)")
    return four[index]


@register("Normalize")
def _normalize(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    p = ctx.lp.norm_param
    b = ctx.b[0]
    ctx.check(len(b) >= 2, f"number of axes of bottom blob must be >= 2, got {len(b)}")
    n, c = _legacy(ctx, b, 0, "bottom"), _legacy(ctx, b, 1, "bottom")
    s = _legacy(ctx, b, 2, "bottom") * _legacy(ctx, b, 3, "bottom")
    g = NormalizeGeometry(n, c, s, bool(p.across_spatial), bool(p.channel_shared), float(p.eps))
    return LayerShapes([b], [() if g.channel_shared else (c,)], count(b) * 4, g)


@register("Permute")
def _permute(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    b = ctx.b[0]
    order: list[int] = []
    for o in ctx.lp.permute_param.order:
        ctx.check(o < len(b), f"order {o} should be less than the input dimension {len(b)}")
        ctx.check(o not in order, f"there are duplicate orders ({o})")
        order.append(int(o))
    order += [i for i in range(len(b)) if i not in order]
    g = PermuteGeometry(b, tuple(order))
    return LayerShapes([tuple(b[o] for o in order)], [], 0, g)


def _f32(v: float) -> float:
    """``v`` rounded to float32 (the fork computes prior geometry in float)."""
    return float(np.float32(v))


@register("PriorBox")
def _prior_box(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    p = ctx.lp.prior_box_param
    feat, img = ctx.b
    ctx.check(len(p.min_size) > 0, "must provide min_size")
    ctx.check(all(m > 0 for m in p.min_size), f"min_size must be positive, got {list(p.min_size)}")
    ctx.check(all(a > 0 for a in p.aspect_ratio), f"aspect_ratio must be positive, got "
              f"{list(p.aspect_ratio)}")
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if any(abs(_f32(ar) - r) < 1e-6 for r in ratios):
            continue
        ratios.append(_f32(ar))
        if p.flip:
            ratios.append(_f32(1.0 / ar))
    if len(p.max_size):
        ctx.check(len(p.max_size) == len(p.min_size), f"{len(p.max_size)} max_size values for "
                  f"{len(p.min_size)} min_size values; give one per min_size")
        ctx.check(all(mx > mn for mn, mx in zip(p.min_size, p.max_size)),
                  "max_size must be greater than min_size")
    widths: list[float] = []
    heights: list[float] = []
    for i, mn in enumerate(p.min_size):
        mn_i = int(mn)                 # the fork's `int min_size_ = min_sizes_[s]`
        widths.append(float(mn_i))
        heights.append(float(mn_i))
        if len(p.max_size):
            side = _f32(math.sqrt(mn_i * int(p.max_size[i])))
            widths.append(side)
            heights.append(side)
        for ar in ratios:
            if abs(ar - 1.0) < 1e-6:
                continue
            root = np.sqrt(np.float32(ar))
            widths.append(float(np.float32(mn_i) * root))
            heights.append(float(np.float32(mn_i) / root))
    nv = len(p.variance)
    ctx.check(nv in (0, 1, 4), f"give 1 or 4 variance values, got {nv}")
    ctx.check(all(v > 0 for v in p.variance), f"variance must be positive, got {list(p.variance)}")
    var = (0.1,) * 4 if nv == 0 else tuple(_f32(v) for v in p.variance) * (4 // nv)
    if p.HasField("img_h") or p.HasField("img_w"):
        ctx.check(not p.HasField("img_size"), "either img_size or img_h/img_w should be "
                  "specified; not both")
        ctx.check(p.img_h > 0 and p.img_w > 0, "img_h and img_w should be larger than 0")
        img_h, img_w = int(p.img_h), int(p.img_w)
    elif p.HasField("img_size"):
        ctx.check(p.img_size > 0, "img_size should be larger than 0")
        img_h = img_w = int(p.img_size)
    else:
        img_h, img_w = _legacy(ctx, img, 2, "image bottom"), _legacy(ctx, img, 3, "image bottom")
    layer_h, layer_w = _legacy(ctx, feat, 2, "bottom"), _legacy(ctx, feat, 3, "bottom")
    if p.HasField("step_h") or p.HasField("step_w"):
        ctx.check(not p.HasField("step"), "either step or step_h/step_w should be specified; "
                  "not both")
        ctx.check(p.step_h > 0 and p.step_w > 0, "step_h and step_w should be larger than 0")
        step_h, step_w = _f32(p.step_h), _f32(p.step_w)
    elif p.HasField("step"):
        ctx.check(p.step > 0, "step should be larger than 0")
        step_h = step_w = _f32(p.step)
    else:
        ctx.check(layer_h > 0 and layer_w > 0, "the feature map is empty")
        step_h = float(np.float32(img_h) / np.float32(layer_h))
        step_w = float(np.float32(img_w) / np.float32(layer_w))
    g = PriorBoxGeometry(layer_h, layer_w, img_h, img_w, step_h, step_w, _f32(p.offset),
                         tuple(widths), tuple(heights), bool(p.clip), var)  # type: ignore[arg-type]
    ctx.check(g.dim > 0, f"the prior box output would be empty (feature map {layer_h}x{layer_w})")
    return LayerShapes([(1, 2, g.dim)], [], 0, g)


FLT_MAX = float(np.finfo(np.float32).max)


@register("DetectionOutput")
def _detection_output(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=3, hi=4)
    ctx.ntops(exact=1)
    p = ctx.lp.detection_output_param
    ctx.check(p.HasField("num_classes") and p.num_classes > 0, "must specify num_classes")
    nms = p.nms_param
    ctx.check(nms.nms_threshold >= 0, f"nms_threshold must be non negative, got {nms.nms_threshold}")
    ctx.check(0 < nms.eta <= 1, f"eta must be in (0, 1], got {nms.eta}")
    loc, conf, prior = ctx.b[:3]
    num = _legacy(ctx, loc, 0, "loc bottom")
    ctx.check(_legacy(ctx, conf, 0, "conf bottom") == num, "loc and conf bottoms must have the same "
              "num")
    num_classes = int(p.num_classes)
    num_loc = 1 if p.share_location else num_classes
    num_priors = _legacy(ctx, prior, 2, "prior bottom") // 4
    ctx.check(_legacy(ctx, loc, 1, "loc bottom") == num_priors * num_loc * 4 and
              count(loc) == num * num_priors * num_loc * 4,
              f"number of priors ({num_priors}) must match number of location predictions: loc "
              f"must be ({num}, {num_priors * num_loc * 4})")
    ctx.check(_legacy(ctx, conf, 1, "conf bottom") == num_priors * num_classes and
              count(conf) == num * num_priors * num_classes,
              f"number of priors ({num_priors}) must match number of confidence predictions: conf "
              f"must be ({num}, {num_priors * num_classes})")
    ctx.check(count(prior) >= 2 * num_priors * 4, "the prior bottom must hold the boxes and their "
              "variances (1, 2, num_priors * 4)")
    g = DetectionGeometry(
        num, num_priors, num_classes, num_loc, bool(p.share_location), int(p.background_label_id),
        int(p.code_type), bool(p.variance_encoded_in_target), int(p.keep_top_k),
        float(p.confidence_threshold) if p.HasField("confidence_threshold") else -FLT_MAX,
        float(nms.nms_threshold), int(nms.top_k) if nms.HasField("top_k") else -1, float(nms.eta),
        bool(p.clip))
    # the number of detections is known only after NMS: Caffe-SSD's Reshape gives a fake 1 row
    return LayerShapes([(1, 1, 1, 7)], [], 2 * (count(loc) + count(conf)), g)


@register("BatchReindex")
def _batch_reindex(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=2)
    ctx.ntops(exact=1)
    b, idx = ctx.b
    ctx.check(len(idx) == 1, f"the index bottom must be 1-D, got {fmt(idx)}")
    ctx.check(len(b) >= 1, "bottom[0] needs a batch axis")
    return LayerShapes([(idx[0],) + tuple(b[1:])], [], 0)


@register("Filter")
def _filter(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(lo=2)
    ctx.check(ctx.ntop == len(ctx.b) - 1, f"needs one top per filtered bottom ({len(ctx.b) - 1}), "
              f"got {ctx.ntop}")
    sel = ctx.b[-1]
    ctx.check(len(sel) >= 1 and all(d == 1 for d in sel[1:]), f"selector blob dimensions must be "
              f"singletons (1), except the first; got {fmt(sel)}")
    for i, s in enumerate(ctx.b[:-1]):
        ctx.check(len(s) >= 1 and s[0] == sel[0], f"each bottom should have the same 0th dimension "
                  f"as the selector blob: bottom[{i}] {fmt(s)}, selector {fmt(sel)}")
    # Caffe's first Reshape keeps every item; later ones keep the selected ones (the layer reads
    # the selector on the host and reshapes its tops before each forward)
    return LayerShapes([tuple(s) for s in ctx.b[:-1]], [], 0)


@register("Im2col")
def _im2col(ctx: _Ctx) -> LayerShapes:
    ctx.nbottom(exact=1)
    ctx.ntops(exact=1)
    b = ctx.b[0]
    caxis = ctx.axis(ctx.lp.convolution_param.axis, b)
    n_spatial = len(b) - caxis - 1
    ctx.check(n_spatial >= 1, f"needs at least one spatial axis after the channel axis {caxis}")
    kernel, stride, pad, dilation = _conv_geometry(ctx, n_spatial)
    out = _conv_out(ctx, b[caxis + 1:], kernel, stride, pad, dilation)
    g = Im2colGeometry(count(b, 0, caxis), b[caxis], tuple(b[caxis + 1:]), tuple(out), tuple(kernel),
                       tuple(stride), tuple(pad), tuple(dilation))
    top = tuple(b[:caxis]) + g.y_shape[1:]
    return LayerShapes([top], [], 0, g)
