"""Parsed geometry of the layers whose hyper-parameters need Caffe's rules to read (Convolution,
Deconvolution, Pooling, SPP). Plain frozen data: ``netdef.shapes.infer`` builds them (the one place
where the rules and defaults are written) and returns them as ``LayerShapes.geometry``; layers
pass them to the backends, which pass their integers to the kernels.

- ``ConvGeometry``: 2-D convolution (the default path); ``ConvNdGeometry``: any other number of
  spatial axes (Caffe's ``im2col_nd`` path).
- ``PoolGeometry``: 2-D pooling; SPP's geometry is a tuple of them, one per pyramid level.

All are hashable, so a backend may cache launch configurations or workspaces per geometry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeometry:
    """2-D convolution over a batch (Caffe's BaseConvolutionLayer fields).

    Input x: (N, C_in, H, W); weight w: (C_out, C_in // group, KH, KW); output y: (N, C_out, OH, OW)
    with OH = (H + 2*pad_h - (dilation_h*(KH-1)+1)) // stride_h + 1 (same for W).
    For Deconvolution the geometry describes the *forward convolution* from the deconv's top to its
    bottom (Caffe's ``reverse_dimensions``): x is the deconv's top, y its bottom.
    """

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    group: int = 1

    @property
    def is_1x1(self) -> bool:
        """True when the convolution is a plain GEMM (1x1 kernel, stride 1, no pad): Caffe's
        ``is_1x1_`` skips im2col."""
        return (self.kernel_h == 1 and self.kernel_w == 1 and self.stride_h == 1 and self.stride_w == 1
                and self.pad_h == 0 and self.pad_w == 0)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_in, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_out, self.out_h, self.out_w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in // self.group, self.kernel_h, self.kernel_w)


@dataclass(frozen=True)
class PoolGeometry:
    """2-D pooling, Caffe's PoolingLayer (x: (N, C, H, W) -> y: (N, C, OH, OW)).

    Window (ph, pw): hstart = ph*stride_h - pad_h, hend = min(hstart + kernel_h, H + pad_h); AVE
    divides by (hend - hstart)*(wend - wstart) computed *before* clipping hstart/hend to [0, H) (so
    padding counts), MAX ignores padding. OH/OW follow the rounding mode (ceil by default) with the
    "last window starts inside the image" clip, in ``netdef.shapes``.
    """

    n: int
    c: int
    h: int
    w: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0


@dataclass(frozen=True)
class ConvNdGeometry:
    """N-D convolution over a batch (Caffe's BaseConvolutionLayer with ``num_spatial_axes_ != 2``,
    run through ``im2col_nd``/``col2im_nd``): any number of spatial axes (1, 3, 4, ...).

    Input x: (N, C_in, *in_shape); weight w: (C_out, C_in // group, *kernel); output y:
    (N, C_out, *out_shape) with out_shape[i] = (in_shape[i] + 2*pad[i] - (dilation[i]*(kernel[i]-1)
    + 1)) // stride[i] + 1. Every tuple has one entry per spatial axis. For Deconvolution the
    geometry describes the *forward convolution* from the deconv's top to its bottom, as
    ``ConvGeometry`` does. The column buffer of one image is (C_in * prod(kernel), prod(out_shape)):
    row (c, k_0, ..., k_{n-1}) row-major, column (o_0, ..., o_{n-1}) row-major (Caffe's layout).
    """

    n: int
    c_in: int
    in_shape: tuple[int, ...]
    c_out: int
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    group: int = 1

    @property
    def num_spatial_axes(self) -> int:
        return len(self.in_shape)

    @property
    def kernel_count(self) -> int:
        """prod(kernel): taps per input channel."""
        return _prod(self.kernel)

    @property
    def in_count(self) -> int:
        """prod(in_shape): input positions per channel."""
        return _prod(self.in_shape)

    @property
    def out_count(self) -> int:
        """prod(out_shape): output positions per channel."""
        return _prod(self.out_shape)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.n, self.c_in, *self.in_shape)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.n, self.c_out, *self.out_shape)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.c_out, self.c_in // self.group, *self.kernel)


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


# --------------------------------------------------------------------------- SSD fork layers

@dataclass(frozen=True)
class NormalizeGeometry:
    """The SSD fork's Normalize on x viewed as (N, C, S), S = H*W (the fork's legacy num / channels
    / height / width accessors, so 2-4 axes): norm = sqrt(sum of x^2 + eps) over (C, S) per image
    when ``across_spatial``, else over C per (n, s); y = x / norm * scale, scale one value when
    ``channel_shared`` else one per channel."""

    n: int
    c: int
    s: int
    across_spatial: bool
    channel_shared: bool
    eps: float


@dataclass(frozen=True)
class PermuteGeometry:
    """The SSD fork's Permute: top axis i is bottom axis ``order[i]`` (the given orders, then the
    unnamed axes in their order). ``need_permute`` False: the identity (top shares the bottom)."""

    shape: tuple[int, ...]
    order: tuple[int, ...]

    @property
    def need_permute(self) -> bool:
        return self.order != tuple(range(len(self.order)))

    @property
    def inverse(self) -> tuple[int, ...]:
        inv = [0] * len(self.order)
        for i, o in enumerate(self.order):
            inv[o] = i
        return tuple(inv)


@dataclass(frozen=True)
class PriorBoxGeometry:
    """The SSD fork's PriorBox for a ``layer_h`` x ``layer_w`` feature map over an ``img_h`` x
    ``img_w`` image. At cell (h, w) the centre is ((w + offset) * step_w, (h + offset) * step_h)
    (float32, as the fork computes it) and prior p is the box of ``widths[p]`` x ``heights[p]``
    around it, divided by the image size: (xmin, ymin, xmax, ymax), clipped to [0, 1] when
    ``clip``. Top (1, 2, layer_h * layer_w * P * 4): channel 0 the boxes in (h, w, p) order,
    channel 1 ``variance`` (4 values) repeated per box."""

    layer_h: int
    layer_w: int
    img_h: int
    img_w: int
    step_h: float
    step_w: float
    offset: float
    widths: tuple[float, ...]
    heights: tuple[float, ...]
    clip: bool
    variance: tuple[float, float, float, float]

    @property
    def num_priors(self) -> int:
        return len(self.widths)

    @property
    def dim(self) -> int:
        """Number of box coordinates: layer_h * layer_w * num_priors * 4."""
        return self.layer_h * self.layer_w * self.num_priors * 4


#: PriorBoxParameter.CodeType values (the fork's numbers)
CODE_CORNER, CODE_CENTER_SIZE, CODE_CORNER_SIZE = 1, 2, 3


@dataclass(frozen=True)
class DetectionGeometry:
    """The SSD fork's DetectionOutput: ``num`` images, ``num_priors`` priors, loc (num, P * L * 4)
    with L = ``num_loc_classes`` (1 when ``share_location``, else ``num_classes``), conf
    (num, P * num_classes), prior (1, 2, P * 4). ``code_type`` 1 CORNER, 2 CENTER_SIZE,
    3 CORNER_SIZE; ``confidence_threshold`` -FLT_MAX and ``top_k`` -1 when not given; ``clip``
    (OpenCV's extension) clips the decoded boxes to [0, 1] before the NMS."""

    num: int
    num_priors: int
    num_classes: int
    num_loc_classes: int
    share_location: bool
    background_label_id: int
    code_type: int
    variance_encoded_in_target: bool
    keep_top_k: int
    confidence_threshold: float
    nms_threshold: float
    top_k: int
    eta: float
    clip: bool = False


@dataclass(frozen=True)
class Im2colGeometry:
    """Caffe's Im2colLayer over any number of spatial axes (1-D, 2-D, 3-D, ...).

    The bottom is viewed as (num, channels, *in_spatial) with num = count(0, axis) (the
    ``convolution_param.axis``, default 1); the top as (num, channels * prod(kernel), *out_spatial)
    with out = (in + 2*pad - (dilation*(kernel-1)+1)) // stride + 1 per axis. Row
    r = c * prod(kernel) + (flat kernel offset, C order) of the top holds the input pixel each
    output position's window takes at that offset (0 in the padding), Caffe's im2col layout."""

    num: int
    channels: int
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.num, self.channels) + self.in_spatial

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.num, self.channels * _prod(self.kernel)) + self.out_spatial
