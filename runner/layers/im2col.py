"""Im2col (Caffe Im2colLayer): each image's convolution columns as a blob. ``convolution_param``
gives kernel, stride, pad, dilation (per spatial axis or one for all) and ``axis`` (the channel
axis, default 1; the axes before it are the batch); any number of spatial axes. The top is
(..., C * prod(kernel), *out); backward is col2im (overlapping windows add up)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Im2col")
class Im2colLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.geometry = shapes.geometry

    def forward(self, bottoms, tops) -> None:
        self.backend.im2col_layer_fwd(bottoms[0].dev_data, tops[0].dev_data, self.geometry)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.im2col_layer_bwd(tops[0].dev_diff, bottoms[0].dev_diff, self.geometry)
