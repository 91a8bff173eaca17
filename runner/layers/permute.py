"""Permute (the SSD fork's PermuteLayer, ``permute_param.order``): top axis i is bottom axis
order[i]; the axes not named follow in their order (SSD heads use 0 2 3 1, NCHW -> NHWC).
Backward applies the inverse permutation. When the order is the identity the top shares the
bottom's data and diff, as the fork does. A real permutation cannot run in place (the fork would
scramble the blob): refused at setup."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Permute")
class PermuteLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        if tops[0] is bottoms[0] and self.infer(bottoms).geometry.need_permute:
            raise self.error("cannot permute in place; give the top another name")

    def reshape(self, bottoms, tops) -> None:
        super().reshape(bottoms, tops)
        self.g = self._shapes.geometry
        if not self.g.need_permute:
            tops[0].share_data(bottoms[0])
            tops[0].share_diff(bottoms[0])

    def forward(self, bottoms, tops) -> None:
        if self.g.need_permute:
            self.backend.permute(bottoms[0].dev_data, tops[0].dev_data, self.g.shape, self.g.order)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0] and self.g.need_permute:
            self.backend.permute(tops[0].dev_diff, bottoms[0].dev_diff, tops[0].shape,
                                 self.g.inverse)
