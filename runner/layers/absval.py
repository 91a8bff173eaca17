"""AbsVal (Caffe AbsValLayer): y = |x|; dx = sign(x) * dy. Not in place (Caffe forbids it)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("AbsVal")
class AbsValLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        if tops[0] is bottoms[0]:
            raise self.error("does not allow in-place computation")

    def forward(self, bottoms, tops) -> None:
        self.backend.abs_fwd(bottoms[0].dev_data, tops[0].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.abs_bwd(bottoms[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff)
