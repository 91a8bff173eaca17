import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer

S = (2, 3, 4)


def test_learned_scale_and_bias_forward():
    x = np.random.default_rng(0).standard_normal(S).astype(np.float32)
    layer, (y,) = forward('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } '
                          'bias_filler { type: "gaussian" } }', [x])
    s, b = layer.blobs[0].data, layer.blobs[1].data
    assert_close(y, x * s[None, :, None] + b[None, :, None], 1e-6, 1e-6)
    layer, (y,) = forward('type: "Scale"', [x])
    assert_close(y, x, 0, 0)   # default filler: constant 1


def test_scale_from_bottom_axis0_and_num_axes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(S).astype(np.float32)
    s = rng.standard_normal((2, 3)).astype(np.float32)
    _, (y,) = forward('type: "Scale" scale_param { axis: 0 }', [x, s])
    assert_close(y, x * s[:, :, None], 1e-6, 0)
    layer, (y,) = forward('type: "Scale" scale_param { num_axes: 2 filler { type: "gaussian" } }', [x])
    assert layer.blobs[0].shape == (3, 4)
    assert_close(y, x * layer.blobs[0].data[None], 1e-6, 0)


@pytest.mark.parametrize("text,shapes,in_place", [
    ('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } bias_filler { type: "gaussian" } }',  # noqa: E501
     [S], False),
    ('type: "Scale" scale_param { filler { type: "gaussian" } }', [S], True),
    ('type: "Scale" scale_param { axis: 0 }', [S, (2, 3)], False),
])
def test_gradient(text, shapes, in_place):
    layer, b, t = make_layer(text, shapes, in_place=in_place)
    check_gradient(layer, b, t)
