import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import softmax_ref


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_forward_and_gradient(axis):
    x = (np.random.default_rng(0).standard_normal((2, 3, 4)) * 10).astype(np.float32)
    text = f'type: "Softmax" softmax_param {{ axis: {axis} }}'
    _, (y,) = forward(text, [x])
    assert_close(y, softmax_ref(x.astype(np.float64), axis), 1e-5, 1e-7)
    layer, b, t = make_layer(text, [(2, 3, 4)])
    check_gradient(layer, b, t)
