"""Threshold (Caffe ThresholdLayer): y = 1 if x > threshold else 0 (``threshold_param.threshold``,
default 0). No backward, as in Caffe: a net that needs a gradient through it fails at backward,
naming the layer."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        self.threshold = float(self.param.threshold_param.threshold)

    def forward(self, bottoms, tops) -> None:
        self.backend.threshold_fwd(bottoms[0].dev_data, tops[0].dev_data, self.threshold)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if any(propagate_down):
            raise self.error("has no backward pass (Caffe's Threshold is not differentiable) but a "
                             "bottom needs a gradient; set propagate_down: false")
