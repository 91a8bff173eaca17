import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer

TEXT = 'type: "BNLL"'


def test_forward():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, (y,) = forward(TEXT, [x])
    x = x.astype(np.float64)
    assert_close(y, np.log1p(np.exp(x)), 1e-5, 1e-6)


def test_gradient():
    layer, b, t = make_layer(TEXT, [(2, 3, 2, 3)])
    check_gradient(layer, b, t)


def test_gradient_in_place():
    layer, b, t = make_layer(TEXT, [(2, 3, 2)], in_place=True)
    check_gradient(layer, b, t)
