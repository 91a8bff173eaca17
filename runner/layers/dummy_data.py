"""DummyData (Caffe DummyDataLayer): tops of the given shapes (``shape`` or legacy
num/channels/height/width) filled by ``data_filler`` (none: constant 0; one: for every top; else
one per top). Constant fillers fill once; other fillers refill on every forward, from the Net's
Generator."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.fillers import fill
from runner.layers.base import Layer
from runner.registry import register


@register("DummyData")
class DummyDataLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.dummy_data_param
        nf = len(p.data_filler)
        if nf not in (0, 1, len(tops)):
            raise self.error(f"give 0, 1 or {len(tops)} data_filler, got {nf}")
        if nf == 0:
            fp = pb.FillerParameter(type="constant", value=0.0)
            self.fillers = [fp] * len(tops)
        elif nf == 1:
            self.fillers = [p.data_filler[0]] * len(tops)
        else:
            self.fillers = list(p.data_filler)
        self.refill = [f.type != "constant" for f in self.fillers]
        self._first = True

    def forward(self, bottoms, tops) -> None:
        for t, f, refill in zip(tops, self.fillers, self.refill):
            if refill or self._first:
                fill(t, f, self.rng, where=f"layer '{self.name}': ")
        self._first = False
