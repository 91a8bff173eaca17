"""Reshape (Caffe ReshapeLayer): top shape from ``reshape_param.shape`` (0 copies a bottom axis,
-1 infers one axis) over axes ``axis``..+``num_axes``; the top shares the bottom's data and diff (no copy)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Reshape")
class ReshapeLayer(Layer):
    replayable = True

    def reshape(self, bottoms, tops) -> None:
        super().reshape(bottoms, tops)
        tops[0].share_data(bottoms[0])
        tops[0].share_diff(bottoms[0])

    def forward(self, bottoms, tops) -> None:
        return None

    def backward(self, tops, propagate_down, bottoms) -> None:
        return None
