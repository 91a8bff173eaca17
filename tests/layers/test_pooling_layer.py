import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import pool_ref

CASES = [("MAX", "kernel_size: 3 stride: 2", (3, 3), (2, 2), (0, 0), (2, 2, 7, 6)),
         ("MAX", "kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), (1, 2, 6, 7)),
         ("AVE", "kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), (1, 2, 6, 7)),
         ("AVE", "kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2", (2, 3), (1, 2), (0, 0), (2, 1, 5, 6)),
         ("MAX", "kernel_size: 2 stride: 2", (2, 2), (2, 2), (0, 0), (1, 3, 5, 5))]


@pytest.mark.parametrize("mode,params,k,s,p,shape", CASES)
def test_forward(mode, params, k, s, p, shape):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    _, (y,) = forward(f'type: "Pooling" pooling_param {{ pool: {mode} {params} }}', [x])
    assert_close(y, pool_ref(x.astype(np.float64), k, s, p, mode), 1e-5, 1e-6)


def test_floor_round_mode_and_global():
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 5)).astype(np.float32)
    _, (y,) = forward('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR }', [x])  # noqa: E501
    assert y.shape == (2, 3, 2, 2)
    assert_close(y, pool_ref(x.astype(np.float64), (2, 2), (2, 2), (0, 0), "MAX", ceil=False), 0, 0)
    _, (g,) = forward('type: "Pooling" pooling_param { pool: AVE global_pooling: true }', [x])
    assert_close(g[:, :, 0, 0], x.mean(axis=(2, 3)), 1e-5, 1e-6)


def test_max_mask_top():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    _, (y, m) = forward('type: "Pooling" top: "y" top: "m" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [x])  # noqa: E501
    assert_close(m[0, 0], np.array([[5, 7], [13, 15]]), 0, 0)


def test_max_ties_route_gradient_to_first():
    x = np.ones((1, 1, 2, 2))
    layer, b, t = make_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 }', [x.shape],
                             bottom_values=[x])
    layer.forward(b, t)
    t[0].diff = np.ones((1, 1, 1, 1))
    layer.backward(t, [True], b)
    assert_close(b[0].diff[0, 0], np.array([[1, 0], [0, 0]]), 0, 0)


@pytest.mark.parametrize("mode,params,k,s,p,shape", CASES)
def test_gradient(mode, params, k, s, p, shape):
    # distinct values so max has no near-ties (Caffe's checker uses the same trick)
    n = int(np.prod(shape))
    vals = np.random.default_rng(5).permutation(n).reshape(shape) * 0.1
    layer, b, t = make_layer(f'type: "Pooling" pooling_param {{ pool: {mode} {params} }}', [shape],
                             bottom_values=[vals])
    check_gradient(layer, b, t, step=1e-3)
