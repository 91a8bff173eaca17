"""MultinomialLogisticLoss: hand-computed loss and gradient, Caffe's 1e-20 clamp (a zero
probability gives -log(1e-20), its gradient -1/1e-20), bad labels, no gradient to the labels,
gradient (float64), cpu-vs-cuda parity, hypothesis draws against tests/reference/caffe_extra.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

TEXT = 'type: "MultinomialLogisticLoss"'


def test_hand_computed():
    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    _, (y,), (dx, _) = forward_backward(TEXT, [p, np.array([1.0, 0.0])], [1.0], propagate=[True, False])
    assert float(y) == pytest.approx(-(math.log(0.8) + math.log(0.5)) / 2)
    np.testing.assert_allclose(dx, [[0, -0.5 / 0.8], [-0.5 / 0.5, 0]])


def test_log_threshold():
    p = np.array([[0.0, 1.0]])
    _, (y,), (dx, _) = forward_backward(TEXT, [p, np.array([0.0])], [1.0], propagate=[True, False])
    assert float(y) == pytest.approx(-math.log(1e-20))
    assert dx[0, 0] == pytest.approx(-1e20) and dx[0, 1] == 0


def test_bad_label_and_refusal():
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(NetDefinitionError, match="label -1 outside .0, 3."):
        forward_backward(TEXT, [p, np.array([0.0, -1.0])])
    with pytest.raises(NetDefinitionError, match="cannot backpropagate to label inputs"):
        forward_backward(TEXT, [p, np.array([0.0, 1.0])], [1.0])


def test_gradient():
    p = np.random.default_rng(0).uniform(0.1, 1.0, (3, 2, 2))
    lab = np.array([3.0, 0, 1]).reshape(3, 1, 1, 1)                    # Caffe's (N, 1, 1, 1) labels
    layer, b, t = make_layer(TEXT, [p.shape, lab.shape], bottom_values=[p, lab])
    check_gradient(layer, b, t, check_bottoms=[0])


def test_parity():
    rng = np.random.default_rng(19)
    feed = {"x": rng.uniform(0.05, 1, (3, 4)).astype(np.float32), "l": np.array([0, 3, 1], np.float32)}
    check_parity(layer_text(TEXT, bottoms=("x", "l"), tops=("loss",)), {"x": (3, 4), "l": (3,)}, feed)


@given(num=st.integers(1, 4), dim=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_against_reference(num, dim, seed):
    rng = np.random.default_rng(seed)
    p = rng.random((num, dim))
    lab = rng.integers(0, dim, num).astype(np.float64)
    _, (y,), (dx, _) = forward_backward(TEXT, [p, lab], [2.0], propagate=[True, False])
    assert float(y) == pytest.approx(ref.mlogistic_ref(p, lab))
    assert_close(dx, ref.mlogistic_grad_ref(p, lab, 2.0), 1e-12, 0)
