"""MultinomialLogisticLoss (Caffe MultinomialLogisticLossLayer): bottom[0] holds probabilities
(N, ...) viewed as (N, dim), bottom[1] integer labels (N,): loss = -sum_i log(max(p[i, label_i],
1e-20)) / N (Caffe's kLOG_THRESHOLD; no normalization modes). Backward: dx = 0 except
dx[i, label_i] = -loss_weight / N / max(p[i, label_i], 1e-20); no gradient to the labels."""
from __future__ import annotations

from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(Layer):
    is_loss = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.num = bottoms[0].shape[0]
        self.dim = bottoms[0].count // self.num if self.num else 0

    def forward(self, bottoms, tops) -> None:
        try:
            total = self.backend.multinomial_logistic_loss_fwd(bottoms[0].dev_data, bottoms[1].dev_data,
                                                               self.num, self.dim)
        except ValueError as e:
            raise self.error(str(e)) from None
        tops[0].data = [total / self.num if self.num else float("nan")]   # Caffe: 0/0

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if propagate_down[0] and self.num:
            t = self.backend.dtype.type
            scale = -t(top_diff_scale(tops[0])) / t(self.num)
            self.backend.multinomial_logistic_loss_bwd(bottoms[0].dev_data, bottoms[1].dev_data,
                                                       bottoms[0].dev_diff, self.num, self.dim,
                                                       float(scale))
