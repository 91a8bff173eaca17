"""Silence (Caffe SilenceLayer): consumes bottoms, no tops; backward writes zero diffs."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Silence")
class SilenceLayer(Layer):
    def reshape(self, bottoms, tops) -> None:
        return None

    def forward(self, bottoms, tops) -> None:
        return None

    def backward(self, tops, propagate_down, bottoms) -> None:
        for pd, b in zip(propagate_down, bottoms):
            if pd:
                self.backend.fill(b.dev_diff, 0.0)
