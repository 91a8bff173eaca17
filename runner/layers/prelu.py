"""PReLU (Caffe PReLULayer): y = max(x, 0) + a_c * min(x, 0) over channel axis 1 (the bottom has
at least 2 axes), a learned slope per channel, or one 0-D slope with ``channel_shared``; the slope
filler defaults to constant 0.25. Backward: da_c += sum dy * x * (x <= 0), dx = dy * ((x > 0) +
a_c * (x <= 0)). In place keeps a copy of x (as Caffe's bottom_memory_)."""
from __future__ import annotations

from netdef.shapes import count
from proto import caffe_pb2 as pb
from runner.layers._neuron import NeuronLayer
from runner.registry import register


@register("PReLU")
class PReLULayer(NeuronLayer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.prelu_param
        self.shared = bool(p.channel_shared)
        fp = pb.FillerParameter()
        if p.HasField("filler"):
            fp.CopyFrom(p.filler)
        else:
            fp.type, fp.value = "constant", 0.25
        self.add_param(self.infer(bottoms).param_shapes[0], fp, "slope")

    def _dims(self, bottoms) -> tuple[int, int]:
        s = bottoms[0].shape
        return s[1], count(s, 2)

    def forward(self, bottoms, tops) -> None:
        self.keep_input(bottoms, tops)
        channels, dim = self._dims(bottoms)
        self.backend.prelu_fwd(bottoms[0].dev_data, self.blobs[0].dev_data, tops[0].dev_data, channels,
                               dim, self.shared)

    def backward(self, tops, propagate_down, bottoms) -> None:
        want_slope = self.param_propagate_down[0]
        if not (propagate_down[0] or want_slope):
            return
        channels, dim = self._dims(bottoms)
        self.backend.prelu_bwd(self.saved_input(bottoms), self.blobs[0].dev_data, tops[0].dev_diff,
                               bottoms[0].dev_diff if propagate_down[0] else None,
                               self.blobs[0].dev_diff if want_slope else None, channels, dim,
                               self.shared)
