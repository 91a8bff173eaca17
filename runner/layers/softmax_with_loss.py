"""SoftmaxWithLoss (Caffe SoftmaxWithLossLayer): softmax over ``softmax_param.axis`` then the
multinomial logistic loss -log(max(prob[label], FLT_MIN)) summed over positions whose label is not
``loss_param.ignore_label``, divided by the normalizer (``normalization``: FULL, VALID (default),
BATCH_SIZE, NONE; legacy ``normalize``). Optional second top: the probabilities. Backward to the
label is an error; dx = (prob - onehot) * loss_weight / normalizer."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers._loss import normalization_mode, normalizer
from runner.layers.base import Layer, top_diff_scale
from runner.layers.softmax import softmax_dims
from runner.registry import register


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    is_loss = True

    def setup(self, bottoms, tops) -> None:
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(self.param, pb.LossParameter.VALID)
        self.prob = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.dims = softmax_dims(bottoms[0].shape, self.param.softmax_param.axis, f"layer '{self.name}'")
        self.prob = self.backend.empty(bottoms[0].shape)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        outer, dim, inner = self.dims
        be.softmax_fwd(bottoms[0].dev_data, self.prob, outer, dim, inner)
        try:
            loss, valid = be.softmax_loss_fwd(self.prob, bottoms[1].dev_data, outer, dim, inner, self.ignore)
        except ValueError as e:
            raise self.error(str(e)) from None
        self.valid = valid
        tops[0].data = [loss / normalizer(self.mode, outer, inner, valid)]
        if len(tops) > 1:
            be.copy(self.prob, tops[1].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if not propagate_down[0]:
            return
        outer, dim, inner = self.dims
        scale = top_diff_scale(tops[0]) / normalizer(self.mode, outer, inner, self.valid)
        self.backend.softmax_loss_bwd(self.prob, bottoms[1].dev_data, bottoms[0].dev_diff, outer, dim,
                                      inner, self.ignore, scale)
