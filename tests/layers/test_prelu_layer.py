"""PReLU: the default filler (constant 0.25, Caffe's), the 0-D shared slope blob, hand-computed
values with a slope per channel, gradient (float64: bottom and slope, shared or not, in place),
cpu-vs-cuda parity, hypothesis draws against tests/reference/caffe_extra.py, and OpenCV's Caffe
importer as the oracle (random slopes saved in a .caffemodel, shared and per channel)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._opencv import opencv_forward_matches
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref


def test_default_filler_and_shapes():
    layer, _, _ = make_layer('type: "PReLU"', [(2, 3, 2, 2)])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    layer, _, _ = make_layer('type: "PReLU" prelu_param { channel_shared: true }', [(2, 3)])
    assert layer.blobs[0].shape == ()                 # Caffe: vector<int>(0), one value
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)


def test_hand_computed_per_channel():
    x = np.array([[[-2.0, 1.0]], [[-4.0, 0.0]]]).reshape(1, 2, 2)     # channels 0, 1
    layer, b, t = make_layer('type: "PReLU"', [x.shape], bottom_values=[x])
    layer.blobs[0].data = [0.5, -1.0]
    layer.forward(b, t)
    np.testing.assert_allclose(t[0].data, [[[-1.0, 1.0], [4.0, 0.0]]])
    t[0].diff = np.ones(x.shape)
    layer.blobs[0].diff = np.zeros(2)
    layer.backward(t, [True], b)
    np.testing.assert_allclose(b[0].diff, [[[0.5, 1.0], [-1.0, -1.0]]])    # x == 0: negative side
    np.testing.assert_allclose(layer.blobs[0].diff, [-2.0, -4.0])           # sum dy * x * (x <= 0)


@pytest.mark.parametrize("text,in_place", [
    ('type: "PReLU" prelu_param { filler { type: "gaussian" std: 0.5 } }', False),
    ('type: "PReLU" prelu_param { channel_shared: true filler { type: "uniform" min: -1 } }', False),
    ('type: "PReLU" prelu_param { filler { type: "gaussian" std: 0.5 } }', True),
])
def test_gradient(text, in_place):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 3))
    x[np.abs(x) < 0.02] = 0.5                        # off the kink at 0
    layer, b, t = make_layer(text, [x.shape], bottom_values=[x], in_place=in_place)
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(6).standard_normal((2, 3, 2, 2)).astype(np.float32)
    check_parity(layer_text('type: "PReLU" prelu_param { filler { type: "gaussian" std: 0.5 } }'),
                 {"x": x.shape}, {"x": x})
    check_parity(layer_text('type: "PReLU" prelu_param { channel_shared: true }', tops=("x",)),
                 {"x": x.shape}, {"x": x})
    check_parity(layer_text('type: "PReLU"'), {"x": (4, 3)}, {"x": x.reshape(-1)[:12].reshape(4, 3)})


@given(n=st.integers(1, 3), c=st.integers(1, 3), rest=st.lists(st.integers(1, 3), max_size=2),
       shared=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(n, c, rest, shared, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c, *rest)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape)
    flag = str(shared).lower()
    text = f'type: "PReLU" prelu_param {{ channel_shared: {flag} filler {{ type: "gaussian" }} }}'
    layer, (y,), (dx,) = forward_backward(text, [x], [dy], dtype=np.float32)
    slope = layer.blobs[0].data.copy()
    assert_close(y, ref.prelu_ref(x, slope, shared), 1e-6, 1e-7, name="y")
    dx_ref, ds_ref = ref.prelu_grad_ref(x, slope, dy.astype(np.float32), shared)
    assert_close(dx, dx_ref, 1e-6, 1e-7, name="dx")
    assert_close(layer.blobs[0].diff, ds_ref, 1e-5, 1e-6, name="dslope")


@pytest.mark.parametrize("shared", [False, True])
def test_opencv(shared, tmp_path):
    text = ('input: "x" input_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'
            'layer { name: "p" type: "PReLU" bottom: "x" top: "y" '
            f'prelu_param {{ channel_shared: {str(shared).lower()} }} }}\n')
    rng = np.random.default_rng(7)

    def slopes(net):
        blob = net.params["p"][0]
        blob.data = rng.uniform(-1, 1, blob.shape)

    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    opencv_forward_matches(text, {"x": x}, "y", tmp_path, slopes)
