"""Shared bits of the layer tests: run one layer forward on cpu (float32 by default)."""
from __future__ import annotations

import numpy as np

from tests.gradcheck import check_gradient, make_layer

__all__ = ["check_gradient", "make_layer", "forward"]


def forward(text, bottom_values, phase="TRAIN", dtype=np.float32, in_place=False, seed=0):
    """Run a layer once; returns (layer, [top arrays])."""
    shapes = [np.asarray(v).shape for v in bottom_values]
    layer, b, t = make_layer(text, shapes, phase=phase, dtype=dtype, bottom_values=bottom_values,
                             in_place=in_place, seed=seed)
    layer.forward(b, t)
    return layer, [np.array(x.host_data()) for x in t]
