"""ArgMax (Caffe ArgMaxLayer): the ``top_k`` (default 1) largest entries per position, as indices
(or values with ``out_max_val`` and ``axis``). Without ``axis``: over all non-batch axes, top
(N, 1 or 2, top_k) holding indices (and values as the second row with out_max_val). Ties put the
higher index first (Caffe's std::greater on (value, index) pairs). No gradient."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


@register("ArgMax")
class ArgMaxLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.argmax_param
        self.top_k = int(p.top_k)
        self.out_max_val = bool(p.out_max_val)
        self.has_axis = p.HasField("axis")

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        if self.has_axis:
            a = canonical_axis(self.param.argmax_param.axis, len(s), f"layer '{self.name}'")
            self.dims = (count(s, 0, a), int(s[a]), count(s, a + 1))
        else:
            self.dims = (int(s[0]), count(s, 1), 1)
        if self.top_k > self.dims[1]:
            raise self.error(f"top_k {self.top_k} must be <= the dimension size {self.dims[1]}")

    def forward(self, bottoms, tops) -> None:
        self.backend.argmax(bottoms[0].dev_data, tops[0].dev_data, *self.dims, self.top_k,
                            self.out_max_val, self.has_axis)
