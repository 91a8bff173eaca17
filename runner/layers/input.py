"""Input: the net's fed blobs. Tops are shaped from ``input_param.shape`` at setup; afterwards the
Net (or the user, through ``blob.reshape``) sets their shape, so ``reshape`` keeps it (Caffe's
InputLayer::Reshape is empty)."""
from __future__ import annotations

from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("Input")
class InputLayer(Layer):
    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        return None

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        return None

    def backward(self, tops, propagate_down, bottoms) -> None:
        return None
