"""Crop: Caffe's offset and axis rules pinned with hand-computed numbers (one offset for every
cropped axis, one per axis, none, a negative axis, axes before ``axis`` kept whole), the checks,
gradient (float64; bottom[1] gets none), cpu-vs-cuda parity, hypothesis draws against
tests/reference/caffe_extra.py, and OpenCV's Caffe importer as the oracle."""
from __future__ import annotations

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

X = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)


def _crop(params, ref_shape):
    _, (y,), _ = forward_backward(f'type: "Crop" crop_param {{ {params} }}', [X, np.zeros(ref_shape)])
    return y


def test_default_axis_2_no_offset():
    y = _crop("", (1, 1, 2, 3))
    np.testing.assert_array_equal(y, X[:, :, :2, :3])        # axes 0, 1 kept whole


def test_one_offset_for_every_cropped_axis():
    y = _crop("offset: 1", (9, 9, 2, 2))                      # bottom[1]'s axes 0, 1 are ignored
    assert y.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[6, 7], [11, 12]])   # rows 1-2, cols 1-2 of X[0, 0]


def test_one_offset_per_axis_from_axis_1():
    y = _crop("axis: 1 offset: 2 offset: 1 offset: 0", (2, 1, 3, 4))
    np.testing.assert_array_equal(y, X[:, 2:3, 1:4, 0:4])
    assert y[1, 0, 0, 0] == 1 * 60 + 2 * 20 + 1 * 5 + 0       # hand: X[1, 2, 1, 0]


def test_negative_axis():
    y = _crop("axis: -1 offset: 3", (2, 3, 4, 2))
    np.testing.assert_array_equal(y, X[..., 3:5])


def test_checks():
    def net(params, ref_shape):
        return net_text(layer_text(f'type: "Crop" crop_param {{ {params} }}', bottoms=("x", "r")),
                        {"x": X.shape, "r": ref_shape})

    with pytest.raises(ShapeError, match="axis 3 of size 5 with offset 3 cannot give size 3"):
        Net(net("offset: 3", (2, 3, 1, 3)))
    with pytest.raises(ShapeError, match="equal to the number of dimensions following axis .2., got 3"):
        Net(net("offset: 1 offset: 1 offset: 1", (2, 3, 2, 2)))
    with pytest.raises(ShapeError, match="needs at least the 4 axes"):
        Net(net("", (2, 3, 4)))


def test_backward_zero_outside_and_none_to_bottom1():
    dy = np.arange(8, dtype=np.float64).reshape(2, 1, 2, 2) + 1
    _, _, (dx, dref) = forward_backward('type: "Crop" crop_param { axis: 1 offset: 1 offset: 2 offset: 3 }',
                                        [X, np.zeros((2, 1, 2, 2))], [dy])
    expected = np.zeros(X.shape)
    expected[:, 1:2, 2:4, 3:5] = dy
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dref, 0)                    # untouched (Caffe gives bottom[1] none)


def test_gradient():
    layer, b, t = make_layer('type: "Crop" crop_param { offset: 1 }', [(2, 2, 4, 4), (2, 2, 2, 3)])
    check_gradient(layer, b, t, check_bottoms=[0])


def test_parity():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_parity(layer_text('type: "Crop" crop_param { axis: 1 offset: 1 offset: 0 offset: 2 }',
                            bottoms=("x", "r")), {"x": x.shape, "r": (2, 2, 3, 3)},
                 {"x": x, "r": np.zeros((2, 2, 3, 3), np.float32)})


@st.composite
def crop_case(draw):
    ndim = draw(st.integers(1, 4))
    xs = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    axis = draw(st.integers(-ndim, ndim - 1))
    a = axis % ndim
    rs = tuple(draw(st.integers(1, 4)) if i < a else draw(st.integers(1, xs[i])) for i in range(ndim))
    room = [xs[i] - rs[i] for i in range(a, ndim)]
    kind = draw(st.sampled_from(["none", "one", "each"]))
    if kind == "one":
        offset = [draw(st.integers(0, min(room)))]
    elif kind == "each":
        offset = [draw(st.integers(0, r)) for r in room]
    else:
        offset = []
    return xs, rs, axis, offset


@given(case=crop_case(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(case, seed):
    xs, rs, axis, offset = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs)
    params = f"axis: {axis} " + " ".join(f"offset: {o}" for o in offset)
    layer, (y,), _ = forward_backward(f'type: "Crop" crop_param {{ {params} }}', [x, np.zeros(rs)])
    y_ref = ref.crop_ref(x, rs, axis, offset)
    assert_close(y, y_ref, 0, 0, name="y")
    dy = rng.standard_normal(y.shape)
    _, _, (dx, _) = forward_backward(f'type: "Crop" crop_param {{ {params} }}', [x, np.zeros(rs)], [dy],
                                     propagate=[True, False])
    assert_close(dx, ref.crop_grad_ref(xs, dy, axis, offset), 0, 0, name="dx")


@pytest.mark.parametrize("params,ref_shape", [("axis: 2 offset: 1 offset: 2", (1, 1, 3, 4)),
                                              ("axis: 1 offset: 1", (1, 2, 2, 2))])
def test_opencv(params, ref_shape, tmp_path):
    text = ('input: "x" input_shape { dim: 2 dim: 3 dim: 5 dim: 6 }\n'
            f'input: "r" input_shape {{ {" ".join(f"dim: {d}" for d in ref_shape)} }}\n'
            'layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
            f'crop_param {{ {params} }} }}\n')
    rng = np.random.default_rng(11)
    feed = {"x": rng.standard_normal((2, 3, 5, 6)).astype(np.float32),
            "r": np.zeros(ref_shape, np.float32)}
    opencv_forward_matches(text, feed, "y", tmp_path)
