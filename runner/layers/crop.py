"""Crop (Caffe CropLayer): bottom[0] cropped to bottom[1]'s size on every axis from ``axis``
(default 2) on, starting at ``offset`` (none: 0; one: the same for every cropped axis; else one
per cropped axis); axes before ``axis`` are kept whole. Backward writes bottom[0]'s diff (zero
outside the window); bottom[1] only gives the size and gets no gradient (its diff is left as it
is, as Caffe)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Crop")
class CropLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.offsets = shapes.geometry           # per axis of bottom 0 (netdef.shapes)

    def forward(self, bottoms, tops) -> None:
        self.backend.crop_fwd(bottoms[0].dev_data, tops[0].dev_data, self.offsets)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.crop_bwd(tops[0].dev_diff, bottoms[0].dev_diff, self.offsets)
