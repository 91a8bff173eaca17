"""Filter: hand-computed selection of two bottoms by a selector (nonzero keeps, in order), the
first reshape keeping every item as Caffe's, an empty selection, the backward's zeros for dropped
items, the selector checks, no gradient to the selector, gradient (float64), cpu-vs-cuda parity,
hypothesis draws against tests/reference/caffe_extra.py. OpenCV's Caffe importer has no Filter."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError, ShapeError
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text, net_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

TWO = 'type: "Filter" top: "ya" top: "yb"'
A = np.arange(8, dtype=np.float64).reshape(4, 2)
B = np.arange(4, dtype=np.float64) * 10
SEL = np.array([0.0, 1.0, 0.0, 2.5]).reshape(4, 1, 1)


def test_hand_computed_two_bottoms():
    dya = np.array([[1.0, 2.0], [3.0, 4.0]])
    dyb = np.array([5.0, 6.0])
    _, (ya, yb), (da, db, _) = forward_backward(TWO, [A, B, SEL], [dya, dyb], propagate=[True, True, False])
    np.testing.assert_array_equal(ya, [[2, 3], [6, 7]])          # items 1 and 3
    np.testing.assert_array_equal(yb, [10, 30])
    np.testing.assert_array_equal(da, [[0, 0], [1, 2], [0, 0], [3, 4]])
    np.testing.assert_array_equal(db, [0, 5, 0, 6])


def test_first_reshape_keeps_every_item_then_the_selection():
    net = Net(net_text(layer_text('type: "Filter"', bottoms=("x", "s")), {"x": (4, 2), "s": (4,)},
                       force_backward=False))
    assert net.blobs["y"].shape == (4, 2)                        # Caffe's first Reshape
    out = net.forward(x=A, s=np.array([1, 0, 0, 1]))
    np.testing.assert_array_equal(out["y"], A[[0, 3]])
    out = net.forward(x=A, s=np.zeros(4))
    assert out["y"].shape == (0, 2)                              # nothing selected


def test_checks_and_refusal():
    with pytest.raises(ShapeError, match="selector blob dimensions must be singletons"):
        Net(net_text(layer_text('type: "Filter"', bottoms=("x", "s")), {"x": (4, 2), "s": (4, 2)}))
    with pytest.raises(ShapeError, match="same 0th dimension as the selector"):
        Net(net_text(layer_text('type: "Filter"', bottoms=("x", "s")), {"x": (3, 2), "s": (4,)}))
    with pytest.raises(NetDefinitionError, match="cannot backpropagate to the selector"):
        forward_backward('type: "Filter"', [A, SEL], [np.ones((2, 2))])


def test_gradient():
    layer, b, t = make_layer(TWO, [(4, 2), (4,), (4, 1, 1)], bottom_values=[None, None, SEL])
    check_gradient(layer, b, t, check_bottoms=[0, 1])


def test_parity():
    layer = layer_text('type: "Scale" scale_param { filler { type: "gaussian" } }', tops=("xs",), name="pre")
    layer += layer_text('type: "Filter"', bottoms=("xs", "s"))
    layer += layer_text('type: "Power" power_param { power: 2 } loss_weight: 1', bottoms=("y",),
                        tops=("z",), name="post")
    rng = np.random.default_rng(15)
    feed = {"x": rng.standard_normal((5, 2, 3)).astype(np.float32),
            "s": np.array([1, 0, 1, 1, 0], np.float32)}
    check_parity(layer, {"x": (5, 2, 3), "s": (5,)}, feed, force_backward=False)


@given(n=st.integers(1, 5), rest=st.lists(st.integers(1, 3), max_size=2), seed=st.integers(0, 2**31 - 1))
def test_against_reference(n, rest, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *rest))
    sel = rng.integers(0, 2, n).astype(np.float64)
    k = int((sel != 0).sum())
    dy = rng.standard_normal((k, *rest))
    _, (y,), (dx, _) = forward_backward('type: "Filter"', [x, sel], [dy], propagate=[True, False])
    assert_close(y, ref.filter_ref([x], sel)[0], 0, 0, name="y")
    assert_close(dx, ref.filter_grad_ref(x.shape, sel, dy), 0, 0, name="dx")
