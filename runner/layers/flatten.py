"""Flatten (Caffe FlattenLayer): top shape = bottom shape with axes ``axis``..``end_axis``
(default 1..-1) merged; the top shares the bottom's data and diff (no copy)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Flatten")
class FlattenLayer(Layer):
    replayable = True

    def reshape(self, bottoms, tops) -> None:
        super().reshape(bottoms, tops)
        tops[0].share_data(bottoms[0])
        tops[0].share_diff(bottoms[0])

    def forward(self, bottoms, tops) -> None:
        return None

    def backward(self, tops, propagate_down, bottoms) -> None:
        return None
