"""Clip: hand-computed values at and around the bounds, gradient (float64, values off the kinks,
in place too), cpu-vs-cuda parity, hypothesis draws against tests/reference/caffe_extra.py, and
the required min/max. OpenCV's Caffe importer has no Clip layer (checked: "Can't create layer"),
so the oracle is the numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text, net_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

CLIP = 'type: "Clip" clip_param { min: -0.5 max: 0.7 }'


def test_hand_computed():
    hi = float(np.float32(0.7))          # the proto's float, as Caffe converts it to Dtype
    x = np.array([[-2.0, -0.5, 0.0, 0.3, hi, 5.0]])
    _, (y,), (dx,) = forward_backward(CLIP, [x], [np.ones_like(x)])
    np.testing.assert_allclose(y, [[-0.5, -0.5, 0.0, 0.3, hi, hi]])
    np.testing.assert_array_equal(dx, [[0, 1, 1, 1, 1, 0]])     # the bounds pass the gradient


def _off_kinks(shape, seed):
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, shape)
    for b in (-0.5, 0.7):
        near = np.abs(x - b) < 0.05
        x[near] += 0.1
    return x


@pytest.mark.parametrize("in_place", [False, True])
def test_gradient(in_place):
    layer, b, t = make_layer(CLIP, [(2, 3, 4)], bottom_values=[_off_kinks((2, 3, 4), 0)],
                             in_place=in_place)
    check_gradient(layer, b, t)


def test_min_max_required():
    text = net_text(layer_text('type: "Clip" clip_param { min: 0 }'), {"x": (2, 3)})
    with pytest.raises(ShapeError, match="'L' .Clip.: clip_param.min and clip_param.max are required"):
        Net(text)


def test_parity():
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    check_parity(layer_text(CLIP), {"x": x.shape}, {"x": x})
    check_parity(layer_text(CLIP, tops=("x",)), {"x": x.shape}, {"x": x})      # in place


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       lo=st.floats(-2, 1, width=32), width=st.floats(0, 2, width=32), seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, lo, width, seed):
    hi = float(np.float32(lo + width))
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    dy = np.random.default_rng(seed + 1).standard_normal(shape)
    text = f'type: "Clip" clip_param {{ min: {lo!r} max: {hi!r} }}'
    _, (y,), (dx,) = forward_backward(text, [x], [dy], dtype=np.float32)
    assert_close(y, ref.clip_ref(x, np.float32(lo), np.float32(hi)), 0, 0, name="y")
    assert_close(dx, ref.clip_grad_ref(x, dy, np.float32(lo), np.float32(hi)), 1e-6, 1e-7, name="dx")
