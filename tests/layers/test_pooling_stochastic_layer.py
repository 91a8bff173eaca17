"""STOCHASTIC pooling (Caffe's PoolingLayer, pool: STOCHASTIC): Caffe's sampling rule pinned with
hand-computed picks for known uniforms, the TEST-phase weighted average by hand, gradient routing,
the stream advancing per forward (and restored by set_rng_state), pick frequencies proportional to
the values, the gradient checker, and the no-padding rule."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.dropout import random_uint32_host
from kernels.pool import uniform_host
from netdef.errors import CaffeError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.reference.stochastic_pool import sto_test_ref, sto_train_ref

TEXT = 'type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }'
# the 4 windows of a 4x4 plane with 2x2/2 windows, row-major values:
#   w0 [1 2 3 4]  w1 [4 0 0 1]  w2 [0 0 0 6]  w3 [2 1 1 0]
X = np.array([[1, 2, 4, 0],
              [3, 4, 0, 1],
              [0, 0, 2, 1],
              [0, 6, 1, 0]], np.float64).reshape(1, 1, 4, 4)


def _layer(phase="TRAIN", values=X, dtype=np.float64):
    layer, b, t = make_layer(TEXT, [values.shape], phase=phase, bottom_values=[values], dtype=dtype)
    layer.seed, layer.counter = 1234, 0
    return layer, b, t


def test_uniforms_are_curands_formula_of_the_philox_words():
    r = random_uint32_host(4, 1234, 0)
    assert r.tolist() == [546353992, 3665621163, 1140953199, 3419031310]
    u = uniform_host(4, 1234, 0)
    assert_close(u, (r.astype(np.float64) + 0.5) / 2**32, 1e-7, 0, name="u")


def test_train_picks_by_caffes_rule_hand_computed():
    """u = (0.1272, 0.8535, 0.2656, 0.7961) (seed 1234, stream 0); thres = u * window sum:
    w0: 1.272 -> running sums 1, 3 -> picks the 2 at (0,1); w1: 4.267 -> 4, 4, 4, 5 -> the 1 at
    (1,3); w2: 1.594 -> 0, 0, 0, 6 -> the 6 at (3,1); w3: 3.184 -> 2, 3, 4 -> the 1 at (3,2)."""
    layer, b, t = _layer()
    layer.forward(b, t)
    assert_close(t[0].data[0, 0], np.array([[2, 1], [6, 1]]), 0, 0, name="y")
    assert layer.mask.reshape(-1).tolist() == [0 * 4 + 1, 1 * 4 + 3, 3 * 4 + 1, 3 * 4 + 2]
    t[0].diff = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    layer.backward(t, [True], b)
    want = np.zeros(16)
    want[[1, 7, 13, 14]] = [1, 2, 3, 4]
    assert_close(b[0].diff.reshape(-1), want, 0, 0, name="dx")


def test_the_stream_advances_every_forward_and_resumes():
    """The second forward draws stream 1: u0 = 0.8167, thres = 8.167 on w0 -> 1, 3, 6, 10 -> the
    4 at (1,1). set_rng_state(1) replays it."""
    layer, b, t = _layer()
    layer.forward(b, t)
    layer.forward(b, t)
    assert t[0].data[0, 0, 0, 0] == 4 and layer.mask.reshape(-1)[0] == 5
    assert layer.get_rng_state() == 2
    layer.set_rng_state(1)
    layer.forward(b, t)
    assert layer.mask.reshape(-1)[0] == 5


def test_test_phase_is_the_weighted_average_hand_computed():
    """sum(x^2) / sum(x): w0 30/10 = 3, w1 17/5 = 3.4, w2 36/6 = 6, w3 6/4 = 1.5."""
    layer, b, t = _layer("TEST")
    layer.forward(b, t)
    assert_close(t[0].data[0, 0], np.array([[3.0, 3.4], [6.0, 1.5]]), 1e-12, 0, name="y")
    assert layer.get_rng_state() is None


@pytest.mark.parametrize("shape,params,out", [((2, 3, 5, 5), "kernel_size: 3 stride: 2", (2, 2)),
                                              ((1, 2, 6, 7), "kernel_h: 2 kernel_w: 3 stride: 2", (3, 3))])
def test_matches_reference(shape, params, out):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    text = f'type: "Pooling" pooling_param {{ pool: STOCHASTIC {params} }}'
    kernel = (3, 3) if "kernel_size: 3" in params else (2, 3)
    layer, b, t = make_layer(text, [shape], bottom_values=[x], dtype=np.float32)
    layer.forward(b, t)
    y, idx = sto_train_ref(x, out, kernel, (2, 2), uniform_host(t[0].count, layer.seed, 0))
    assert_close(t[0].data, y, 0, 0, name="y")
    assert (layer.mask == idx).all()
    layer, b, t = make_layer(text, [shape], phase="TEST", bottom_values=[x], dtype=np.float32)
    layer.forward(b, t)
    assert_close(t[0].data, sto_test_ref(x, out, kernel, (2, 2)), 1e-5, 1e-6, name="y (TEST)")


def test_pick_frequencies_follow_the_values():
    """800 windows [1 2 3 4] per forward, 5 forwards: each element is picked with probability
    value / 10 (binomial standard deviation ~0.007 at 4000 draws; 5 sigma allowed)."""
    x = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]]), (1, 800, 1, 1))
    layer, b, t = make_layer(TEXT, [x.shape], bottom_values=[x])
    counts = np.zeros(4)
    for _ in range(5):
        layer.forward(b, t)
        counts += np.bincount(layer.mask.reshape(-1), minlength=4)
    assert np.abs(counts / counts.sum() - np.array([0.1, 0.2, 0.3, 0.4])).max() < 0.035


def test_gradient():
    """Positive, well separated values: the +-1e-3 steps move no pick (the draws are replayed)."""
    x = (np.random.default_rng(3).permutation(36).reshape(1, 1, 6, 6) + 1.0) * 0.25
    layer, b, t = make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 '
                             'stride: 2 }', [x.shape], bottom_values=[x])
    check_gradient(layer, b, t)


def test_padding_is_refused():
    with pytest.raises(CaffeError, match="padding is implemented only for AVE and MAX"):
        make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 pad: 1 }',
                   [(1, 1, 5, 5)])
