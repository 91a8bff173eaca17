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
from kernels._launch import promoted
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


def _softmax(x, dy, axis, version=None):
    """(y, dx) of softmax_fwd / softmax_bwd at ``version`` (None: the promoted one)."""
    ops = {} if version is None else {"softmax_fwd": version, "softmax_bwd": version}
    with promoted(S.PROMOTED, **ops):
        d_y = cuda.to_device(np.full(x.shape, np.nan, np.float32))
        S.softmax_fwd(cuda.to_device(x), d_y, axis)
        d_dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))
        S.softmax_bwd(cuda.to_device(dy), d_y, d_dx, axis)
    return d_y.copy_to_host(), d_dx.copy_to_host()


@pytest.mark.parametrize("version", ["v1", "v3"])
@given(sa=shapes_and_axis(), seed=st.integers(0, 2**16), magnitude=st.sampled_from([1.0, 30.0, 1e4]))
def test_softmax_fwd_bwd_match_reference(version, sa, seed, magnitude):
    """Every version against the float64 reference; v3 on any inner (its spatial kernel's lower
    bound on inner lowered to 2, so the simulator's small shapes run it)."""
    shape, axis = sa
    x = _logits(shape, seed, magnitude)
    dy = _logits(shape, seed + 1, 1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S, "SOFTMAX_V3_MIN_INNER", 2)
        y, dx = _softmax(x, dy, axis, version)
    assert np.isfinite(y).all()
    assert_close(y, R.softmax_ref(x, axis), rtol=1e-5, atol=1e-7, name="softmax y")
    assert_close(dx, R.softmax_grad_ref(y, dy, axis), rtol=1e-5, atol=1e-6, name="softmax dx")


def test_softmax_version_rule():
    """v3 runs for inner == 1 (a team per row) and inner >= SOFTMAX_V3_MIN_INNER (spatial) below
    2**31 elements; v1 elsewhere."""
    assert S.PROMOTED["softmax_fwd"] == S.PROMOTED["softmax_bwd"] == "v3"
    assert S._version("softmax_fwd", 1, 64000) == "v3"
    assert S._version("softmax_fwd", 4, 64) == "v1"                # short inner: a thread per position
    assert S._version("softmax_bwd", 16384, 1 << 20) == "v3"       # spatial
    assert S._version("softmax_fwd", 16384, 1 << 31) == "v1"       # beyond uint32 indexing
    with promoted(S.PROMOTED, softmax_fwd="v1"):
        assert S._version("softmax_fwd", 1, 64000) == "v1"


@pytest.mark.parametrize("rows, C", [(3, 1), (9, 7), (2, 130), (1, 300), (2, 1100)])
def test_softmax_v3_rows_team_sizes(rows, C):
    """v3 rows kernel (inner == 1) at each team size -- 32 (C <= 128, 8 rows per block: a partial
    last block), 64, 128, 256 (C = 1100: a team of 256 with an unrolled step and a tail) --
    forward and backward against the reference, in place too (y is x, dx is dy)."""
    x = _logits((rows, C), rows + C, 30.0)
    d_y = cuda.to_device(np.full((rows, C), np.nan, np.float32))
    S.softmax_fwd(cuda.to_device(x), d_y, 1)
    y = d_y.copy_to_host()
    assert_close(y, R.softmax_ref(x, 1), rtol=1e-5, atol=1e-7, name="softmax v3 rows y")
    d_x = cuda.to_device(x)
    S.softmax_fwd(d_x, d_x, 1)
    np.testing.assert_array_equal(d_x.copy_to_host(), y)       # in place: the same bits
    dy = _logits((rows, C), rows + C + 1, 1.0)
    d_dy = cuda.to_device(dy)
    S.softmax_bwd(d_dy, d_y, d_dy, 1)
    assert_close(d_dy.copy_to_host(), R.softmax_grad_ref(y, dy, 1), rtol=1e-5, atol=1e-6,
                 name="softmax v3 rows dx")
    assert S._team_shift(C) == {1: 5, 7: 5, 130: 6, 300: 7, 1100: 8}[C]


@given(outer=st.integers(1, 3), C=st.integers(1, 9), inner=st.integers(2, 40),
       seed=st.integers(0, 2**16))
def test_softmax_v3_spatial_bit_identical_to_v1(outer, C, inner, seed):
    """v3 spatial (thread per position, blockIdx.y = o, C loop unrolled by 4 with a tail) does v1's
    operations in v1's order: the same bits, forward and backward, in place as well."""
    shape = (outer, C, inner)
    x = _logits(shape, seed, 10.0)
    dy = _logits(shape, seed + 1, 1.0)
    out = {}
    for v in ("v1", "v3"):
        with promoted(S.PROMOTED, softmax_fwd=v, softmax_bwd=v), pytest.MonkeyPatch.context() as mp:
            mp.setattr(S, "SOFTMAX_V3_MIN_INNER", 2)
            d_y = cuda.to_device(np.full(shape, np.nan, np.float32))
            S.softmax_fwd(cuda.to_device(x), d_y, 1)
            d_dy = cuda.to_device(dy)
            S.softmax_bwd(d_dy, d_y, d_dy, 1)      # in place: dx is dy
        out[v] = d_y.copy_to_host(), d_dy.copy_to_host()
    for a, b, what in zip(out["v3"], out["v1"], ("y", "dx")):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32), err_msg=what)


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


@given(sa=shapes_and_axis(), seed=st.integers(0, 2**16), ignore_label=st.sampled_from([None, -1, 0]))
def test_softmax_loss_v2_bit_identical_to_v1(sa, seed, ignore_label):
    """Loss forward v2 (one launch, last-block fold) returns v1's loss bits and count; the
    backward v2 matches the reference (and v1 bit for bit)."""
    shape, axis = sa
    prob = R.softmax_ref(_logits(shape, seed, 3.0), axis).astype(np.float32)
    label = _labels(shape, axis, seed, ignore_label)
    d_prob, d_label = cuda.to_device(prob), cuda.to_device(label)
    loss, dx = {}, {}
    for v in ("v1", "v2"):
        with promoted(S.PROMOTED, softmax_loss_fwd=v, softmax_loss_bwd=v):
            loss[v] = S.softmax_loss_fwd(d_prob, d_label, axis, ignore_label)
            d_dx = cuda.to_device(np.full(shape, np.nan, np.float32))
            S.softmax_loss_bwd(d_prob, d_label, d_dx, 0.75, axis, ignore_label)
        dx[v] = d_dx.copy_to_host()
    l1, l2 = loss["v1"], loss["v2"]
    assert np.float32(l2[0]).view(np.uint32) == np.float32(l1[0]).view(np.uint32) and l2[1] == l1[1]
    np.testing.assert_array_equal(dx["v2"].view(np.uint32), dx["v1"].view(np.uint32))


@pytest.mark.parametrize("shape", [(2, 300, 1), (1, 3, 700), (3, 2, 5)])
def test_softmax_loss_bwd_v2_strided_rows(shape):
    """Loss backward v2 on rows longer than its grid stride (the 4-way unrolled elements
    j + k*stride, k > 0) with inner == 1 and inner > 1, against the reference."""
    prob = R.softmax_ref(_logits(shape, 5, 2.0), 1).astype(np.float32)
    label = _labels(shape, 1, 5, 1)
    d_dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.softmax_loss_bwd(cuda.to_device(prob), cuda.to_device(label), d_dx, 0.5, 1, 1)
    assert_close(d_dx.copy_to_host(), R.softmax_loss_grad_ref(prob, label, np.float32(0.5), 1, 1),
                 rtol=1e-6, atol=1e-7, name="loss dx v2")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_softmax_loss_floor_and_multi_block_reduction(version, monkeypatch):
    """prob[label] == 0 -> -log(FLT_MIN) = 87.33654; 600 positions span 3 reduction blocks."""
    n = 600
    prob = np.zeros((n, 2), np.float32)
    prob[:, 1] = 1
    label = np.zeros(n, np.float32)
    label[::2] = 1                        # half the positions: loss 0; the rest: the floor
    monkeypatch.setitem(S.PROMOTED, "softmax_loss_fwd", version)
    for _ in range(2):                    # twice: v2's ticket counter is reset by its last block
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
