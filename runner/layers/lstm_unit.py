"""LSTMUnit (Caffe 1.0's LSTMUnitLayer): one LSTM time step. Bottoms: c_prev (1, N, D), gate input
X (1, N, 4D) = [i', f', o', g'] pre-activations, cont (1, N); tops: c (1, N, D), h (1, N, D):

    i = sigmoid(i'), f = cont * sigmoid(f') (0 where cont == 0), o = sigmoid(o'), g = tanh(g'),
    c = f * c_prev + i * g,  h = o * tanh(c)

Backward is Caffe's (``Backend.lstm_unit_bwd``); the sequence indicators (bottom 2) never get a
gradient (an explicit ``propagate_down`` to them is refused, as Caffe CHECKs). Caffe's unrolled
LSTM (runner/layers/recurrent.py) runs one per time step."""
from __future__ import annotations

from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("LSTMUnit")
class LSTMUnitLayer(Layer):
    replayable = True

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        c_prev, x, cont = bottoms
        self.backend.lstm_unit_fwd(c_prev.dev_data, x.dev_data, cont.dev_data, tops[0].dev_data,
                                   tops[1].dev_data)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        if propagate_down[2]:
            raise self.error("cannot backpropagate to sequence indicators (bottom 2, cont)")
        if not (propagate_down[0] or propagate_down[1]):
            return
        c_prev, x, cont = bottoms
        c, h = tops
        self.backend.lstm_unit_bwd(c_prev.dev_data, x.dev_data, cont.dev_data, c.dev_data,
                                   c.dev_diff, h.dev_diff, c_prev.dev_diff, x.dev_diff)
