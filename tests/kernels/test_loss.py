"""kernels/loss.py: SigmoidCrossEntropyLoss and ContrastiveLoss against float64 numpy references
written here from Caffe's formulas (they do not import the code under test); HingeLoss,
MultinomialLogisticLoss and InfogainLoss against the float64 loops of tests/reference/caffe_extra.py,
hypothesis-drawn shapes, labels and ignore labels; bad labels raise ValueError naming one.

Tolerances: per-element values 1e-5 relative (+1e-6 absolute); the loss sums are float32 tree
reductions vs a float64 sum: 1e-5 relative (+1e-4 absolute).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import loss as rx
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_ELEMENTS


# ------------------------------------------------------------------------------- references
def sigmoid_ce_ref(x, t, ignore):
    """(loss sum, valid count, gradient for scale 1) in float64, Caffe's stable form."""
    x = x.astype(np.float64)
    t = t.astype(np.float64)
    valid = np.ones(x.shape, bool) if ignore is None else t.astype(np.int64) != ignore
    pos = (x >= 0).astype(np.float64)
    terms = x * (t - pos) - np.log1p(np.exp(x - 2 * x * pos))
    grad = np.where(valid, 1 / (1 + np.exp(-x)) - t, 0.0)
    return -terms[valid].sum(), int(valid.sum()), grad


def contrastive_ref(a, b, sim, margin, legacy):
    """(diff, dist_sq, loss sum, per-pair gradient factor g) in float64."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    d2 = (diff ** 2).sum(axis=1)
    s = sim != 0
    d = np.sqrt(d2)
    if legacy:
        dis = np.maximum(margin - d2, 0.0)
        g_dis = np.where(margin - d2 > 0, -1.0, 0.0)
    else:
        dis = np.maximum(margin - d, 0.0) ** 2
        g_dis = np.where(margin - d > 0, -(margin - d) / (d + 1e-4), 0.0)
    return diff, d2, float(np.where(s, d2, dis).sum()), np.where(s, 1.0, g_dis)


# ------------------------------------------------------------------------------- sigmoid CE
@given(n=st.integers(0, MAX_ELEMENTS), seed=st.integers(0, 2**31 - 1),
       ignore=st.sampled_from([None, -1, 1]), scale=st.sampled_from([1.0, 0.25]))
def test_sigmoid_ce(n, seed, ignore, scale):
    r = np.random.default_rng(seed)
    x = (r.standard_normal(n) * 6).astype(np.float32)       # both signs, large |x| (overflow-free)
    t = r.integers(-1, 2, n).astype(np.float32) if ignore is not None else r.random(n).astype(np.float32)
    loss_ref, count_ref, grad_ref = sigmoid_ce_ref(x, t, ignore)
    loss, count = rx.sigmoid_ce_fwd(cuda.to_device(x), cuda.to_device(t), ignore)
    assert count == count_ref
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-4)
    d_dx = cuda.to_device(np.full(n, 7.0, np.float32))       # garbage: dx is written, not added
    rx.sigmoid_ce_bwd(cuda.to_device(x), cuda.to_device(t), d_dx, scale, ignore)
    assert_close(d_dx.copy_to_host(), scale * grad_ref, 1e-5, 1e-6, name="dx")


def test_sigmoid_ce_extremes():
    """|x| = 80: exp overflows a naive form; the stable form gives finite loss and gradient."""
    x = np.array([80, -80, 0, 80, -80], np.float32)
    t = np.array([1, 0, 1, 0, 1], np.float32)
    loss, count = rx.sigmoid_ce_fwd(cuda.to_device(x), cuda.to_device(t))
    loss_ref, _, grad_ref = sigmoid_ce_ref(x, t, None)
    assert count == 5 and np.isfinite(loss)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    dx = cuda.device_array(5, np.float32)
    rx.sigmoid_ce_bwd(cuda.to_device(x), cuda.to_device(t), dx, 1.0)
    assert_close(dx.copy_to_host(), grad_ref, 1e-5, 1e-6, name="dx")


# ------------------------------------------------------------------------------- contrastive
@given(n=st.integers(1, MAX_BATCH * 4), d=st.integers(1, MAX_CHANNELS * 2), seed=st.integers(0, 2**31 - 1),
       legacy=st.booleans(), margin=st.sampled_from([0.5, 2.0]))
def test_contrastive(n, d, seed, legacy, margin):
    r = np.random.default_rng(seed)
    a = r.standard_normal((n, d)).astype(np.float32)
    b = (a + r.standard_normal((n, d)) * r.choice([0.1, 1.0])).astype(np.float32)
    sim = r.integers(0, 2, n).astype(np.float32)
    diff_ref, d2_ref, loss_ref, g = contrastive_ref(a, b, sim, margin, legacy)
    diff = cuda.to_device(np.full((n, d), 7.0, np.float32))
    dist_sq = cuda.to_device(np.full(n, 7.0, np.float32))
    loss = rx.contrastive_fwd(cuda.to_device(a), cuda.to_device(b), cuda.to_device(sim), diff, dist_sq,
                              margin, legacy)
    assert_close(diff.copy_to_host(), diff_ref, 1e-6, 1e-6, name="diff")
    assert_close(dist_sq.copy_to_host(), d2_ref, 1e-5, 1e-6, name="dist_sq")
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-5)
    for sign in (1.0, -1.0):
        dx = cuda.to_device(np.full((n, d), 7.0, np.float32))
        rx.contrastive_bwd(diff, dist_sq, cuda.to_device(sim), dx, sign, margin, legacy, 0.3)
        assert_close(dx.copy_to_host(), sign * 0.3 * g[:, None] * diff_ref, 1e-4, 1e-6, name="dx")


def test_contrastive_shape_errors():
    a = cuda.to_device(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError):
        rx.contrastive_fwd(a, a, cuda.to_device(np.zeros(2, np.float32)), a,
                           cuda.to_device(np.zeros(3, np.float32)), 1.0)


# ------------------------------------------ HingeLoss, MultinomialLogisticLoss, InfogainLoss

@given(num=st.integers(1, 5), dim=st.integers(1, 6), norm=st.sampled_from(["L1", "L2"]),
       seed=st.integers(0, 2**31 - 1))
def test_hinge(num, dim, norm, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((num, dim)) * 2).astype(np.float32)
    lab = rng.integers(0, dim, num).astype(np.float32)
    code = rx.HINGE_L1 if norm == "L1" else rx.HINGE_L2
    margin = cuda.to_device(np.zeros(num * dim, np.float32))
    total = rx.hinge_loss_fwd(cuda.to_device(x.reshape(-1)), cuda.to_device(lab), margin, num, dim, code)
    loss_ref, m_ref = ref.hinge_ref(x, lab, norm)
    assert total / num == pytest.approx(loss_ref, rel=1e-5, abs=1e-6)
    assert_close(margin.copy_to_host(), m_ref.reshape(-1), 1e-6, 1e-6, name="margin")
    scale = 0.7 / num if norm == "L1" else 0.7 * 2 / num
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    rx.hinge_loss_bwd(margin, cuda.to_device(lab), dx, num, dim, code, scale)
    assert_close(dx.copy_to_host(), ref.hinge_grad_ref(x, lab, norm, 0.7).reshape(-1), 1e-5, 1e-6)


@given(num=st.integers(1, 5), dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_multinomial_logistic(num, dim, seed):
    rng = np.random.default_rng(seed)
    p = rng.random((num, dim)).astype(np.float32)
    p[0, 0] = 0                                               # log clamps at 1e-20
    lab = rng.integers(0, dim, num).astype(np.float32)
    lab[0] = 0
    total = rx.multinomial_logistic_loss_fwd(cuda.to_device(p.reshape(-1)), cuda.to_device(lab), num, dim)
    assert total / num == pytest.approx(ref.mlogistic_ref(p, lab), rel=1e-5)
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    rx.multinomial_logistic_loss_bwd(cuda.to_device(p.reshape(-1)), cuda.to_device(lab), dx, num, dim,
                                    -0.5 / num)
    assert_close(dx.copy_to_host(), ref.mlogistic_grad_ref(p, lab, 0.5).reshape(-1), 1e-5, 0)


@given(outer=st.integers(1, 3), c=st.integers(1, 4), inner=st.integers(1, 3),
       ignore=st.sampled_from([None, 0, -1]), seed=st.integers(0, 2**31 - 1))
def test_infogain(outer, c, inner, ignore, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((outer, c, inner)).astype(np.float32)
    lab = rng.integers(-1 if ignore == -1 else 0, c, (outer, inner)).astype(np.float32)
    h = rng.random((c, c)).astype(np.float32)
    loss_ref, p = ref.infogain_ref(x, lab, h, 1, ignore, "NONE")
    pd = cuda.to_device(p.astype(np.float32).reshape(-1))
    total, count = rx.infogain_loss_fwd(pd, cuda.to_device(lab.reshape(-1)), cuda.to_device(h.reshape(-1)),
                                       outer, c, inner, ignore)
    assert count == int((lab != ignore).sum()) if ignore is not None else count == lab.size
    assert total == pytest.approx(loss_ref, rel=1e-5, abs=1e-5)
    dx = cuda.to_device(np.full(x.size, 9, np.float32))
    rx.infogain_loss_bwd(pd, cuda.to_device(lab.reshape(-1)), cuda.to_device(h.reshape(-1)), dx, outer, c,
                        inner, ignore, 0.25)
    assert_close(dx.copy_to_host(), ref.infogain_grad_ref(x, lab, h, 1, ignore, "NONE", 0.25).reshape(-1),
                 1e-5, 1e-6)


def _dev(v):
    return cuda.to_device(np.asarray(v, np.float32))


def test_bad_labels_raise():
    p = _dev(np.full(6, 0.5))
    with pytest.raises(ValueError, match="label 3 outside"):
        rx.multinomial_logistic_loss_fwd(p, _dev([0, 3]), 2, 3)
    with pytest.raises(ValueError, match="label -1 outside"):
        rx.hinge_loss_fwd(p, _dev([-1, 0]), _dev(np.zeros(6)), 2, 3, rx.HINGE_L1)
    with pytest.raises(ValueError, match="label 5 outside"):
        rx.infogain_loss_fwd(p, _dev([5, 0]), _dev(np.ones(9)), 2, 3, 1, None)
