"""ContrastiveLoss (Caffe ContrastiveLossLayer): bottoms a, b (N, C, 1, 1) and sim (N,) (nonzero:
similar pair). loss = 1/(2N) sum_n [sim ? d^2 : max(margin - d, 0)^2], d = |a_n - b_n|;
``legacy_version``: max(margin - d^2, 0) for dissimilar pairs. ``margin`` default 1. Backward to
a and b (not sim), with Caffe's 1e-4 in the dissimilar gradient's denominator."""
from __future__ import annotations

from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("ContrastiveLoss")
class ContrastiveLossLayer(Layer):
    is_loss = True

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def setup(self, bottoms, tops) -> None:
        p = self.param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = bool(p.legacy_version)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        n = bottoms[0].shape[0]
        self.diff = self.backend.empty((n, bottoms[0].count // max(n, 1)))
        self.dist_sq = self.backend.empty((n,))

    def forward(self, bottoms, tops) -> None:
        n = bottoms[0].shape[0]
        a = self.backend.reshape(bottoms[0].dev_data, self.diff.shape)
        b = self.backend.reshape(bottoms[1].dev_data, self.diff.shape)
        loss = self.backend.contrastive_loss_fwd(a, b, bottoms[2].dev_data, self.diff, self.dist_sq,
                                                 self.margin, self.legacy)
        tops[0].data = [loss / n / 2.0]

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the similarity input")
        n = bottoms[0].shape[0]
        scale = top_diff_scale(tops[0]) / n
        for i in (0, 1):
            if propagate_down[i]:
                dx = self.backend.reshape(bottoms[i].dev_diff, self.diff.shape)
                self.backend.contrastive_loss_bwd(self.diff, self.dist_sq, bottoms[2].dev_data, dx,
                                                  1.0 if i == 0 else -1.0, self.margin, self.legacy, scale)
