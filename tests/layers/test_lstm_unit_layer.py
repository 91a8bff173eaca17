"""LSTMUnit (Caffe 1.0's LSTMUnitLayer): forward against the documented step equations
(tests/reference/recurrent.py), cont = 0 dropping the previous cell (hand-computed), gradients of
c_prev and the gate input (float64 checker), no gradient to cont."""
from __future__ import annotations

import math

import numpy as np
import pytest

from netdef.errors import CaffeError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.reference.recurrent import lstm_unit_ref

TEXT = 'type: "LSTMUnit" top: "c" top: "h"'


def test_forward_matches_the_equations():
    rng = np.random.default_rng(0)
    c_prev, gates = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 3, 16))
    cont = np.array([[1, 0, 1]], np.float64)
    _, (c, h) = forward(TEXT, [c_prev, gates, cont], dtype=np.float64)
    wc, wh = lstm_unit_ref(c_prev[0], gates[0], cont[0])
    assert_close(c[0], wc, 1e-12, 1e-12, name="c")
    assert_close(h[0], wh, 1e-12, 1e-12, name="h")


def test_cont_zero_drops_the_previous_cell_hand_computed():
    """All gate pre-activations 0: i = f = o = 0.5, g = 0. c_prev = 2: cont 1 gives c = 0.5*2 = 1,
    h = 0.5*tanh(1); cont 0 gives c = 0, h = 0."""
    _, (c, h) = forward(TEXT, [np.full((1, 2, 1), 2.0), np.zeros((1, 2, 4)), np.array([[1.0, 0.0]])],
                        dtype=np.float64)
    assert_close(c[0, :, 0], np.array([1.0, 0.0]), 1e-15, 0, name="c")
    assert_close(h[0, :, 0], np.array([0.5 * math.tanh(1.0), 0.0]), 1e-15, 0, name="h")


def test_gradient():
    layer, b, t = make_layer(TEXT, [(1, 3, 2), (1, 3, 8), (1, 3)],
                             bottom_values=[None, None, np.array([[1, 0, 1]])])
    check_gradient(layer, b, t, check_bottoms=[0, 1])


def test_cont_gets_no_gradient():
    layer, b, t = make_layer(TEXT, [(1, 2, 2), (1, 2, 8), (1, 2)],
                             bottom_values=[None, None, np.array([[1, 1]])])
    layer.forward(b, t)
    with pytest.raises(CaffeError, match="sequence indicators"):
        layer.backward(t, [True, True, True], b)
    assert not layer.allow_force_backward(2)


def test_shape_errors():
    with pytest.raises(CaffeError, match="4 \\* 3"):
        make_layer(TEXT, [(1, 2, 3), (1, 2, 8), (1, 2)])
