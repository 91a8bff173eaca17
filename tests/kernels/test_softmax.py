"""kernels/softmax.py against tests/reference/softmax.py (float64 loops).

Tolerances: softmax forward rtol 1e-5, atol 1e-7 (float32 exp and one division); backward rtol 1e-5,
atol 1e-6 (a C-term float32 dot product); loss sums rtol 1e-5 (float32 logs summed in a different
order); counts and accuracies exact; loss backward rtol 1e-6, atol 1e-7 (one subtraction and one
product).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import softmax as S
from tests.helpers import assert_close
from tests.reference import softmax as R
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@st.composite
def shapes_and_axis(draw):
    nd = draw(st.integers(2, 4))
    dims = [draw(st.integers(1, MAX_BATCH))] + [
        draw(st.integers(1, MAX_SPATIAL if i else MAX_CHANNELS + 2)) for i in range(nd - 1)]
    axis = draw(st.integers(-nd, nd - 1))
    return tuple(dims), axis


def _logits(shape, seed, magnitude):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * magnitude).astype(np.float32)


def _labels(shape, axis, seed, ignore_label, p_ignore=0.25):
    outer, C, inner = S.axis_view(shape, axis)
    rng = np.random.default_rng(seed + 7)
    lab = rng.integers(0, C, outer * inner).astype(np.float32)
    if ignore_label is not None:
        lab[rng.random(lab.size) < p_ignore] = ignore_label
    return lab


@given(sa=shapes_and_axis(), seed=st.integers(0, 2**16), magnitude=st.sampled_from([1.0, 30.0, 1e4]))
def test_softmax_fwd_bwd_match_reference(sa, seed, magnitude):
    shape, axis = sa
    x = _logits(shape, seed, magnitude)
    d_y = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_fwd(cuda.to_device(x), d_y, axis)
    y = d_y.copy_to_host()
    assert np.isfinite(y).all()
    assert_close(y, R.softmax_ref(x, axis), rtol=1e-5, atol=1e-7, name="softmax y")
    dy = _logits(shape, seed + 1, 1.0)
    d_dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_bwd(cuda.to_device(dy), d_y, d_dx, axis)
    assert_close(d_dx.copy_to_host(), R.softmax_grad_ref(y, dy, axis), rtol=1e-5, atol=1e-6,
                 name="softmax dx")


@pytest.mark.parametrize("shape, axis, magnitude", [((2, 300), 1, 1e4), ((1, 129), -1, 1.0),
                                                    ((1, 5, 2), 1, 3.0), ((1, 3), 1, 1e4)])
def test_softmax_v2_block_per_row(shape, axis, magnitude):
    """v2 (one block per position, shared-memory trees) on rows longer and shorter than its block,
    with inner > 1 as well; the public functions choose it for inner == 1 and C >= 128."""
    x = _logits(shape, 11, magnitude)
    d_y = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_fwd(cuda.to_device(x), d_y, axis, version=2)
    y = d_y.copy_to_host()
    assert_close(y, R.softmax_ref(x, axis), rtol=1e-5, atol=1e-7, name="softmax v2 y")
    dy = _logits(shape, 12, 1.0)
    d_dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_bwd(cuda.to_device(dy), d_y, d_dx, axis, version=2)
    assert_close(d_dx.copy_to_host(), R.softmax_grad_ref(y, dy, axis), rtol=1e-5, atol=1e-6,
                 name="softmax v2 dx")
    assert S._softmax_launch(None, 1000, 1, 64)[0] == 2
    assert S._softmax_launch(None, 10, 1, 64)[0] == 1
    assert S._softmax_launch(None, 1000, 4, 64)[0] == 1


def test_softmax_large_logits_do_not_overflow():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 1]], np.float32).reshape(2, 3, 1, 1)
    d_y = cuda.device_array(x.shape, np.float32)
    S.softmax_fwd(cuda.to_device(x), d_y)
    y = d_y.copy_to_host().reshape(2, 3)
    np.testing.assert_array_equal(y[0], [1, 0, 0])
    e = math.exp(-1)
    assert_close(y[1], np.array([1, 1, e]) / (2 + e), rtol=1e-6, atol=0, name="softmax ties")


@given(sa=shapes_and_axis(), seed=st.integers(0, 2**16),
       ignore_label=st.sampled_from([None, -1, 255, 0]), scale=st.floats(0.01, 3.0))
def test_softmax_loss_matches_reference(sa, seed, ignore_label, scale):
    shape, axis = sa
    prob = R.softmax_ref(_logits(shape, seed, 3.0), axis).astype(np.float32)
    label = _labels(shape, axis, seed, ignore_label)
    d_prob = cuda.to_device(prob)
    d_label = cuda.to_device(label)
    loss, count = S.softmax_loss_fwd(d_prob, d_label, axis, ignore_label)
    ref_loss, ref_count = R.softmax_loss_ref(prob, label, axis, ignore_label)
    assert count == ref_count
    assert_close(np.float64(loss), ref_loss, rtol=1e-5, atol=1e-6, name="loss sum")
    d_dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_loss_bwd(d_prob, d_label, d_dx, scale, axis, ignore_label)
    assert_close(d_dx.copy_to_host(), R.softmax_loss_grad_ref(prob, label, np.float32(scale), axis,
                                                              ignore_label),
                 rtol=1e-6, atol=1e-7, name="loss dx")


def test_softmax_loss_floor_and_multi_block_reduction():
    """prob[label] == 0 -> -log(FLT_MIN) = 87.33654; 600 positions span 3 reduction blocks."""
    n = 600
    prob = np.zeros((n, 2), np.float32)
    prob[:, 1] = 1
    label = np.zeros(n, np.float32)
    label[::2] = 1                        # half the positions: loss 0; the rest: the floor
    loss, count = S.softmax_loss_fwd(cuda.to_device(prob), cuda.to_device(label))
    assert count == n
    assert_close(np.float64(loss), n / 2 * -math.log(R.FLT_MIN), rtol=1e-5, atol=0, name="floor")
    loss, count = S.softmax_loss_fwd(cuda.to_device(prob), cuda.to_device(label), ignore_label=0)
    assert (loss, count) == (0.0, n // 2)


def test_softmax_loss_rejects_out_of_range_labels():
    prob = np.full((2, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="outside"):
        S.softmax_loss_fwd(cuda.to_device(prob), cuda.to_device(np.array([0, 3], np.float32)))
    with pytest.raises(ValueError, match="outside"):
        S.accuracy_fwd(cuda.to_device(prob), cuda.to_device(np.array([-1, 0], np.float32)))
    # an ignored label may lie outside [0, C) (255 in segmentation nets)
    loss, count = S.softmax_loss_fwd(cuda.to_device(prob), cuda.to_device(np.array([255, 1], np.float32)),
                                     ignore_label=255)
    assert count == 1 and loss == pytest.approx(math.log(3), rel=1e-6)
    with pytest.raises(ValueError, match="labels"):
        S.softmax_loss_fwd(cuda.to_device(prob), cuda.to_device(np.zeros(3, np.float32)))


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("valid", [-1, 0, 5, 12])
def test_loss_normalizer(mode, valid):
    assert S.loss_normalizer(mode, 3, 4, valid) == R.normalizer_ref(mode, 3, 4, valid)
    assert S.loss_normalizer(S.NORMALIZATION_MODES.index(mode), 3, 4, valid) == \
        R.normalizer_ref(mode, 3, 4, valid)


def test_normalization_mode_legacy_normalize():
    assert S.normalization_mode() == "VALID"
    assert S.normalization_mode(normalize=True) == "VALID"
    assert S.normalization_mode(normalize=False) == "BATCH_SIZE"
    assert S.normalization_mode("FULL", normalize=False) == "FULL"     # explicit field wins
    assert S.normalization_mode(3) == "NONE"
    with pytest.raises(ValueError):
        S.normalization_mode("MEAN")


@given(sa=shapes_and_axis(), seed=st.integers(0, 2**16), k=st.integers(1, 5),
       ignore_label=st.sampled_from([None, 1]), ties=st.sampled_from(["cpu", "gpu"]))
def test_accuracy_matches_reference(sa, seed, k, ignore_label, ties):
    shape, axis = sa
    _, C, _ = S.axis_view(shape, axis)
    top_k = min(k, C)
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, shape).astype(np.float32)    # many ties
    label = _labels(shape, axis, seed, ignore_label)
    per_class = cuda.to_device(np.full((2, C), 99, np.int32))
    correct, count = S.accuracy_fwd(cuda.to_device(scores), cuda.to_device(label), top_k, axis,
                                    ignore_label, ties, per_class=per_class)
    ref_correct, ref_count, ref_per_class = R.accuracy_ref(scores, label, top_k, axis, ignore_label, ties)
    assert (correct, count) == (ref_correct, ref_count)
    np.testing.assert_array_equal(per_class.copy_to_host(), ref_per_class)


def test_accuracy_tie_rules():
    """Scores [1, 1, 0]: Caffe's CPU sort ranks class 1 before class 0 (equal scores, larger index
    first); Caffe's GPU kernel counts every other equal score as better."""
    scores = cuda.to_device(np.array([[1, 1, 0], [1, 1, 0]], np.float32))
    label = cuda.to_device(np.array([0, 1], np.float32))
    assert S.accuracy_fwd(scores, label, 1, ties="cpu") == (1, 2)   # label 1 correct, label 0 not
    assert S.accuracy_fwd(scores, label, 1, ties="gpu") == (0, 2)
    assert S.accuracy_fwd(scores, label, 2, ties="cpu") == (2, 2)
    assert S.accuracy_fwd(scores, label, 2, ties="gpu") == (2, 2)
    with pytest.raises(ValueError):
        S.accuracy_fwd(scores, label, 4)
