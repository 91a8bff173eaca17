"""kernels/loss_extra.py (HingeLoss, MultinomialLogisticLoss, InfogainLoss) against the float64
loops of tests/reference/caffe_extra.py, hypothesis-drawn shapes, labels and ignore labels; bad
labels raise ValueError naming one."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import loss_extra as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref


@given(num=st.integers(1, 5), dim=st.integers(1, 6), norm=st.sampled_from(["L1", "L2"]),
       seed=st.integers(0, 2**31 - 1))
def test_hinge(num, dim, norm, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((num, dim)) * 2).astype(np.float32)
    lab = rng.integers(0, dim, num).astype(np.float32)
    code = K.HINGE_L1 if norm == "L1" else K.HINGE_L2
    margin = cuda.to_device(np.zeros(num * dim, np.float32))
    total = K.hinge_loss_fwd(cuda.to_device(x.reshape(-1)), cuda.to_device(lab), margin, num, dim, code)
    loss_ref, m_ref = ref.hinge_ref(x, lab, norm)
    assert total / num == pytest.approx(loss_ref, rel=1e-5, abs=1e-6)
    assert_close(margin.copy_to_host(), m_ref.reshape(-1), 1e-6, 1e-6, name="margin")
    scale = 0.7 / num if norm == "L1" else 0.7 * 2 / num
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    K.hinge_loss_bwd(margin, cuda.to_device(lab), dx, num, dim, code, scale)
    assert_close(dx.copy_to_host(), ref.hinge_grad_ref(x, lab, norm, 0.7).reshape(-1), 1e-5, 1e-6)


@given(num=st.integers(1, 5), dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_multinomial_logistic(num, dim, seed):
    rng = np.random.default_rng(seed)
    p = rng.random((num, dim)).astype(np.float32)
    p[0, 0] = 0                                               # log clamps at 1e-20
    lab = rng.integers(0, dim, num).astype(np.float32)
    lab[0] = 0
    total = K.multinomial_logistic_loss_fwd(cuda.to_device(p.reshape(-1)), cuda.to_device(lab), num, dim)
    assert total / num == pytest.approx(ref.mlogistic_ref(p, lab), rel=1e-5)
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    K.multinomial_logistic_loss_bwd(cuda.to_device(p.reshape(-1)), cuda.to_device(lab), dx, num, dim,
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
    total, count = K.infogain_loss_fwd(pd, cuda.to_device(lab.reshape(-1)), cuda.to_device(h.reshape(-1)),
                                       outer, c, inner, ignore)
    assert count == int((lab != ignore).sum()) if ignore is not None else count == lab.size
    assert total == pytest.approx(loss_ref, rel=1e-5, abs=1e-5)
    dx = cuda.to_device(np.full(x.size, 9, np.float32))
    K.infogain_loss_bwd(pd, cuda.to_device(lab.reshape(-1)), cuda.to_device(h.reshape(-1)), dx, outer, c,
                        inner, ignore, 0.25)
    assert_close(dx.copy_to_host(), ref.infogain_grad_ref(x, lab, h, 1, ignore, "NONE", 0.25).reshape(-1),
                 1e-5, 1e-6)


def _dev(v):
    return cuda.to_device(np.asarray(v, np.float32))


def test_bad_labels_raise():
    p = _dev(np.full(6, 0.5))
    with pytest.raises(ValueError, match="label 3 outside"):
        K.multinomial_logistic_loss_fwd(p, _dev([0, 3]), 2, 3)
    with pytest.raises(ValueError, match="label -1 outside"):
        K.hinge_loss_fwd(p, _dev([-1, 0]), _dev(np.zeros(6)), 2, 3, K.HINGE_L1)
    with pytest.raises(ValueError, match="label 5 outside"):
        K.infogain_loss_fwd(p, _dev([5, 0]), _dev(np.ones(9)), 2, 3, 1, None)
