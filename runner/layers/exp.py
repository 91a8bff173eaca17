"""Exp (Caffe ExpLayer): y = base ^ (shift + scale * x) (``exp_param``: base -1 = e, scale 1,
shift 0); dx = dy * y * ln(base) * scale. In place allowed (backward uses y)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Exp")
class ExpLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.exp_param
        self.base, self.scale, self.shift = float(p.base), float(p.scale), float(p.shift)
        if self.base != -1 and self.base <= 0:
            raise self.error(f"exp_param.base must be strictly positive (or -1 for e), got {self.base}")

    def forward(self, bottoms, tops) -> None:
        self.backend.exp_fwd(bottoms[0].dev_data, tops[0].dev_data, self.base, self.scale, self.shift)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.exp_bwd(tops[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff, self.base,
                                 self.scale)
