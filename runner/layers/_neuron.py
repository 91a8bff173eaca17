"""Base for elementwise (Caffe NeuronLayer) layers: one bottom, one top of the same shape,
in place allowed (the top takes the bottom's shape without a shape rule call). Layers whose
backward needs the input x call ``self.keep_input`` in forward (``runner.layers.base.Layer``)."""
from __future__ import annotations

from runner.blob import Blob
from runner.layers.base import Layer


class NeuronLayer(Layer):
    replayable = True

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        if tops[0] is not bottoms[0] and tops[0].shape != bottoms[0].shape:
            tops[0].reshape(bottoms[0].shape)
