"""MVN: hand-computed values for per-channel and across_channels normalization (eps after the
root, as Caffe's source), Caffe's legacy 4-D top shape, gradient (float64; with and without
normalize_variance, across channels or not), cpu-vs-cuda parity, hypothesis draws against
tests/reference/caffe_extra.py, and OpenCV's Caffe importer as the oracle (every flag, default
eps: OpenCV places eps under the root, which only the default makes negligible)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._opencv import opencv_forward_matches
from tests.layers._parity import check_parity, layer_text, net_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([1.0, 3.0, 5.0, 9.0]).reshape(1, 2, 1, 2)     # channel 0: (1, 3); channel 1: (5, 9)


def test_hand_computed_per_channel():
    _, (y,), _ = forward_backward('type: "MVN"', [X])
    # channel 0: mean 2, std 1; channel 1: mean 7, std 2
    np.testing.assert_allclose(y.reshape(-1), [-1, 1, -1, 1], rtol=1e-8)
    _, (y,), _ = forward_backward('type: "MVN" mvn_param { normalize_variance: false }', [X])
    np.testing.assert_allclose(y.reshape(-1), [-1, 1, -2, 2])


def test_hand_computed_across_channels_and_eps():
    _, (y,), _ = forward_backward('type: "MVN" mvn_param { across_channels: true eps: 0.5 }', [X])
    # mean 4.5; var = (12.25 + 2.25 + 0.25 + 20.25) / 4 = 8.75; eps is added after the root
    np.testing.assert_allclose(y.reshape(-1), (X.reshape(-1) - 4.5) / (math.sqrt(8.75) + 0.5),
                               rtol=1e-8)


def test_top_takes_the_legacy_4d_shape():
    net = Net(net_text(layer_text('type: "MVN"'), {"x": (3, 4)}))
    assert net.blobs["y"].shape == (3, 4, 1, 1)             # Caffe's Reshape(num, channels, h, w)
    with pytest.raises(ShapeError, match="more than 4 axes"):
        Net(net_text(layer_text('type: "MVN"'), {"x": (1, 2, 2, 2, 2)}))


@pytest.mark.parametrize("params", ["", "normalize_variance: false", "across_channels: true",
                                    "across_channels: true normalize_variance: false"])
def test_gradient(params):
    layer, b, t = make_layer(f'type: "MVN" mvn_param {{ {params} }}', [(2, 3, 2, 3)])
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(8).standard_normal((2, 3, 3, 2)).astype(np.float32) * 2 + 1
    check_parity(layer_text('type: "MVN"'), {"x": x.shape}, {"x": x})
    check_parity(layer_text('type: "MVN" mvn_param { across_channels: true normalize_variance: false }'),
                 {"x": x.shape}, {"x": x})


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), normalize=st.booleans(),
       across=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, normalize, across, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2 + 1
    legacy = tuple(shape) + (1,) * (4 - len(shape))
    dy = rng.standard_normal(legacy)
    text = (f'type: "MVN" mvn_param {{ normalize_variance: {str(normalize).lower()} '
            f'across_channels: {str(across).lower()} }}')
    _, (y,), (dx,) = forward_backward(text, [x], [dy])
    assert_close(y, ref.mvn_ref(x, normalize, across), 1e-7, 1e-7, name="y")
    assert_close(dx.reshape(legacy), ref.mvn_grad_ref(x, dy, normalize, across), 1e-6, 1e-6, name="dx")


@pytest.mark.parametrize("params", ["", "normalize_variance: false", "across_channels: true",
                                    "across_channels: true normalize_variance: false"])
def test_opencv(params, tmp_path):
    """At the default eps (1e-9) only: OpenCV 4.14 divides by sqrt(var + eps), Caffe by
    sqrt(var) + eps (MVNLayer: powx 0.5, then add_scalar eps); the eps placement is pinned by
    test_hand_computed_across_channels_and_eps from Caffe's source instead."""
    text = ('input: "x" input_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'
            f'layer {{ name: "m" type: "MVN" bottom: "x" top: "y" mvn_param {{ {params} }} }}\n')
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 5)).astype(np.float32) * 3 + 2
    opencv_forward_matches(text, {"x": x}, "y", tmp_path, rtol=1e-5)
