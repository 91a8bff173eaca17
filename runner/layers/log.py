"""Log (Caffe LogLayer): y = log_base(shift + scale * x) (``log_param``: base -1 = e, scale 1,
shift 0); dx = dy * scale / ((shift + scale * x) ln(base)). In place allowed (x is copied aside)."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Log")
class LogLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.log_param
        self.base, self.scale, self.shift = float(p.base), float(p.scale), float(p.shift)
        if self.base != -1 and self.base <= 0:
            raise self.error(f"log_param.base must be strictly positive (or -1 for e), got {self.base}")

    def forward(self, bottoms, tops) -> None:
        self.backend.log_fwd(self.keep_input(bottoms, tops), tops[0].dev_data, self.base, self.scale,
                             self.shift)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.log_bwd(self.saved_input(bottoms), tops[0].dev_diff, bottoms[0].dev_diff,
                                 self.base, self.scale, self.shift)
