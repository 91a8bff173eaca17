"""Pooling (Caffe PoolingLayer): MAX or AVE over kernel windows with stride and pad, global
pooling, ceil (default) or floor round_mode. MAX may have a second top holding the argmax index
(h * W + w) as floats. AVE divides by the window size clipped to the padded image (padding counts);
MAX ignores padding. STOCHASTIC is not supported (error at setup)."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("Pooling")
class PoolingLayer(Layer):
    replayable = True

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        p = self.param.pooling_param
        if p.pool == pb.PoolingParameter.STOCHASTIC:
            raise self.error("STOCHASTIC pooling is not supported by nbcaffe (use MAX or AVE)")
        self.is_max = p.pool == pb.PoolingParameter.MAX
        self.mask = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.geom = shapes.geometry          # parsed by netdef.shapes
        if self.is_max:
            self.mask = self.backend.empty(shapes.top_shapes[0], dtype="int32")

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        be = self.backend
        if self.is_max:
            be.max_pool_fwd(bottoms[0].dev_data, tops[0].dev_data, self.mask, self.geom)
            if len(tops) > 1:
                tops[1].data = be.to_host(self.mask).astype("float32")
        else:
            be.ave_pool_fwd(bottoms[0].dev_data, tops[0].dev_data, self.geom)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        if self.is_max:
            be.max_pool_bwd(tops[0].dev_diff, self.mask, bottoms[0].dev_diff, self.geom)
        else:
            be.ave_pool_bwd(tops[0].dev_diff, bottoms[0].dev_diff, self.geom)
