"""Threshold: y = (x > t); hand-computed values (x == t gives 0), no backward (Caffe's is
NOT_IMPLEMENTED: asking for a gradient is an error naming the layer), cpu-vs-cuda parity,
hypothesis draws. OpenCV's Caffe importer has no Threshold layer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref


def test_hand_computed():
    x = np.array([-1.0, 0.0, 0.25, 0.2500001, 3.0])
    _, (y,), _ = forward_backward('type: "Threshold" threshold_param { threshold: 0.25 }', [x])
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1])
    _, (y,), _ = forward_backward('type: "Threshold"', [x])        # default threshold 0
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 1])


def test_no_backward():
    with pytest.raises(NetDefinitionError, match="'layer' .Threshold.: has no backward pass"):
        forward_backward('type: "Threshold"', [np.ones(3)], [np.ones(3)])
    forward_backward('type: "Threshold"', [np.ones(3)], [np.ones(3)], propagate=[False])


def test_parity():
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    check_parity(layer_text('type: "Threshold" threshold_param { threshold: 0.1 }'), {"x": x.shape},
                 {"x": x}, phase="TEST", force_backward=False)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), t=st.floats(-1, 1, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, t, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    _, (y,), _ = forward_backward(f'type: "Threshold" threshold_param {{ threshold: {t!r} }}', [x],
                                  dtype=np.float32)
    np.testing.assert_array_equal(y, ref.threshold_ref(x, np.float32(t)))
