"""ReLU (Caffe ReLULayer): y = max(x, 0) + negative_slope * min(x, 0); in place allowed.
Backward uses the bottom data's sign (the top's, in place: same sign)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("ReLU")
class ReLULayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        self.slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottoms, tops) -> None:
        self.backend.relu_fwd(bottoms[0].dev_data, tops[0].dev_data, self.slope)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.relu_bwd(bottoms[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff, self.slope)
