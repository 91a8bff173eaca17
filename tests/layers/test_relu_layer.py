import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_forward_and_gradient(slope):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    text = f'type: "ReLU" relu_param {{ negative_slope: {slope} }}'
    _, (y,) = forward(text, [x])
    assert_close(y, np.where(x > 0, x, slope * x), 1e-6, 0)
    layer, b, t = make_layer(text, [(2, 3, 4, 5)])
    check_gradient(layer, b, t, kink=0.0, kink_range=1e-2)


def test_in_place():
    layer, b, t = make_layer('type: "ReLU"', [(2, 3, 4)], in_place=True)
    assert t[0] is b[0]
    check_gradient(layer, b, t, kink=0.0, kink_range=1e-2)
