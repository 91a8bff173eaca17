"""Small helpers shared by layer modules (geometry from Caffe parameters, axis arithmetic)."""
from __future__ import annotations

from collections.abc import Sequence

from netdef.errors import NetDefinitionError
from proto import caffe_pb2 as pb


def count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Product of shape[start:end] (Caffe's Blob::count(start, end))."""
    n = 1
    for s in shape[start:end]:
        n *= int(s)
    return n


def canonical_axis(axis: int, ndim: int, where: str) -> int:
    """Caffe's CanonicalAxisIndex with an error naming the layer."""
    if not -ndim <= axis < max(ndim, 1):
        raise NetDefinitionError(f"{where}: axis {axis} out of range for a {ndim}-D blob")
    return axis + ndim if axis < 0 else axis


def conv_hyper(p: pb.ConvolutionParameter, where: str) -> tuple[tuple[int, int], ...]:
    """((kh, kw), (sh, sw), (ph, pw), (dh, dw)) of a 2-D convolution, Caffe's rules (repeated
    fields given once or per axis, or the _h/_w forms)."""
    def two(name: str, values: Sequence[int], default: int | None, h: str, w: str) -> tuple[int, int]:
        if p.HasField(h) or p.HasField(w):
            return int(getattr(p, h)), int(getattr(p, w))
        if len(values) == 0:
            if default is None:
                raise NetDefinitionError(f"{where}: {name} must be given")
            return default, default
        if len(values) == 1:
            return int(values[0]), int(values[0])
        if len(values) == 2:
            return int(values[0]), int(values[1])
        raise NetDefinitionError(f"{where}: {name} given {len(values)} times; nbcaffe supports 2-D "
                                 "convolution only")
    k = two("kernel_size", p.kernel_size, None, "kernel_h", "kernel_w")
    s = two("stride", p.stride, 1, "stride_h", "stride_w")
    pd = two("pad", p.pad, 0, "pad_h", "pad_w")
    if len(p.dilation) > 2:
        raise NetDefinitionError(f"{where}: dilation given {len(p.dilation)} times; 2-D only")
    d = ((1, 1) if not len(p.dilation) else
         (int(p.dilation[0]), int(p.dilation[-1])) if len(p.dilation) in (1, 2) else (1, 1))
    return k, s, pd, d


def pool_hyper(p: pb.PoolingParameter, h: int, w: int) -> tuple[tuple[int, int], ...]:
    """((kh, kw), (sh, sw), (ph, pw)) of a Pooling layer (global pooling uses the whole image)."""
    if p.global_pooling:
        k = (h, w)
    elif p.HasField("kernel_h") or p.HasField("kernel_w"):
        k = (p.kernel_h, p.kernel_w)
    else:
        k = (p.kernel_size, p.kernel_size)
    if p.HasField("stride_h") or p.HasField("stride_w"):
        s = (p.stride_h, p.stride_w)
    else:
        s = (p.stride, p.stride)
    if p.HasField("pad_h") or p.HasField("pad_w"):
        pd = (p.pad_h, p.pad_w)
    else:
        pd = (p.pad, p.pad)
    return tuple(int(v) for v in k), tuple(int(v) for v in s), tuple(int(v) for v in pd)
