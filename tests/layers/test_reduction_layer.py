"""Reduction: Caffe's axis folding (every axis from ``axis`` on is reduced, the top keeps the axes
before it; axis 0 gives a 0-D top), each operation and ``coeff`` (MEAN folds 1/dim into it) with
hand-computed numbers, the backward rules (ASUM's sign(0) = 0), gradient (float64), cpu-vs-cuda
parity, hypothesis draws against tests/reference/caffe_extra.py. OpenCV's Caffe importer has no
Reduction layer (checked: "Can't create layer")."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.0]])


def _red(params, x=X, dy=None):
    return forward_backward(f'type: "Reduction" reduction_param {{ {params} }}', [x],
                            None if dy is None else [dy])


@pytest.mark.parametrize("params,expected", [
    ("axis: 1", [2.0, 1.0]),
    ("axis: 1 operation: ASUM", [6.0, 9.0]),
    ("axis: 1 operation: SUMSQ", [14.0, 41.0]),
    ("axis: 1 operation: MEAN coeff: 3", [2.0, 1.0]),            # 3 * mean = sum here
    ("axis: -1 operation: SUM coeff: -0.5", [-1.0, -0.5]),
])
def test_hand_computed(params, expected):
    _, (y,), _ = _red(params)
    assert y.shape == (2,)
    np.testing.assert_allclose(y, expected)


def test_axis_0_reduces_everything_to_a_0d_top():
    _, (y,), _ = _red("coeff: 0.5")                               # default axis 0, SUM
    assert y.shape == () and float(y) == pytest.approx(1.5)      # 0.5 * (2 + 1)


def test_axis_folding_keeps_leading_axes():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    _, (y,), _ = _red("axis: 1", x)
    assert y.shape == (2,)
    np.testing.assert_allclose(y, [sum(range(12)), sum(range(12, 24))])
    _, (y,), _ = _red("axis: 2 operation: MEAN", x)
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y, x.mean(axis=2))


@pytest.mark.parametrize("params,expected", [
    ("axis: 1 coeff: 2", [[2, 2, 2], [-2, -2, -2]]),
    ("axis: 1 operation: MEAN", [[1 / 3] * 3, [-1 / 3] * 3]),
    ("axis: 1 operation: ASUM", [[1, -1, 1], [1, -1, 0]]),         # sign(x) * dy; sign(0) = 0
    ("axis: 1 operation: SUMSQ", [[2, -4, 6], [8, -10, 0]]),       # 2 * x * dy
])
def test_backward_hand_computed(params, expected):
    _, _, (dx,) = _red(params, dy=[1.0, -1.0])
    np.testing.assert_allclose(dx, expected)


@pytest.mark.parametrize("params", ["axis: 1", "axis: 1 operation: ASUM coeff: 2",
                                    "operation: SUMSQ coeff: -1", "axis: 2 operation: MEAN"])
def test_gradient(params):
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    x[np.abs(x) < 0.02] = 0.3                                    # ASUM: off the kink at 0
    layer, b, t = make_layer(f'type: "Reduction" reduction_param {{ {params} }}', [x.shape],
                             bottom_values=[x])
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(12).standard_normal((2, 3, 4)).astype(np.float32)
    for params in ("axis: 1 operation: ASUM coeff: 2", "operation: SUMSQ", "axis: -1 operation: MEAN"):
        check_parity(layer_text(f'type: "Reduction" reduction_param {{ {params} }}'), {"x": x.shape},
                     {"x": x})


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(),
       op=st.sampled_from(["SUM", "ASUM", "SUMSQ", "MEAN"]), coeff=st.sampled_from([1.0, 2.5, -1.0]),
       seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, data, op, coeff, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    top_shape = tuple(shape[:axis % len(shape)])
    dy = rng.standard_normal(top_shape)
    _, (y,), (dx,) = _red(f"axis: {axis} operation: {op} coeff: {coeff}", x, dy)
    assert_close(y, ref.reduction_ref(x, axis, op, coeff), 1e-6, 1e-6, name="y")
    assert_close(dx, ref.reduction_grad_ref(x, dy, axis, op, coeff), 1e-6, 1e-6, name="dx")
