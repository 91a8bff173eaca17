"""kernels/activation_extra.py (Clip, Threshold, Swish, PReLU) against the float64 loops of
tests/reference/caffe_extra.py, hypothesis-drawn shapes and parameters, in place and not."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import activation_extra as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_ELEMENTS, MAX_SPATIAL

N_MAX = min(MAX_ELEMENTS, 1 << 15)     # the references are Python loops

PARAM = st.floats(-2, 2, allow_nan=False, width=32)


def _x(n, seed, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@given(n=st.integers(0, N_MAX), lo=PARAM, width=st.floats(0, 3, width=32),
       seed=st.integers(0, 2**31 - 1), in_place=st.booleans())
def test_clip(n, lo, width, seed, in_place):
    hi = np.float32(lo + width)
    x = _x(n, seed)
    x[: n // 4] = np.float32(lo)                  # the bounds are inside the window (>=, <=)
    dx_ref = ref.clip_grad_ref(x, np.ones(n), lo, hi)
    d = cuda.to_device(x)
    out = d if in_place else cuda.to_device(np.full(n, 9, np.float32))
    K.clip_fwd(d, out, lo, hi)
    assert_close(out.copy_to_host(), ref.clip_ref(x, np.float32(lo), hi), 0, 0, name="y")
    dy = cuda.to_device(np.ones(n, np.float32))
    K.clip_bwd(cuda.to_device(x), dy, dy, lo, hi)
    assert_close(dy.copy_to_host(), dx_ref, 0, 0, name="dx")


def test_clip_nan_gives_lo():
    d = cuda.to_device(np.array([np.nan, -5, 5, 0.25], np.float32))
    K.clip_fwd(d, d, -1.0, 1.0)
    np.testing.assert_array_equal(d.copy_to_host(), [-1, -1, 1, 0.25])


@given(n=st.integers(0, N_MAX), t=PARAM, seed=st.integers(0, 2**31 - 1))
def test_threshold(n, t, seed):
    x = _x(n, seed)
    x[: n // 5] = np.float32(t)                     # x == t gives 0 (strictly greater)
    y = cuda.to_device(np.full(n, 7, np.float32))
    K.threshold_fwd(cuda.to_device(x), y, t)
    assert_close(y.copy_to_host(), ref.threshold_ref(x, np.float32(t)), 0, 0)


@given(n=st.integers(0, N_MAX), beta=st.floats(-3, 3, width=32), seed=st.integers(0, 2**31 - 1))
def test_swish(n, beta, seed):
    x = _x(n, seed, 4.0)
    dyv = _x(n, seed + 1, 1.0)
    d = cuda.to_device(x)
    y, s = cuda.to_device(np.zeros(n, np.float32)), cuda.to_device(np.zeros(n, np.float32))
    K.swish_fwd(d, y, s, beta)
    assert_close(y.copy_to_host(), ref.swish_ref(x, beta), 1e-5, 1e-6, name="y")
    dx = cuda.to_device(dyv)
    K.swish_bwd(y, s, dx, dx, beta)                 # in place: dx is dy
    assert_close(dx.copy_to_host(), ref.swish_grad_ref(x, dyv, beta), 1e-4, 1e-5, name="dx")


@given(n=st.integers(1, MAX_BATCH), c=st.integers(1, MAX_CHANNELS), s=st.integers(0, MAX_SPATIAL),
       shared=st.booleans(), seed=st.integers(0, 2**31 - 1), in_place=st.booleans())
def test_prelu(n, c, s, shared, seed, in_place):
    shape = (n, c, s, 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = 0                          # x == 0 takes the negative side in backward
    slope = rng.standard_normal(1 if shared else c).astype(np.float32)
    dyv = rng.standard_normal(shape).astype(np.float32)
    dim = s * 2
    xd = cuda.to_device(x.reshape(-1))
    out = xd if in_place else cuda.to_device(np.zeros(x.size, np.float32))
    K.prelu_fwd(xd, cuda.to_device(slope), out, c, dim, shared)
    assert_close(out.copy_to_host(), ref.prelu_ref(x, slope, shared).reshape(-1), 1e-6, 1e-7, name="y")
    dx_ref, ds_ref = ref.prelu_grad_ref(x, slope, dyv, shared)
    dx = cuda.to_device(dyv.reshape(-1))
    ds = cuda.to_device(np.full(slope.shape, 0.5, np.float32))          # accumulates
    K.prelu_bwd(cuda.to_device(x.reshape(-1)), cuda.to_device(slope), dx, dx, ds, c, dim, shared)
    assert_close(dx.copy_to_host(), dx_ref.reshape(-1), 1e-6, 1e-7, name="dx")
    assert_close(ds.copy_to_host(), ds_ref + 0.5, 1e-5, 1e-5, name="dslope")
