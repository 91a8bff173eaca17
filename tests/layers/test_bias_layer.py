import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_forward_and_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((3,)).astype(np.float32)
    _, (y,) = forward('type: "Bias"', [x, b])
    assert_close(y, x + b[None, :, None], 1e-6, 0)
    layer, (y,) = forward('type: "Bias" bias_param { filler { type: "gaussian" } }', [x])
    assert_close(y, x + layer.blobs[0].data[None, :, None], 1e-6, 0)
    layer, bl, t = make_layer('type: "Bias"', [(2, 3, 4), (3,)])
    check_gradient(layer, bl, t)
    layer, bl, t = make_layer('type: "Bias" bias_param { filler { type: "gaussian" } }', [(2, 3, 4)])
    check_gradient(layer, bl, t)
