"""Base for elementwise (Caffe NeuronLayer) layers: one bottom, one top of the same shape,
in place allowed. Layers whose backward needs the input x call ``self.keep_input`` in forward:
for an in-place layer it copies x aside (Caffe would silently use the overwritten top instead)."""
from __future__ import annotations

from typing import Any

from runner.blob import Blob
from runner.layers.base import Layer


class NeuronLayer(Layer):
    replayable = True
    _x_copy: Any = None

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        if tops[0] is not bottoms[0] and tops[0].shape != bottoms[0].shape:
            tops[0].reshape(bottoms[0].shape)

    def keep_input(self, bottoms: list[Blob], tops: list[Blob]) -> Any:
        """The input array to use in backward: bottom data, or a copy of it when in place."""
        x = bottoms[0].dev_data
        if tops[0] is not bottoms[0]:
            self._x_copy = None
            return x
        be = self.backend
        if self._x_copy is None or tuple(self._x_copy.shape) != tuple(x.shape):
            self._x_copy = be.empty(x.shape)
        be.copy(x, self._x_copy)
        return self._x_copy

    def saved_input(self, bottoms: list[Blob]) -> Any:
        return self._x_copy if self._x_copy is not None else bottoms[0].dev_data
