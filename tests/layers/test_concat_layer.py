import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


@pytest.mark.parametrize("axis,shapes", [(1, [(2, 1, 3), (2, 3, 3)]), (0, [(1, 2, 3), (2, 2, 3), (1, 2, 3)]),
                                         (-1, [(2, 2, 1), (2, 2, 2)])])
def test_forward_and_gradient(axis, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    text = f'type: "Concat" concat_param {{ axis: {axis} }}'
    _, (y,) = forward(text, xs)
    assert_close(y, np.concatenate(xs, axis=axis), 0, 0)
    layer, b, t = make_layer(text, shapes)
    check_gradient(layer, b, t)


def test_legacy_concat_dim():
    xs = [np.ones((1, 2, 2)), np.zeros((2, 2, 2))]
    _, (y,) = forward('type: "Concat" concat_param { concat_dim: 0 }', xs)
    assert y.shape == (3, 2, 2)
