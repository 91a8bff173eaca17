"""Dropout (Caffe DropoutLayer): TRAIN: y = x * mask / (1 - ratio), mask[i] = 1 with probability
1 - ``dropout_ratio`` (default 0.5); TEST: y = x. The mask comes from the counter-based generator
shared by both backends (kernels.dropout's Philox generator; its host twin on cpu): the mask of a
forward depends on (seed, stream, element index) only. The layer's seed is drawn from the Net's
Generator at setup and the stream is a counter that advances by one every TRAIN forward, so runs
with the same Net seed are reproducible and each iteration draws a fresh mask."""
from __future__ import annotations

from runner.layers._neuron import NeuronLayer
from runner.registry import register

MASK_DTYPE = "uint8"


@register("Dropout")
class DropoutLayer(NeuronLayer):
    replayable = False      # the mask's counter advances every TRAIN forward
    def setup(self, bottoms, tops) -> None:
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.seed = int(self.rng.integers(0, 2**31 - 1))
        self.counter = 0
        self.mask = None

    def get_rng_state(self):
        return self.counter

    def set_rng_state(self, state) -> None:
        self.counter = int(state)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        x = bottoms[0].dev_data
        if self.phase == "TRAIN":
            if self.mask is None or tuple(self.mask.shape) != tuple(x.shape):
                self.mask = be.empty(x.shape, dtype=MASK_DTYPE)
            be.dropout_fwd(x, tops[0].dev_data, self.mask, self.ratio, self.seed, self.counter)
            self.counter += 1
        elif tops[0] is not bottoms[0]:
            be.copy(x, tops[0].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        if self.phase == "TRAIN":
            be.dropout_bwd(tops[0].dev_diff, self.mask, bottoms[0].dev_diff, self.ratio)
        elif tops[0] is not bottoms[0]:
            be.copy(tops[0].dev_diff, bottoms[0].dev_diff)
