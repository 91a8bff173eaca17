"""kernels/eltwise.py (SUM with coefficients, PROD stable/unstable, MAX with Caffe's tie rule)
against tests/reference/eltwise.py, with 2 and 3 bottoms.

Tolerances: SUM rtol 1e-6, atol 1e-6 * max sum_i |c_i x_i| (an FMA rounds once where Caffe's
axpy rounds twice; matters where the terms cancel); PROD rtol 1e-6 / 2e-6 (products only); MAX
and its mask exact.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import eltwise as E
from tests.helpers import assert_close
from tests.reference import eltwise as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS),
                   st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))


def _bottoms(rng, k, shape, ties=False):
    if ties:   # small integer values: many exact ties between bottoms
        return [rng.integers(-2, 3, size=shape).astype(np.float32) for _ in range(k)]
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(k)]


def _dev(arrays):
    return [cuda.to_device(a) for a in arrays]


@given(shape=shapes, k=st.sampled_from([2, 3]), seed=st.integers(0, 2**16),
       coeffs=st.sampled_from([None, (1.0, -1.0, 0.5), (0.25, 2.0, -3.0)]))
def test_sum(shape, k, seed, coeffs):
    rng = np.random.default_rng(seed)
    xs = _bottoms(rng, k, shape)
    cs = None if coeffs is None else list(coeffs[:k])
    y = cuda.to_device(np.full(shape, np.nan, np.float32))
    E.eltwise_sum_fwd(_dev(xs), y, cs)
    mag = sum(np.abs(np.float32(1.0 if cs is None else cs[i]) * x) for i, x in enumerate(xs))
    atol = 1e-6 * max(1.0, float(mag.max()))
    assert_close(y.copy_to_host(), ref.sum_fwd_ref(xs, cs), 1e-6, atol, "sum fwd")
    dy = rng.standard_normal(shape).astype(np.float32)
    for i in range(k):
        c = 1.0 if cs is None else cs[i]
        dx = cuda.to_device(np.full(shape, np.nan, np.float32))
        E.eltwise_sum_bwd(cuda.to_device(dy), dx, c)
        assert_close(dx.copy_to_host(), ref.sum_bwd_ref(dy, c), 1e-6, 0, f"sum bwd {i}")


@given(shape=shapes, k=st.sampled_from([2, 3]), seed=st.integers(0, 2**16),
       stable=st.booleans())
def test_prod(shape, k, seed, stable):
    rng = np.random.default_rng(seed)
    xs = _bottoms(rng, k, shape)
    if stable:
        xs[0].reshape(-1)[0] = 0.0   # a zero factor: the stable gradient stays finite
    y = cuda.to_device(np.full(shape, np.nan, np.float32))
    E.eltwise_prod_fwd(_dev(xs), y)
    y_ref = ref.prod_fwd_ref(xs)
    assert_close(y.copy_to_host(), y_ref, 1e-6, 0, "prod fwd")
    dy = rng.standard_normal(shape).astype(np.float32)
    for i in range(k):
        dx = cuda.to_device(np.full(shape, np.nan, np.float32))
        E.eltwise_prod_bwd(_dev(xs), y, cuda.to_device(dy), i, dx, stable=stable)
        assert_close(dx.copy_to_host(), ref.prod_bwd_ref(xs, y_ref, dy, i, stable), 2e-6, 0,
                     f"prod bwd {i} stable={stable}")


@given(shape=shapes, k=st.sampled_from([2, 3]), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max(shape, k, seed, ties):
    rng = np.random.default_rng(seed)
    xs = _bottoms(rng, k, shape, ties)
    y = cuda.to_device(np.full(shape, np.nan, np.float32))
    mask = cuda.to_device(np.full(shape, -7, np.int32))
    E.eltwise_max_fwd(_dev(xs), y, mask)
    y_ref, m_ref = ref.max_fwd_ref(xs)
    np.testing.assert_array_equal(y.copy_to_host(), y_ref)
    np.testing.assert_array_equal(mask.copy_to_host(), m_ref)
    dy = rng.standard_normal(shape).astype(np.float32)
    for i in range(k):
        dx = cuda.to_device(np.full(shape, np.nan, np.float32))
        E.eltwise_max_bwd(cuda.to_device(dy), mask, i, dx)
        np.testing.assert_array_equal(dx.copy_to_host(), ref.max_bwd_ref(dy, m_ref, i))


def test_max_tie_rule_hand_checked():
    """Caffe CPU: a tie of bottoms 0 and 1 picks 1; a later tie keeps the earlier winner."""
    x0 = np.array([1, 2, 3, 0], np.float32)
    x1 = np.array([1, 1, 3, 0], np.float32)
    x2 = np.array([1, 5, 4, 0], np.float32)
    y = cuda.to_device(np.zeros(4, np.float32))
    mask = cuda.to_device(np.zeros(4, np.int32))
    E.eltwise_max_fwd(_dev([x0, x1, x2]), y, mask)
    np.testing.assert_array_equal(y.copy_to_host(), [1, 5, 4, 0])
    np.testing.assert_array_equal(mask.copy_to_host(), [1, 2, 2, 1])


def test_errors():
    a = cuda.to_device(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="at least 2 bottoms"):
        E.eltwise_sum_fwd([a], a)
    with pytest.raises(ValueError, match="one coefficient per bottom"):
        E.eltwise_sum_fwd([a, a], cuda.to_device(np.zeros(4, np.float32)), [1.0])
    with pytest.raises(ValueError, match="differ in size"):
        E.eltwise_prod_fwd([a, cuda.to_device(np.zeros(5, np.float32))], a)
    with pytest.raises(TypeError, match="int32"):
        E.eltwise_max_fwd([a, a], cuda.to_device(np.zeros(4, np.float32)),
                          cuda.to_device(np.zeros(4, np.float32)))
