"""kernels/mvn.py against tests/reference/caffe_extra.py's loops (Caffe's MVN forward and its
backward expression), hypothesis-drawn shapes and flags, in place and not."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import mvn as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@given(n=st.integers(1, MAX_BATCH), c=st.integers(1, MAX_CHANNELS), h=st.integers(1, MAX_SPATIAL),
       w=st.integers(1, MAX_SPATIAL), normalize=st.booleans(), across=st.booleans(),
       eps=st.sampled_from([1e-9, 0.1]), seed=st.integers(0, 2**31 - 1), in_place=st.booleans())
def test_mvn(n, c, h, w, normalize, across, eps, seed, in_place):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) * 3 + 1).astype(np.float32)
    dyv = rng.standard_normal((n, c, h, w)).astype(np.float32)
    rows = n if across else n * c
    dim = x.size // rows
    xd = cuda.to_device(x.reshape(-1))
    y = xd if in_place else cuda.to_device(np.zeros(x.size, np.float32))
    mean, std = cuda.to_device(np.zeros(rows, np.float32)), cuda.to_device(np.zeros(rows, np.float32))
    K.mvn_fwd(xd, y, mean, std, rows, dim, normalize, eps)
    y_ref = ref.mvn_ref(x, normalize, across, eps)
    # a single-value row normalizes 0 / eps: exact 0 both ways
    assert_close(y.copy_to_host(), y_ref.reshape(-1), 2e-4, 2e-5, name="y")
    assert_close(mean.copy_to_host(), x.reshape(rows, dim).astype(np.float64).mean(1), 1e-5, 1e-5,
                 name="mean")
    dx = cuda.to_device(dyv.reshape(-1))
    K.mvn_bwd(y, dx, std, dx, rows, dim, normalize)          # in place: dx is dy
    dx_ref = ref.mvn_grad_ref(x, dyv, normalize, across, eps)
    assert_close(dx.copy_to_host(), dx_ref.reshape(-1), 2e-3, 2e-4, name="dx")
