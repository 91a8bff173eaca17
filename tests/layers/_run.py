"""Run one layer forward and backward on the cpu backend (float64 by default) with given bottom
values and top diffs; returns the tops and the bottom diffs (and the layer, for its params)."""
from __future__ import annotations

import numpy as np

from tests.gradcheck import make_layer


def forward_backward(text, bottom_values, top_diffs=None, propagate=None, dtype=np.float64,
                     phase="TRAIN", in_place=False, device="cpu"):
    """(layer, [top arrays], [bottom diff arrays]); ``top_diffs`` None: forward only;
    ``propagate`` per bottom (default: all)."""
    shapes = [np.asarray(v).shape for v in bottom_values]
    layer, bottoms, tops = make_layer(text, shapes, phase=phase, dtype=dtype, device=device,
                                      bottom_values=bottom_values, in_place=in_place)
    layer.reshape(bottoms, tops)
    layer.forward(bottoms, tops)
    ys = [np.array(t.host_data()) for t in tops]
    if top_diffs is None:
        return layer, ys, None
    for t, d in zip(tops, top_diffs):
        t.diff = np.asarray(d, dtype=np.float64).reshape(t.shape)
    for p in layer.blobs:
        p.diff = np.zeros(p.shape)
    prop = [True] * len(bottoms) if propagate is None else list(propagate)
    layer.backward(tops, prop, bottoms)
    return layer, ys, [np.array(b.host_diff()) for b in bottoms]
