"""ELU (Caffe ELULayer): y = x if x > 0 else alpha * (exp(x) - 1); dx = dy if x > 0 else
dy * (y + alpha). ``elu_param.alpha`` (default 1). In place allowed (x > 0 iff y > 0)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("ELU")
class ELULayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, bottoms, tops) -> None:
        self.backend.elu_fwd(bottoms[0].dev_data, tops[0].dev_data, self.alpha)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.elu_bwd(bottoms[0].dev_data, tops[0].dev_data, tops[0].dev_diff,
                                 bottoms[0].dev_diff, self.alpha)
