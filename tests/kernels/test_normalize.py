"""kernels/normalize.py against the float64 references of the SSD fork's Normalize
(tests/reference/ssd.py): forward (norm and y) and backward (dx, dscale accumulating) for both
norm modes and both scale modes, hypothesis-drawn shapes."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import normalize as K
from tests.helpers import assert_close
from tests.reference.ssd import normalize_bwd_fork_ref, normalize_fwd_ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS + 2),
                   st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))


@given(shape=shapes, across=st.booleans(), shared=st.booleans(), seed=st.integers(0, 2**16))
def test_normalize_fwd_bwd(shape, across, shared, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, 1 if shared else c).astype(np.float32)
    ds0 = rng.standard_normal(scale.shape).astype(np.float32)
    eps = 1e-10
    ncs = (n, c, h * w)
    y = cuda.device_array(shape, np.float32)
    norm = cuda.device_array((n,) if across else (n, h * w), np.float32)
    dx = cuda.device_array(shape, np.float32)
    ds = cuda.to_device(ds0)
    xd, dyd, sd = cuda.to_device(x), cuda.to_device(dy), cuda.to_device(scale)
    K.normalize_fwd(xd, sd, y, norm, ncs, across, eps)
    want_y, want_norm = normalize_fwd_ref(x, scale, across, eps)
    assert_close(y.copy_to_host(), want_y, rtol=1e-5, atol=1e-6, name="y")
    assert_close(norm.copy_to_host(), want_norm, rtol=1e-5, atol=1e-6, name="norm")
    K.normalize_bwd(xd, y, dyd, sd, norm, dx, ds, ncs, across)
    want_dx, want_ds = normalize_bwd_fork_ref(x, dy, scale, across, eps)
    assert_close(dx.copy_to_host(), want_dx, rtol=1e-4, atol=1e-5, name="dx")
    assert_close(ds.copy_to_host(), ds0 + want_ds, rtol=1e-4, atol=1e-4, name="dscale")


def test_across_reduction_longer_than_a_block():
    """An image of more than 256 values: every thread of the block sums several of them."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 13)).astype(np.float32)
    scale = np.array([3.0], np.float32)
    y = cuda.device_array(x.shape, np.float32)
    norm = cuda.device_array((2,), np.float32)
    K.normalize_fwd(cuda.to_device(x), cuda.to_device(scale), y, norm, (2, 3, 143), True, 1e-10)
    want, want_norm = normalize_fwd_ref(x, scale, True, 1e-10)
    assert_close(y.copy_to_host(), want, rtol=1e-5, atol=1e-6, name="y")
    assert_close(norm.copy_to_host(), want_norm, rtol=1e-5, name="norm")


def test_dx_only_and_dscale_only():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    scale = np.array([1.0, 2.0, 3.0], np.float32)
    y = cuda.device_array(x.shape, np.float32)
    norm = cuda.device_array((2, 4), np.float32)
    xd = cuda.to_device(x)
    K.normalize_fwd(xd, cuda.to_device(scale), y, norm, (2, 3, 4), False, 1e-10)
    want_dx, want_ds = normalize_bwd_fork_ref(x, dy, scale, False, 1e-10)
    dx = cuda.device_array(x.shape, np.float32)
    K.normalize_bwd(xd, y, cuda.to_device(dy), cuda.to_device(scale), norm, dx, None, (2, 3, 4), False)
    assert_close(dx.copy_to_host(), want_dx, rtol=1e-4, atol=1e-5, name="dx")
    ds = cuda.to_device(np.zeros(3, np.float32))
    K.normalize_bwd(xd, y, cuda.to_device(dy), cuda.to_device(scale), norm, None, ds, (2, 3, 4), False)
    assert_close(ds.copy_to_host(), want_ds, rtol=1e-4, atol=1e-5, name="dscale")
