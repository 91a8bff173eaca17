"""HingeLoss (Caffe HingeLossLayer): one-vs-all hinge loss for x (N, ...) viewed as (N, dim) and
integer labels (N,): m[i, j] = max(0, 1 + s*x[i, j]), s = -1 at the label, +1 elsewhere;
loss = sum |m| / N (``norm: L1``, default) or sum m^2 / N (``L2``). No normalization modes (Caffe
divides by N). Backward: dx = loss_weight / N * s * sign(m) (L1) or loss_weight * 2 / N * s * m
(L2); no gradient to the labels."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("HingeLoss")
class HingeLossLayer(Layer):
    is_loss = True

    def setup(self, bottoms, tops) -> None:
        self.norm = int(self.param.hinge_loss_param.norm)
        self.margin = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.num = bottoms[0].shape[0]
        self.dim = bottoms[0].count // self.num if self.num else 0
        self.margin = self.backend.empty(bottoms[0].shape)

    def forward(self, bottoms, tops) -> None:
        try:
            total = self.backend.hinge_loss_fwd(bottoms[0].dev_data, bottoms[1].dev_data, self.margin,
                                                self.num, self.dim, self.norm)
        except ValueError as e:
            raise self.error(str(e)) from None
        tops[0].data = [total / self.num if self.num else float("nan")]   # Caffe: 0/0

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if not propagate_down[0] or not self.num:
            return
        t = self.backend.dtype.type
        lw = t(top_diff_scale(tops[0]))
        scale = lw / t(self.num) if self.norm == pb.HingeLossParameter.L1 else lw * t(2) / t(self.num)
        self.backend.hinge_loss_bwd(self.margin, bottoms[1].dev_data, bottoms[0].dev_diff, self.num,
                                    self.dim, self.norm, float(scale))
