"""BatchReindex (Caffe BatchReindexLayer): top[i] = bottom[0][index[i]] along the batch axis, with
``index`` bottom[1], a 1-D blob of M item numbers (floats). The indices are checked on the host
before every forward, as Caffe's forward does on both its paths (0 <= index < N, compared as
floats; an index is then truncated); the gather itself runs on the device. Backward adds each top
item's diff to the item it came from (repeats accumulate; items nobody picked get 0). There is no
gradient to the indices."""
from __future__ import annotations

import numpy as np

from netdef.shapes import count
from runner.layers.base import Layer
from runner.registry import register


@register("BatchReindex")
class BatchReindexLayer(Layer):
    def forward(self, bottoms, tops) -> None:
        n = bottoms[0].shape[0]
        idx = np.asarray(bottoms[1].host_data()).reshape(-1)
        bad = ~((idx >= 0) & (idx < n))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.error(f"index {float(idx[i]):g} (item {i} of bottom[1]) is outside [0, {n}): "
                             f"an index must name an item of bottom[0]")
        if tops[0].count == 0:
            return
        self.backend.take_rows(bottoms[0].dev_data, bottoms[1].dev_data, tops[0].dev_data,
                               count(bottoms[0].shape, 1))

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the index bottom; set propagate_down: false")
        if propagate_down[0]:
            self.backend.take_rows_bwd(tops[0].dev_diff, bottoms[1].dev_data, bottoms[0].dev_diff,
                                       count(bottoms[0].shape, 1))
