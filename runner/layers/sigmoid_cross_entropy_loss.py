"""SigmoidCrossEntropyLoss (Caffe SigmoidCrossEntropyLossLayer): loss = -sum over positions of
t log(p) + (1 - t) log(1 - p), p = sigmoid(x), computed overflow-free; positions whose target is
``loss_param.ignore_label`` are skipped; divided by the normalizer (``normalization``; default
BATCH_SIZE = x.shape[0] when neither normalization nor normalize is given, as Caffe).
Backward: dx = loss_weight * (p - t) / normalizer; no gradient to the targets."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers._loss import normalization_mode, normalizer
from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(Layer):
    is_loss = True

    def setup(self, bottoms, tops) -> None:
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(self.param, pb.LossParameter.BATCH_SIZE)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        if bottoms[0].count != bottoms[1].count:
            raise self.error(f"SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count "
                             f"({bottoms[0].shape} vs {bottoms[1].shape})")
        self.outer = bottoms[0].shape[0]
        self.inner = bottoms[0].count // max(self.outer, 1)

    def forward(self, bottoms, tops) -> None:
        loss, valid = self.backend.sigmoid_ce_loss_fwd(bottoms[0].dev_data, bottoms[1].dev_data, self.ignore)
        self.norm = normalizer(self.mode, self.outer, self.inner, valid)
        tops[0].data = [loss / self.norm]

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if propagate_down[0]:
            self.backend.sigmoid_ce_loss_bwd(bottoms[0].dev_data, bottoms[1].dev_data, bottoms[0].dev_diff,
                                             self.ignore, top_diff_scale(tops[0]) / self.norm)
