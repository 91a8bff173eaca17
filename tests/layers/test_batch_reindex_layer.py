"""BatchReindex: hand-computed gather and Caffe's backward accumulation (repeated indices add up,
unpicked items get 0), the index checks (compared as floats, as Caffe; 1.5 passes and truncates),
no gradient to the indices, gradient (float64), cpu-vs-cuda parity, hypothesis draws against
tests/reference/caffe_extra.py. OpenCV's Caffe importer has no BatchReindex layer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])


def test_hand_computed_gather_and_accumulation():
    dy = np.array([[1.0, 1.0], [10.0, 20.0], [100.0, 200.0], [0.5, 0.5]])
    _, (y,), (dx, _) = forward_backward('type: "BatchReindex"', [X, np.array([2.0, 0.0, 2.0, 1.5])], [dy],
                                        propagate=[True, False])
    np.testing.assert_array_equal(y, [[5, 6], [1, 2], [5, 6], [3, 4]])       # 1.5 truncates to 1
    np.testing.assert_array_equal(dx, [[10, 20], [0.5, 0.5], [101, 201]])    # item 2 picked twice


def test_index_checks_and_refusal():
    for bad, shown in (([0.0, 3.0], "3"), ([-0.5], "-0.5")):
        with pytest.raises(NetDefinitionError, match=rf"index {shown} \(item \d of bottom\[1\]\) is outside "
                                                     r"\[0, 3\)"):
            forward_backward('type: "BatchReindex"', [X, np.array(bad)])
    with pytest.raises(NetDefinitionError, match="cannot backpropagate to the index bottom"):
        forward_backward('type: "BatchReindex"', [X, np.array([0.0])], [np.ones((1, 2))])


def test_gradient():
    layer, b, t = make_layer('type: "BatchReindex"', [(3, 2, 2), (5,)],
                             bottom_values=[None, np.array([2.0, 0, 2, 1, 2])])
    check_gradient(layer, b, t, check_bottoms=[0])


def test_parity():
    """A learned Scale before the layer gives bottom 0 a gradient, a Power (y^2) with a loss
    weight after it varied top diffs (force_backward would ask for a gradient to the indices, which
    Caffe's BatchReindex refuses)."""
    layer = layer_text('type: "Scale" scale_param { filler { type: "gaussian" } }', tops=("xs",), name="pre")
    layer += layer_text('type: "BatchReindex"', bottoms=("xs", "p"))
    layer += layer_text('type: "Power" power_param { power: 2 } loss_weight: 1', bottoms=("y",),
                        tops=("z",), name="post")
    rng = np.random.default_rng(14)
    feed = {"x": rng.standard_normal((3, 2, 2)).astype(np.float32),
            "p": np.array([2, 0, 2, 1, 2], np.float32)}
    check_parity(layer, {"x": (3, 2, 2), "p": (5,)}, feed, force_backward=False)


@given(n=st.integers(1, 4), m=st.integers(0, 6), rest=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 2**31 - 1))
def test_against_reference(n, m, rest, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *rest))
    perm = rng.integers(0, n, m).astype(np.float64)
    dy = rng.standard_normal((m, *rest))
    _, (y,), (dx, _) = forward_backward('type: "BatchReindex"', [x, perm], [dy], propagate=[True, False])
    assert_close(y, ref.batch_reindex_ref(x, perm), 0, 0, name="y")
    assert_close(dx, ref.batch_reindex_grad_ref(x.shape, perm, dy), 1e-12, 1e-12, name="dx")
