"""Softmax (Caffe SoftmaxLayer): softmax over ``softmax_param.axis`` (default 1), max-subtracted;
backward dx = y * (dy - sum_axis(dy * y)). In place allowed."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


def softmax_dims(shape, axis_param: int, where: str) -> tuple[int, int, int]:
    """(outer, dim, inner) of a softmax over ``axis_param``."""
    a = canonical_axis(axis_param, len(shape), where)
    return count(shape, 0, a), int(shape[a]), count(shape, a + 1)


@register("Softmax")
class SoftmaxLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.dims = softmax_dims(bottoms[0].shape, self.param.softmax_param.axis, f"layer '{self.name}'")

    def forward(self, bottoms, tops) -> None:
        self.backend.softmax_fwd(bottoms[0].dev_data, tops[0].dev_data, *self.dims)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.softmax_bwd(tops[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff, *self.dims)
