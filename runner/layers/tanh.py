"""TanH (Caffe TanHLayer): y = tanh(x); dx = dy * (1 - y^2)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("TanH")
class TanHLayer(NeuronLayer):
    def forward(self, bottoms, tops) -> None:
        self.backend.tanh_fwd(bottoms[0].dev_data, tops[0].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.tanh_bwd(tops[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff)
