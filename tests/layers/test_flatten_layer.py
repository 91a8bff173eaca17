import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_flatten_axes():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, (y,) = forward('type: "Flatten"', [x])
    assert_close(y, x.reshape(2, 60), 0, 0)
    _, (y,) = forward('type: "Flatten" flatten_param { axis: 2 }', [x])
    assert y.shape == (2, 3, 20)
    _, (y,) = forward('type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', [x])
    assert y.shape == (2, 12, 5)


def test_gradient():
    layer, b, t = make_layer('type: "Flatten"', [(2, 3, 2)])
    check_gradient(layer, b, t)
