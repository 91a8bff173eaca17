import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer

TEXT = 'type: "Power" power_param { power: 1.5 scale: 0.5 shift: 3 }'


def test_forward():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, (y,) = forward(TEXT, [x])
    x = x.astype(np.float64)
    assert_close(y, (3 + 0.5 * x) ** 1.5, 1e-5, 1e-6)


def test_gradient():
    layer, b, t = make_layer(TEXT, [(2, 3, 2, 3)])
    check_gradient(layer, b, t)


def test_gradient_in_place():
    layer, b, t = make_layer(TEXT, [(2, 3, 2)], in_place=True)
    check_gradient(layer, b, t)


def test_special_cases():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    _, (y,) = forward('type: "Power" power_param { power: 0 scale: 2 shift: 1 }', [x])
    assert_close(y, np.ones_like(x), 0, 0)
    _, (y,) = forward('type: "Power" power_param { power: 2 scale: 0 shift: 3 }', [x])
    assert_close(y, np.full_like(x, 9.0), 0, 0)
    layer, b, t = make_layer('type: "Power" power_param { power: 2 scale: -1 shift: 0.5 }', [(3, 4)])
    check_gradient(layer, b, t)
    layer, b, t = make_layer('type: "Power" power_param { power: 1 scale: 2 shift: 1 }', [(3, 4)])
    check_gradient(layer, b, t)
