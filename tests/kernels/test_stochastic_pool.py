"""kernels/stochastic_pool.py against the naive references (tests/reference/stochastic_pool.py):
the device's Philox uniforms equal the host's (the same picks), TRAIN picks / TEST averages /
backward routing for drawn shapes, kernels and strides, and the gather backward at every launch
geometry. Picks and routed gradients are exact; TEST averages to 1e-5 relative."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import stochastic_pool as S
from kernels.dropout import random_uint32_host
from tests.helpers import assert_close
from tests.reference.stochastic_pool import sto_bwd_ref, sto_test_ref, sto_train_ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@st.composite
def problems(draw):
    n, c = draw(st.integers(1, MAX_BATCH)), draw(st.integers(1, MAX_CHANNELS))
    h, w = draw(st.integers(1, MAX_SPATIAL)), draw(st.integers(1, MAX_SPATIAL))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = -(-(h - kh) // sh) + 1, -(-(w - kw) // sw) + 1     # Caffe's ceil rule, no pad
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), draw(st.integers(0, 2**32)), draw(st.integers(0, 9))


def test_uniform_host_is_curands_formula():
    r = random_uint32_host(1000, 7, 3).astype(np.float64)
    u = S.uniform_host(1000, 7, 3)
    assert u.dtype == np.float32 and u.min() > 0 and u.max() <= 1
    assert_close(u, r / 2**32 + 2.0**-33, 1e-7, 0, name="u")


@given(problems())
def test_train_matches_reference(p):
    shape, kernel, stride, out, seed, stream = p
    x = np.random.default_rng(seed % 1000).random(shape).astype(np.float32)
    y = cuda.to_device(np.full(shape[:2] + out, np.nan, np.float32))
    idx = cuda.to_device(np.full(shape[:2] + out, 99, np.int32))
    S.sto_pool_fwd_train(cuda.to_device(x), y, idx, kernel, stride, seed, stream)
    u = S.uniform_host(int(np.prod(shape[:2] + out)), seed, stream)
    want_y, want_idx = sto_train_ref(x, out, kernel, stride, u)
    assert_close(y.copy_to_host(), want_y, 0, 0, name="y")
    np.testing.assert_array_equal(idx.copy_to_host(), want_idx)
    dy = np.random.default_rng(1).standard_normal(want_y.shape).astype(np.float32)
    dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    S.sto_pool_bwd(cuda.to_device(dy), idx, dx, kernel, stride)
    assert_close(dx.copy_to_host(), sto_bwd_ref(dy, want_idx, shape), 1e-6, 1e-6, name="dx")


@given(problems())
def test_test_phase_matches_reference(p):
    shape, kernel, stride, out, seed, _ = p
    x = np.random.default_rng(seed % 1000).random(shape).astype(np.float32)
    y = cuda.to_device(np.full(shape[:2] + out, np.nan, np.float32))
    S.sto_pool_fwd_test(cuda.to_device(x), y, kernel, stride)
    assert_close(y.copy_to_host(), sto_test_ref(x, out, kernel, stride), 1e-5, 1e-6, name="y")


def test_negative_window_picks_nothing():
    """A window whose running sum never reaches u * sum (possible only with negative values; Caffe
    then leaves a stale top): four -1s with u = 0.1272 (seed 1234, stream 0) give thres = -0.509,
    running sums -1 .. -4 all below it: y = 0, idx = -1, and backward routes nothing."""
    x = np.full((1, 1, 2, 2), -1.0, np.float32)
    y = cuda.to_device(np.full((1, 1, 1, 1), np.nan, np.float32))
    idx = cuda.to_device(np.zeros((1, 1, 1, 1), np.int32))
    S.sto_pool_fwd_train(cuda.to_device(x), y, idx, (2, 2), (2, 2), 1234, 0)
    assert int(idx.copy_to_host()[0, 0, 0, 0]) == -1 and y.copy_to_host()[0, 0, 0, 0] == 0
    dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))
    S.sto_pool_bwd(cuda.to_device(np.ones((1, 1, 1, 1), np.float32)), idx, dx, (2, 2), (2, 2))
    assert not dx.copy_to_host().any()


def test_backward_independent_of_launch_geometry():
    shape, kernel, stride = (2, 2, 5, 6), (3, 2), (1, 2)
    out = (3, 3)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    _, idx = sto_train_ref(x, out, kernel, stride, S.uniform_host(2 * 2 * 9, 5, 1))
    dy = np.random.default_rng(1).standard_normal(shape[:2] + out).astype(np.float32)
    want = sto_bwd_ref(dy, idx, shape)
    geom = [np.int32(v) for v in (2, 5, 6, 3, 3, *kernel, *stride)]
    for launch in [(1, 1), (2, 7), (1, 64)]:
        dx = cuda.to_device(np.full(shape, np.nan, np.float32))
        S.sto_pool_bwd_v1[launch](cuda.to_device(dy.reshape(-1)), cuda.to_device(idx.reshape(-1)),
                                  dx.reshape(dx.size), *geom)
        assert_close(dx.copy_to_host(), want, 1e-6, 1e-6, name=f"dx {launch}")
