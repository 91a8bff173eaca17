"""Pooling (Caffe PoolingLayer): MAX, AVE or STOCHASTIC over kernel windows with stride and pad,
global pooling, ceil (default) or floor round_mode. MAX may have a second top holding the argmax
index (h * W + w) as floats. AVE divides by the window size clipped to the padded image (padding
counts); MAX ignores padding.

STOCHASTIC (no padding, as Caffe): TRAIN picks one element per window with probability
proportional to its value (Caffe's rule: u uniform in (0, 1], the first element whose running sum
reaches u * window sum) and backward routes the gradient to it; TEST gives the probability-weighted
average sum(x^2) / sum(x). The uniforms come from the counter-based generator Dropout uses
(``kernels.pool``, the same draws on cpu and cuda): the layer's seed is drawn from the
Net's Generator at setup and the stream advances by one every TRAIN forward, so a resumed solver
draws what an uninterrupted run would."""
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
        self.is_max = p.pool == pb.PoolingParameter.MAX
        self.stochastic = p.pool == pb.PoolingParameter.STOCHASTIC
        self.mask = None
        if self.stochastic:
            self.seed = int(self.rng.integers(0, 2**31 - 1))
            self.counter = 0
            if self.phase == "TRAIN":
                self.replayable = False      # the stream advances every TRAIN forward

    # counter-based stream of STOCHASTIC pooling (the solver restores it on resume, as Dropout's)
    def get_rng_state(self):
        return self.counter if self.stochastic and self.phase == "TRAIN" else None

    def set_rng_state(self, state) -> None:
        if self.stochastic and state is not None:
            self.counter = int(state)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.geom = shapes.geometry          # parsed by netdef.shapes
        if self.is_max or (self.stochastic and self.phase == "TRAIN"):
            self.mask = self.backend.empty(shapes.top_shapes[0], dtype="int32")

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        be = self.backend
        if self.is_max:
            be.max_pool_fwd(bottoms[0].dev_data, tops[0].dev_data, self.mask, self.geom)
            if len(tops) > 1:
                tops[1].data = be.to_host(self.mask).astype("float32")
        elif self.stochastic:
            if self.phase == "TRAIN":
                be.sto_pool_fwd_train(bottoms[0].dev_data, tops[0].dev_data, self.mask, self.geom,
                                      self.seed, self.counter)
                self.counter += 1
            else:
                be.sto_pool_fwd_test(bottoms[0].dev_data, tops[0].dev_data, self.geom)
        else:
            be.ave_pool_fwd(bottoms[0].dev_data, tops[0].dev_data, self.geom)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        if self.is_max:
            be.max_pool_bwd(tops[0].dev_diff, self.mask, bottoms[0].dev_diff, self.geom)
        elif self.stochastic:
            if self.phase != "TRAIN":
                raise self.error("STOCHASTIC pooling has a backward only in TRAIN (the TEST "
                                 "average draws nothing to route the gradient to)")
            be.sto_pool_bwd(tops[0].dev_diff, self.mask, bottoms[0].dev_diff, self.geom)
        else:
            be.ave_pool_bwd(tops[0].dev_diff, bottoms[0].dev_diff, self.geom)
