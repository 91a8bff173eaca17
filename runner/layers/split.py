"""Split (Caffe SplitLayer, inserted by netdef where a blob feeds several layers): every top
shares the bottom's data (no copy); backward sums the tops' diffs into the bottom diff."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Split")
class SplitLayer(Layer):
    replayable = True

    def reshape(self, bottoms, tops) -> None:
        for t in tops:
            if t.shape != bottoms[0].shape:
                t.reshape(bottoms[0].shape)
            t.share_data(bottoms[0])

    def forward(self, bottoms, tops) -> None:
        return None

    def backward(self, tops, propagate_down, bottoms) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        dx = bottoms[0].dev_diff
        if len(tops) == 1:
            be.copy(tops[0].dev_diff, dx)
            return
        be.add(tops[0].dev_diff, tops[1].dev_diff, dx)
        for t in tops[2:]:
            be.axpy(1.0, t.dev_diff, dx)
