"""kernels/bias.py: bias_fwd (y += b[c]) exactly, bias_bwd (db += sum over n, s) against a float64
sum with rtol 1e-5 (float32 tree sum of <= N*S terms), accumulating onto a nonzero db."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import bias as B
from tests.helpers import assert_close
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS + 2),
                   st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_bias_fwd(shape, seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    d = cuda.to_device(y)
    B.bias_fwd(d, cuda.to_device(b))
    np.testing.assert_array_equal(d.copy_to_host(), y + b[None, :, None, None])


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_bias_bwd_accumulates(shape, seed):
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(shape).astype(np.float32)
    db0 = rng.standard_normal(shape[1]).astype(np.float32)
    db = cuda.to_device(db0)
    B.bias_bwd(cuda.to_device(dy), db)
    want = db0.astype(np.float64) + dy.astype(np.float64).sum(axis=(0, 2, 3))
    assert_close(db.copy_to_host(), want, rtol=1e-5, atol=1e-5, name="bias_bwd")


def test_bias_bwd_many_elements_per_thread():
    """N*S = 429 larger than the 256-thread block: each thread sums several elements."""
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((3, 2, 11, 13)).astype(np.float32)
    db = cuda.to_device(np.zeros(2, np.float32))
    B.bias_bwd(cuda.to_device(dy), db)
    assert_close(db.copy_to_host(), dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_bias_shape_error():
    with pytest.raises(ValueError, match="bias shape"):
        B.bias_fwd(cuda.to_device(np.zeros((1, 3, 2), np.float32)), cuda.to_device(np.zeros(4, np.float32)))
