"""PriorBox (the SSD fork's PriorBoxLayer, ``prior_box_param``): the default boxes of one feature
map, bottoms (feature map, image), top (1, 2, H * W * num_priors * 4), channel 0 the boxes
(xmin, ymin, xmax, ymax) normalised by the image size, channel 1 their variances. Per cell and
min_size: the min_size square, then sqrt(min_size * max_size) when max sizes are given, then one
box per aspect ratio (flipped ratios added when ``flip``); sizes truncated to integers as the
fork does. The geometry (image size, steps, offset, sizes, variances) is read by
``netdef.shapes``. The output depends only on the shapes: no gradient reaches the bottoms (the
fork's backward does nothing; their diffs stay zero, which is what is written here)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("PriorBox")
class PriorBoxLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.g = shapes.geometry

    def forward(self, bottoms, tops) -> None:
        self.backend.prior_box_fwd(tops[0].dev_data, self.g)

    def backward(self, tops, propagate_down, bottoms) -> None:
        for b, pd in zip(bottoms, propagate_down):
            if pd:
                self.backend.fill(b.dev_diff, 0.0)
