"""Scale (Caffe ScaleLayer): y = x * s (+ b), s broadcast over axes ``axis``..axis+num_axes
(``scale_param`` axis 1, num_axes 1; num_axes -1: all remaining). s is a learned blob (filler
default constant 1) or the second bottom; ``bias_term`` adds a learned bias (bias_filler default
constant 0). Backward: dx = dy * s, ds += sum(dy * x) (written when s is a bottom), db += sum(dy).
In place keeps a copy of x for the backward (as Caffe)."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from proto import caffe_pb2 as pb
from runner.layers.base import Layer
from runner.registry import register


@register("Scale")
class ScaleLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.scale_param
        shapes = self.infer(bottoms)
        self.bias_term = bool(p.bias_term)
        self.scale_is_bottom = len(bottoms) > 1
        k = 0
        if not self.scale_is_bottom:
            fp = pb.FillerParameter()
            if p.HasField("filler"):
                fp.CopyFrom(p.filler)
            else:
                fp.type, fp.value = "constant", 1.0
            self.add_param(shapes.param_shapes[0], fp, "scale")
            k = 1
        if self.bias_term:
            self.add_param(shapes.param_shapes[k], p.bias_filler, "bias")

    def on_reshape(self, bottoms, tops, shapes) -> None:
        p = self.param.scale_param
        s = bottoms[0].shape
        sshape = bottoms[1].shape if self.scale_is_bottom else self.blobs[0].shape
        a = canonical_axis(p.axis, len(s), f"layer '{self.name}'") if s else 0
        self.dims = (count(s, 0, a), count(sshape), count(s, a + len(sshape)))

    def _scale_blob(self, bottoms):
        return bottoms[1] if self.scale_is_bottom else self.blobs[0]

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        x = self.keep_input(bottoms, tops)
        b = self.blobs[-1].dev_data if self.bias_term else None
        be.scale_fwd(x, self._scale_blob(bottoms).dev_data, b, tops[0].dev_data, *self.dims)

    def backward(self, tops, propagate_down, bottoms) -> None:
        be = self.backend
        dy = tops[0].dev_diff
        if self.bias_term and self.param_propagate_down[-1]:
            be.bias_bwd(dy, self.blobs[-1].dev_diff, *self.dims)
        sblob = self._scale_blob(bottoms)
        need_ds = propagate_down[1] if self.scale_is_bottom else self.param_propagate_down[0]
        be.scale_bwd(self.saved_input(bottoms), sblob.dev_data, dy,
                     bottoms[0].dev_diff if propagate_down[0] else None,
                     sblob.dev_diff if need_ds else None, *self.dims,
                     accumulate_ds=not self.scale_is_bottom)
