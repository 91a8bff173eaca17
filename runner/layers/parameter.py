"""Parameter (Caffe ParameterLayer): no bottoms; one learned blob of ``parameter_param.shape``
(zero-initialized, as Caffe: it has no filler) exposed as the top. The top shares the blob's data
and diff, so the consumer's gradient lands in the parameter's diff (as in Caffe, it is written,
not accumulated)."""
from __future__ import annotations

from runner.layers.base import Layer
from runner.registry import register


@register("Parameter")
class ParameterLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        self.add_param(self.infer(bottoms).param_shapes[0], None, "parameter")

    def _share(self, tops) -> None:
        if not tops[0].shares_data_with(self.blobs[0]) or tops[0].shape != self.blobs[0].shape:
            tops[0].reshape(self.blobs[0].shape)
        tops[0].share_data(self.blobs[0])
        tops[0].share_diff(self.blobs[0])

    def reshape(self, bottoms, tops) -> None:
        self._share(tops)

    def forward(self, bottoms, tops) -> None:
        self._share(tops)   # the Net may have shared or replaced the blob's buffers since setup

    def backward(self, tops, propagate_down, bottoms) -> None:
        return None
