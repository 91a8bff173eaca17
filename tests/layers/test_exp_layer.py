import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer

TEXT = 'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }'


def test_forward():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, (y,) = forward(TEXT, [x])
    x = x.astype(np.float64)
    assert_close(y, 2 ** (1 + 0.5 * x), 1e-5, 1e-6)


def test_gradient():
    layer, b, t = make_layer(TEXT, [(2, 3, 2, 3)])
    check_gradient(layer, b, t)


def test_gradient_in_place():
    layer, b, t = make_layer(TEXT, [(2, 3, 2)], in_place=True)
    check_gradient(layer, b, t)


def test_base_e():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    _, (y,) = forward('type: "Exp" exp_param { scale: 2 }', [x])
    assert_close(y, np.exp(2 * x.astype(np.float64)), 1e-5, 1e-6)
