import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_slice_points_and_equal_parts():
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    _, ys = forward('type: "Slice" top: "a" top: "b" top: "c" slice_param { axis: 1 slice_point: 1 slice_point: 4 }', [x])  # noqa: E501
    for y, r in zip(ys, np.split(x, [1, 4], axis=1)):
        assert_close(y, r, 0, 0)
    _, ys = forward('type: "Slice" top: "a" top: "b" slice_param { axis: 2 slice_point: 2 }', [x])
    assert ys[0].shape == (2, 6, 2) and ys[1].shape == (2, 6, 1)
    _, ys = forward('type: "Slice" top: "a" top: "b" top: "c" slice_param { slice_dim: 1 }', [x])
    assert [y.shape[1] for y in ys] == [2, 2, 2]


def test_gradient():
    layer, b, t = make_layer('type: "Slice" top: "a" top: "b" slice_param { axis: 0 slice_point: 1 }', [(3, 2, 2)])  # noqa: E501
    check_gradient(layer, b, t)
