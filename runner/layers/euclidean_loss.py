"""EuclideanLoss (Caffe EuclideanLossLayer): loss = sum((a - b)^2) / (2 N), N = a.shape[0].
Backward to either bottom: d a = loss_weight * (a - b) / N, d b = -that (both allowed under
force_backward)."""
from __future__ import annotations

from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("EuclideanLoss")
class EuclideanLossLayer(Layer):
    is_loss = True

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        if bottoms[0].count != bottoms[1].count:
            raise self.error(f"inputs must have the same count ({bottoms[0].shape} vs {bottoms[1].shape})")
        self.diff = self.backend.empty(bottoms[0].shape)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        be.sub(bottoms[0].dev_data, bottoms[1].dev_data, self.diff)
        tops[0].data = [be.sumsq(self.diff) / bottoms[0].shape[0] / 2.0]

    def backward(self, tops, propagate_down, bottoms) -> None:
        n = bottoms[0].shape[0]
        for i, (b, pd) in enumerate(zip(bottoms, propagate_down)):
            if pd:
                sign = 1.0 if i == 0 else -1.0
                self.backend.axpby(sign * top_diff_scale(tops[0]) / n, self.diff, 0.0, b.dev_diff)
