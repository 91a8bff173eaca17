import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer

S = (2, 3, 2, 2)


def _xs(n=3):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(S).astype(np.float32) for _ in range(n)]


def test_sum_prod_max_forward():
    xs = _xs()
    _, (y,) = forward('type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: -2 coeff: 0.5 }', xs)
    assert_close(y, xs[0] - 2 * xs[1] + 0.5 * xs[2], 1e-6, 1e-6)
    _, (y,) = forward('type: "Eltwise" eltwise_param { operation: PROD }', xs)
    assert_close(y, xs[0] * xs[1] * xs[2], 1e-6, 1e-6)
    _, (y,) = forward('type: "Eltwise" eltwise_param { operation: MAX }', xs)
    assert_close(y, np.maximum(np.maximum(xs[0], xs[1]), xs[2]), 0, 0)


def test_max_tie_rule():
    a = np.ones((1, 2), np.float32)
    layer, b, t = make_layer('type: "Eltwise" eltwise_param { operation: MAX }', [(1, 2)] * 3,
                             bottom_values=[a, a, a])
    layer.forward(b, t)
    t[0].diff = np.ones((1, 2))
    layer.backward(t, [True, True, True], b)
    # Caffe: a tie between bottoms 0 and 1 picks 1; later bottoms need strictly greater
    assert_close(b[0].diff, np.zeros((1, 2)), 0, 0)
    assert_close(b[1].diff, np.ones((1, 2)), 0, 0)
    assert_close(b[2].diff, np.zeros((1, 2)), 0, 0)


@pytest.mark.parametrize("op", ["SUM coeff: 2 coeff: -1 coeff: 3", "PROD", "PROD stable_prod_grad: false", "MAX"])  # noqa: E501
def test_gradient(op):
    layer, b, t = make_layer(f'type: "Eltwise" eltwise_param {{ operation: {op} }}', [(2, 3)] * 3)
    check_gradient(layer, b, t)
