"""BNLL (Caffe BNLLLayer): y = log(1 + exp(x)) computed overflow-free; dx = dy * sigmoid(x)
(with Caffe's exp clamp at 50). In place allowed (x is copied aside)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("BNLL")
class BNLLLayer(NeuronLayer):
    def forward(self, bottoms, tops) -> None:
        self.backend.bnll_fwd(self.keep_input(bottoms, tops), tops[0].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.bnll_bwd(self.saved_input(bottoms), tops[0].dev_diff, bottoms[0].dev_diff)
