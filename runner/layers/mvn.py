"""MVN (Caffe MVNLayer): mean-variance normalization. The bottom is read through Caffe's legacy 4-D
view (num, channels, height, width), which is also the top's shape; each (n, c) plane, or each n
with ``across_channels``, gets y = x - mean, and with ``normalize_variance`` (default true)
y = (x - mean) / (sqrt(var) + eps) (``eps`` default 1e-9, added after the root). Backward is
Caffe's formula (kernels/mvn.py)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("MVN")
class MVNLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.mvn_param
        self.normalize = bool(p.normalize_variance)
        self.across = bool(p.across_channels)
        self.eps = float(p.eps)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        num, channels, h, w = shapes.top_shapes[0]
        self.rows = num if self.across else num * channels
        self.dim = (channels * h * w) if self.across else h * w
        self.mean = self.backend.empty((self.rows,))
        self.std = self.backend.empty((self.rows,))

    def forward(self, bottoms, tops) -> None:
        self.backend.mvn_fwd(bottoms[0].dev_data, tops[0].dev_data, self.mean, self.std, self.rows,
                             self.dim, self.normalize, self.eps)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.mvn_bwd(tops[0].dev_data, tops[0].dev_diff, self.std, bottoms[0].dev_diff,
                                 self.rows, self.dim, self.normalize)
