"""Clip (Caffe ClipLayer): y = max(min, min(x, max)) (``clip_param`` min and max, both required);
backward dx = dy where min <= x <= max, else 0. In place keeps a copy of x for the backward."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("Clip")
class ClipLayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.clip_param
        self.lo, self.hi = float(p.min), float(p.max)

    def forward(self, bottoms, tops) -> None:
        self.keep_input(bottoms, tops)
        self.backend.clip_fwd(bottoms[0].dev_data, tops[0].dev_data, self.lo, self.hi)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.clip_bwd(self.saved_input(bottoms), tops[0].dev_diff, bottoms[0].dev_diff,
                                  self.lo, self.hi)
