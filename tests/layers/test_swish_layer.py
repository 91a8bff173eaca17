"""Swish: y = x * sigmoid(beta x); hand-computed values, gradient (float64, in place too),
cpu-vs-cuda parity, hypothesis draws of beta; OpenCV's Caffe importer (its Swish has beta = 1
only: it ignores swish_param, checked here with beta 1) as the oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._opencv import opencv_forward_matches
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref


def test_hand_computed():
    x = np.array([-2.0, 0.0, 1.0])
    _, (y,), (dx,) = forward_backward('type: "Swish" swish_param { beta: 2 }', [x], [np.ones(3)])
    sig = [1 / (1 + math.exp(-2 * v)) for v in x]
    np.testing.assert_allclose(y, [v * s for v, s in zip(x, sig)], rtol=1e-12)
    # d/dx x*s(bx) = s + b x s (1 - s)
    np.testing.assert_allclose(dx, [s + 2 * v * s * (1 - s) for v, s in zip(x, sig)], rtol=1e-12)


@pytest.mark.parametrize("beta,in_place", [(1.0, False), (0.5, True), (-1.5, False)])
def test_gradient(beta, in_place):
    layer, b, t = make_layer(f'type: "Swish" swish_param {{ beta: {beta} }}', [(2, 3, 4)],
                             in_place=in_place)
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32) * 3
    check_parity(layer_text('type: "Swish" swish_param { beta: 1.5 }'), {"x": x.shape}, {"x": x})
    check_parity(layer_text('type: "Swish"', tops=("x",)), {"x": x.shape}, {"x": x})


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), beta=st.floats(-3, 3, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, beta, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    dy = rng.standard_normal(shape)
    _, (y,), (dx,) = forward_backward(f'type: "Swish" swish_param {{ beta: {beta!r} }}', [x], [dy],
                                      dtype=np.float32)
    assert_close(y, ref.swish_ref(x, beta), 1e-5, 1e-6, name="y")
    assert_close(dx, ref.swish_grad_ref(x, dy, beta), 1e-4, 1e-5, name="dx")


def test_opencv(tmp_path):
    text = ('input: "x" input_shape { dim: 2 dim: 3 dim: 4 dim: 4 }\n'
            'layer { name: "s" type: "Swish" bottom: "x" top: "y" }\n')
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4)).astype(np.float32) * 3
    opencv_forward_matches(text, {"x": x}, "y", tmp_path)
