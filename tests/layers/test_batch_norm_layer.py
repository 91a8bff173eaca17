import numpy as np

from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer


def test_train_statistics_and_moving_average():
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)) * 3 + 1
    layer, b, t = make_layer('type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 eps: 1e-5 }',
                             [x.shape], bottom_values=[x], phase="TRAIN")
    layer.forward(b, t)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    ref = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    assert_close(t[0].data, ref, 1e-6, 1e-7)
    assert_close(layer.blobs[2].data, np.array([1.0]), 0, 0)
    assert_close(layer.blobs[0].data, mean, 1e-7, 1e-9)
    assert_close(layer.blobs[1].data, var * 16 / 15, 1e-7, 1e-9)
    layer.forward(b, t)
    assert_close(layer.blobs[2].data, np.array([1.9]), 1e-7, 0)
    assert_close(layer.blobs[0].data, mean * 1.9, 1e-7, 1e-9)


def test_global_stats_in_test_phase():
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2))
    layer, b, t = make_layer('type: "BatchNorm"', [x.shape], bottom_values=[x], phase="TEST")
    layer.blobs[0].data = np.array([2.0, 4.0, 6.0])
    layer.blobs[1].data = np.array([8.0, 2.0, 4.0])
    layer.blobs[2].data = np.array([2.0])
    layer.forward(b, t)
    mean, var = np.array([1, 2, 3.0]), np.array([4, 1, 2.0])
    ref = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    assert_close(t[0].data, ref, 1e-7, 1e-9)
    check_gradient(layer, b, t, check_params=False)


def test_gradient_train_and_in_place():
    layer, b, t = make_layer('type: "BatchNorm"', [(3, 2, 2, 2)], phase="TRAIN")
    check_gradient(layer, b, t, check_params=False)
    layer, b, t = make_layer('type: "BatchNorm"', [(3, 2, 2)], phase="TRAIN", in_place=True)
    check_gradient(layer, b, t, check_params=False)
