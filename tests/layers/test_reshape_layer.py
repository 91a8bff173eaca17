import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_reshape_rules():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, (y,) = forward('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 10 } }', [x])
    assert_close(y, x.reshape(2, 6, 10), 0, 0)
    _, (y,) = forward('type: "Reshape" reshape_param { axis: 2 num_axes: 1 shape { dim: 2 dim: 2 } }', [x])
    assert y.shape == (2, 3, 2, 2, 5)


def test_gradient():
    layer, b, t = make_layer('type: "Reshape" reshape_param { shape { dim: -1 } }', [(2, 3, 2)])
    check_gradient(layer, b, t)
