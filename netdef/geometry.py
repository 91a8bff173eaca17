"""Parsed geometry of the layers whose hyper-parameters need Caffe's rules to read (Convolution,
Deconvolution, Pooling). Plain frozen data: ``netdef.shapes.infer`` builds them (the one place
where the rules and defaults are written) and returns them as ``LayerShapes.geometry``; layers
pass them to the backends, which pass their integers to the kernels.

Both are hashable, so a backend may cache launch configurations or workspaces per geometry.
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
        k = 1
        for d in self.kernel:
            k *= d
        return (self.num, self.channels * k) + self.out_spatial
