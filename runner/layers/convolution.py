"""Convolution (Caffe ConvolutionLayer): y = conv2d(x, W) + b per output channel, with group,
stride, pad, dilation, bias_term; a 1x1/stride-1/pad-0 convolution is a plain GEMM (no im2col).
Each bottom i produces top i with the same weights. Weight (num_output, C/group, KH, KW),
bias (num_output,); fillers ``weight_filler`` / ``bias_filler`` (default constant 0).
``axis`` selects the channel axis (axes before it are batch, every axis after it is spatial).
Two spatial axes run the 2-D path (``ConvGeometry``: kept columns, the tuned im2col kernels); any
other number (1-D, 3-D, ...), or ``force_nd_im2col``, runs Caffe's N-D path (``ConvNdGeometry``:
``Backend.conv_nd_forward`` / ``conv_nd_backward``, im2col_nd + GEMM)."""
from __future__ import annotations

from netdef.geometry import ConvNdGeometry
from runner.backend.base import ConvCache
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("Convolution")
class ConvolutionLayer(Layer):
    replayable = True
    deconv = False
    #: pass a ConvCache so the backend may keep the input's columns for backward. No later layer of
    #: a valid net writes this layer's bottom on the device: a second reader of a blob gets a Split
    #: top, and a layer in place on it would then produce the blob's name a second time, which the
    #: graph refuses as Caffe does (tests/runner/test_conv_cache.py); host writes are caught by
    #: ``Blob.data_version``
    keep_columns = True

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        p = self.param.convolution_param
        shapes = self.infer(bottoms)
        self.bias_term = bool(p.bias_term)
        self.add_param(shapes.param_shapes[0], p.weight_filler, "weight")
        if self.bias_term:
            self.add_param(shapes.param_shapes[1], p.bias_filler, "bias")

    def on_reshape(self, bottoms, tops, shapes) -> None:
        for cache in self._caches(len(bottoms)):
            if cache is not None:
                cache.invalidate()           # new geometry: the kept columns are another shape
        # netdef.shapes parsed it; for a Deconvolution it is the forward convolution from the top
        # back onto the bottom
        self.geom = shapes.geometry
        self.nd = isinstance(self.geom, ConvNdGeometry)

    _col_caches: list[ConvCache] | None = None   # one per bottom, made on first use
    _seen: tuple = ()                             # data_version() of each bottom at the forward

    def _caches(self, n: int) -> list[ConvCache | None]:
        """One ConvCache per bottom (the backend may keep each input's columns for backward);
        Nones when this layer keeps nothing (``keep_columns`` False)."""
        if not self.keep_columns:
            return [None] * n
        if self._col_caches is None:
            self._col_caches = []
        while len(self._col_caches) < n:
            self._col_caches.append(ConvCache())
        return self._col_caches[:n]

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        be = self.backend
        w = self.blobs[0].dev_data
        b = self.blobs[1].dev_data if self.bias_term else None
        if self.nd:
            for x, y in zip(bottoms, tops):
                be.conv_nd_forward(x.dev_data, w, b, y.dev_data, self.geom)
            return
        self._seen = tuple(x.data_version() for x in bottoms)
        for x, y, cache in zip(bottoms, tops, self._caches(len(bottoms))):
            be.conv_forward(x.dev_data, w, b, y.dev_data, self.geom, cache)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        be = self.backend
        w = self.blobs[0].dev_data
        dw = self.blobs[0].dev_diff if self.param_propagate_down[0] else None
        db = self.blobs[1].dev_diff if self.bias_term and self.param_propagate_down[1] else None
        if self.nd:
            for i, (x, y) in enumerate(zip(bottoms, tops)):
                dx = x.dev_diff if propagate_down[i] else None
                be.conv_nd_backward(x.dev_data, w, y.dev_diff, dx, dw, db, self.geom)
            return
        caches = self._caches(len(bottoms))
        seen = self._seen
        for i, (x, y) in enumerate(zip(bottoms, tops)):
            if caches[i] is not None and (i >= len(seen) or x.data_version() != seen[i]):
                caches[i].invalidate()     # x changed (or no forward) since the kept columns
            dx = x.dev_diff if propagate_down[i] else None
            be.conv_backward(x.dev_data, w, y.dev_diff, dx, dw, db, self.geom, caches[i])
