"""Sigmoid (Caffe SigmoidLayer): y = 1 / (1 + exp(-x)); dx = dy * y * (1 - y)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Sigmoid")
class SigmoidLayer(NeuronLayer):
    def forward(self, bottoms, tops) -> None:
        self.backend.sigmoid_fwd(bottoms[0].dev_data, tops[0].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.sigmoid_bwd(tops[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff)
