import numpy as np

from tests.helpers import assert_close
from tests.layers._common import forward


def test_no_axis_top_k_and_max_val():
    x = np.array([[[1.0, 5.0, 3.0, 5.0]], [[0.0, -1.0, 2.0, 1.0]]], np.float32)   # (2, 1, 4)
    _, (y,) = forward('type: "ArgMax" argmax_param { top_k: 2 }', [x])
    assert y.shape == (2, 1, 2)
    assert_close(y[:, 0], np.array([[3, 1], [2, 3]]), 0, 0)   # tie 5 vs 5: the higher index first
    _, (y,) = forward('type: "ArgMax" argmax_param { top_k: 1 out_max_val: true }', [x])
    assert y.shape == (2, 2, 1)
    assert_close(y[:, :, 0], np.array([[3, 5], [2, 2]]), 0, 0)


def test_axis():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    _, (y,) = forward('type: "ArgMax" argmax_param { axis: 1 }', [x])
    assert y.shape == (2, 1, 3)
    assert_close(y[:, 0], x.argmax(1).astype(np.float32), 0, 0)
    _, (v,) = forward('type: "ArgMax" argmax_param { axis: 1 out_max_val: true top_k: 2 }', [x])
    assert_close(v, -np.sort(-x, axis=1)[:, :2], 0, 0)
