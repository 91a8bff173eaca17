"""Concat (Caffe ConcatLayer): joins bottoms along ``concat_param.axis`` (default 1; legacy
``concat_dim``); backward splits the top diff back into the bottoms that need it."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


def concat_axis(param, ndim: int, where: str) -> int:
    p = param.concat_param
    if p.HasField("concat_dim") and not p.HasField("axis"):
        return int(p.concat_dim)
    return canonical_axis(p.axis, ndim, where)


@register("Concat")
class ConcatLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        a = concat_axis(self.param, len(s), f"layer '{self.name}'")
        self.outer, self.inner = count(s, 0, a), count(s, a + 1)
        self.dims = [b.shape[a] for b in bottoms]

    def forward(self, bottoms, tops) -> None:
        self.backend.concat_fwd([b.dev_data for b in bottoms], tops[0].dev_data, self.outer, self.dims,
                                self.inner)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if not any(propagate_down):
            return
        dxs = [b.dev_diff if pd else None for b, pd in zip(bottoms, propagate_down)]
        self.backend.concat_bwd(tops[0].dev_diff, dxs, self.outer, self.dims, self.inner)
