"""Slice (Caffe SliceLayer): cuts the bottom along ``slice_param.axis`` (default 1; legacy
``slice_dim``) at ``slice_point``s (or into equal parts); backward joins the top diffs."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


@register("Slice")
class SliceLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        p = self.param.slice_param
        if p.HasField("slice_dim") and not p.HasField("axis"):
            a = int(p.slice_dim)
        else:
            a = canonical_axis(p.axis, len(s), f"layer '{self.name}'")
        self.outer, self.inner = count(s, 0, a), count(s, a + 1)
        self.dims = [t[a] for t in shapes.top_shapes]

    def forward(self, bottoms, tops) -> None:
        self.backend.concat_bwd(bottoms[0].dev_data, [t.dev_data for t in tops], self.outer, self.dims,
                                self.inner)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.concat_fwd([t.dev_diff for t in tops], bottoms[0].dev_diff, self.outer,
                                    self.dims, self.inner)
