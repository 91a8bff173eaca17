import numpy as np

from kernels.dropout import dropout_mask_host
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_train_mask_scale_and_rate():
    x = np.random.default_rng(0).standard_normal((4, 50, 10, 10)).astype(np.float32)
    layer, (y,) = forward('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [x], phase="TRAIN")
    keep = dropout_mask_host(x.size, 0.3, layer.seed, stream=0).reshape(x.shape)
    assert_close(y, x * keep * np.float32(1 / 0.7), 1e-6, 0)
    assert abs(keep.mean() - 0.7) < 0.01


def test_fresh_mask_every_forward_and_reproducible_seed():
    x = np.ones((1000,), np.float32)
    layer, b, t = make_layer('type: "Dropout"', [x.shape], bottom_values=[x], dtype=np.float32, seed=3)
    layer.forward(b, t)
    m1 = t[0].data.copy()
    layer.forward(b, t)
    assert not np.array_equal(m1, t[0].data)
    layer2, b2, t2 = make_layer('type: "Dropout"', [x.shape], bottom_values=[x], dtype=np.float32, seed=3)
    layer2.forward(b2, t2)
    np.testing.assert_array_equal(m1, t2[0].data)


def test_test_phase_is_identity():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    _, (y,) = forward('type: "Dropout"', [x], phase="TEST")
    assert_close(y, x, 0, 0)
    layer, b, t = make_layer('type: "Dropout"', [(3, 4)], phase="TEST")
    check_gradient(layer, b, t)


def test_gradient_with_seed_reset():
    layer, b, t = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.4 }', [(2, 3, 4)])
    check_gradient(layer, b, t)
    text = 'type: "Dropout" dropout_param { dropout_ratio: 0.4 }'
    layer, b, t = make_layer(text, [(2, 3, 4)], in_place=True)
    check_gradient(layer, b, t)
