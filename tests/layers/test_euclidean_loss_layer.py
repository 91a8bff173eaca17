import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_forward_and_gradient():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, (loss,) = forward('type: "EuclideanLoss"', [a, b], dtype=np.float64)
    assert_close(loss, np.array(((a - b) ** 2).sum() / 8), 1e-12, 0)
    layer, bl, t = make_layer('type: "EuclideanLoss"', [(4, 3), (4, 3)])
    check_gradient(layer, bl, t)
