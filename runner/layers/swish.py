"""Swish (Caffe SwishLayer): y = x * sigmoid(beta * x) (``swish_param.beta``, default 1), the
sigmoid kept from the forward; backward dx = dy * (beta*y + s*(1 - beta*y)) from the top data y,
so in place needs no copy."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Swish")
class SwishLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        self.beta = float(self.param.swish_param.beta)
        self.sig = None

    def forward(self, bottoms, tops) -> None:
        x = bottoms[0].dev_data
        if self.sig is None or tuple(self.sig.shape) != tuple(x.shape):
            self.sig = self.backend.empty(x.shape)
        self.backend.swish_fwd(x, tops[0].dev_data, self.sig, self.beta)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.swish_bwd(tops[0].dev_data, self.sig, tops[0].dev_diff, bottoms[0].dev_diff,
                                   self.beta)
