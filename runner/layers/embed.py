"""Embed (Caffe EmbedLayer): a lookup table. Each bottom value (an integer index in
[0, input_dim), stored as float) selects a row of the learned (input_dim, num_output) weight; the
top is the bottom's shape plus a num_output axis; ``bias_term`` (default true) adds a learned
(num_output,) bias. Fillers ``weight_filler`` / ``bias_filler`` (default constant 0). Backward
accumulates the rows' gradients (repeated indices add up) and the bias's; there is no gradient to
the indices (Caffe refuses one, also under force_backward). A bad index is an error naming it on
cpu, a row of NaN on cuda (the device is not read back)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Embed")
class EmbedLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.embed_param
        self.k_in, self.n_out, self.bias_term = int(p.input_dim), int(p.num_output), bool(p.bias_term)
        shapes = self.infer(bottoms)
        self.add_param(shapes.param_shapes[0], p.weight_filler, "weight")
        if self.bias_term:
            self.add_param(shapes.param_shapes[1], p.bias_filler, "bias")

    def forward(self, bottoms, tops) -> None:
        b = self.blobs[1].dev_data if self.bias_term else None
        try:
            self.backend.embed_fwd(bottoms[0].dev_data, self.blobs[0].dev_data, b, tops[0].dev_data,
                                   bottoms[0].count, self.n_out, self.k_in)
        except ValueError as e:
            raise self.error(str(e)) from None

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            raise self.error("can't backpropagate to the Embed input (the indices); set "
                             "propagate_down: false")
        dw = self.blobs[0].dev_diff if self.param_propagate_down[0] else None
        db = self.blobs[1].dev_diff if self.bias_term and self.param_propagate_down[1] else None
        try:
            self.backend.embed_bwd(bottoms[0].dev_data, tops[0].dev_diff, dw, db, bottoms[0].count,
                                   self.n_out, self.k_in)
        except ValueError as e:
            raise self.error(str(e)) from None
