"""Normalize (the SSD fork's NormalizeLayer, ``norm_param``): L2 normalisation of each image
(``across_spatial``, default true) or of each spatial position over the channels, then a learned
scale, one value (``channel_shared``, default true; blob shape ()) or one per channel (C,),
filled by ``scale_filler`` (default constant 1): y = x / sqrt(sum x^2 + eps) * scale, ``eps``
default 1e-10. Backward as the fork: dx = (dy - x * sum(x * dy) / norm^2) / norm * scale,
dscale += sum(y * dy) / scale. Bottoms of 2 to 4 axes (the fork's legacy accessors). In place
keeps a copy of x for the backward."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers.base import Layer
from runner.registry import register


@register("Normalize")
class NormalizeLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.norm_param
        shapes = self.infer(bottoms)
        fp = pb.FillerParameter()
        if p.HasField("scale_filler"):
            fp.CopyFrom(p.scale_filler)
        else:
            fp.type, fp.value = "constant", 1.0
        self.add_param(shapes.param_shapes[0], fp, "scale")
        self.norm = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.g = g = shapes.geometry
        self.norm = self.backend.empty((g.n,) if g.across_spatial else (g.n, g.s))

    def forward(self, bottoms, tops) -> None:
        self.backend.normalize_fwd(self.keep_input(bottoms, tops), self.blobs[0].dev_data,
                                   tops[0].dev_data, self.norm, self.g)

    def backward(self, tops, propagate_down, bottoms) -> None:
        self.backend.normalize_bwd(
            self.saved_input(bottoms), tops[0].dev_data, tops[0].dev_diff, self.blobs[0].dev_data, self.norm,
            bottoms[0].dev_diff if propagate_down[0] else None,
            self.blobs[0].dev_diff if self.param_propagate_down[0] else None, self.g)
