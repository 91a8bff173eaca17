"""InnerProduct (Caffe InnerProductLayer): bottom viewed as (M, K) with M = count(0, axis),
K = count(axis); y (M, N) = x W^T + b, W (N, K) (or (K, N) with ``transpose: true``, y = x W),
b (N,). Fillers ``weight_filler`` / ``bias_filler``."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("InnerProduct")
class InnerProductLayer(Layer):
    replayable = True

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        p = self.param.inner_product_param
        self.axis = canonical_axis(p.axis, len(bottoms[0].shape), f"layer '{self.name}'")
        self.transpose = bool(p.transpose)
        self.bias_term = bool(p.bias_term)
        self.n_out = int(p.num_output)
        shapes = self.infer(bottoms)
        self.add_param(shapes.param_shapes[0], p.weight_filler, "weight")
        if self.bias_term:
            self.add_param(shapes.param_shapes[1], p.bias_filler, "bias")

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        self.m = count(s, 0, self.axis)
        self.k = count(s, self.axis)

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        be = self.backend
        x = be.reshape(bottoms[0].dev_data, (self.m, self.k))
        y = be.reshape(tops[0].dev_data, (self.m, self.n_out))
        be.gemm(False, not self.transpose, 1.0, x, self.blobs[0].dev_data, 0.0, y)
        if self.bias_term:
            be.bias_fwd(y, self.blobs[1].dev_data, y, self.m, self.n_out, 1)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        be = self.backend
        dy = be.reshape(tops[0].dev_diff, (self.m, self.n_out))
        if self.param_propagate_down[0]:
            x = be.reshape(bottoms[0].dev_data, (self.m, self.k))
            dw = self.blobs[0].dev_diff
            if self.transpose:
                be.gemm(True, False, 1.0, x, dy, 1.0, dw)      # (K, N) += x^T dy
            else:
                be.gemm(True, False, 1.0, dy, x, 1.0, dw)      # (N, K) += dy^T x
        if self.bias_term and self.param_propagate_down[1]:
            be.bias_bwd(dy, self.blobs[1].dev_diff, self.m, self.n_out, 1)
        if propagate_down[0]:
            dx = be.reshape(bottoms[0].dev_diff, (self.m, self.k))
            be.gemm(False, self.transpose, 1.0, dy, self.blobs[0].dev_data, 0.0, dx)
