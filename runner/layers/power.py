"""Power (Caffe PowerLayer): y = (shift + scale * x) ^ power (``power_param``: power 1, scale 1,
shift 0 by default); dx = dy * power * scale * (shift + scale * x)^(power - 1).
In place allowed (x is copied aside)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Power")
class PowerLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.power_param
        self.p = (float(p.power), float(p.scale), float(p.shift))

    def forward(self, bottoms, tops) -> None:
        self.backend.power_fwd(self.keep_input(bottoms, tops), tops[0].dev_data, *self.p)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.power_bwd(self.saved_input(bottoms), tops[0].dev_data, tops[0].dev_diff,
                                   bottoms[0].dev_diff, *self.p)
