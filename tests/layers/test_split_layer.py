import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_tops_share_bottom_and_backward_sums():
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    _, ys = forward('type: "Split" top: "a" top: "b" top: "c"', [x])
    for y in ys:
        assert_close(y, x, 0, 0)
    layer, b, t = make_layer('type: "Split" top: "a" top: "b" top: "c"', [(2, 3)])
    assert all(tt.shares_data_with(b[0]) for tt in t)
    check_gradient(layer, b, t)
