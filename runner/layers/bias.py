"""Bias (Caffe BiasLayer): y = x + b, b broadcast over axes ``axis``..axis+num_axes
(``bias_param`` axis 1, num_axes 1); b is a learned blob (filler default constant 0) or the second
bottom. Backward: dx = dy, db += sum(dy) (written when b is a bottom)."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


@register("Bias")
class BiasLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.bias_param
        self.bias_is_bottom = len(bottoms) > 1
        if not self.bias_is_bottom:
            shapes = self.infer(bottoms)
            self.add_param(shapes.param_shapes[0], p.filler, "bias")

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        bshape = bottoms[1].shape if self.bias_is_bottom else self.blobs[0].shape
        a = canonical_axis(self.param.bias_param.axis, len(s), f"layer '{self.name}'") if s else 0
        self.dims = (count(s, 0, a), count(bshape), count(s, a + len(bshape)))

    def _bias(self, bottoms):
        return bottoms[1] if self.bias_is_bottom else self.blobs[0]

    def forward(self, bottoms, tops) -> None:
        self.backend.bias_fwd(bottoms[0].dev_data, self._bias(bottoms).dev_data, tops[0].dev_data,
                              *self.dims)

    def backward(self, tops, propagate_down, bottoms) -> None:
        be = self.backend
        dy = tops[0].dev_diff
        if propagate_down[0] and bottoms[0] is not tops[0]:
            be.copy(dy, bottoms[0].dev_diff)
        if self.bias_is_bottom:
            if propagate_down[1]:
                db = bottoms[1].dev_diff
                be.fill(db, 0.0)
                be.bias_bwd(dy, db, *self.dims)
        elif self.param_propagate_down[0]:
            be.bias_bwd(dy, self.blobs[0].dev_diff, *self.dims)
