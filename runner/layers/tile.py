"""Tile (Caffe TileLayer): the block of axes from ``axis`` (default 1) on is repeated ``tiles``
times along ``axis``: x viewed as (outer, inner) gives y (outer, tiles, inner), e.g. (2, 3) with
axis 1 and tiles 2 gives rows [a b c a b c]. Backward adds the tiles' diffs back."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


@register("Tile")
class TileLayer(Layer):
    replayable = True

    def on_reshape(self, bottoms, tops, shapes) -> None:
        p = self.param.tile_param
        s = bottoms[0].shape
        axis = canonical_axis(p.axis, len(s), f"layer '{self.name}'")
        self.outer, self.inner, self.tiles = count(s, 0, axis), count(s, axis), int(p.tiles)

    def forward(self, bottoms, tops) -> None:
        self.backend.tile_fwd(bottoms[0].dev_data, tops[0].dev_data, self.outer, self.inner, self.tiles)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.tile_bwd(tops[0].dev_diff, bottoms[0].dev_diff, self.outer, self.inner,
                                  self.tiles)
