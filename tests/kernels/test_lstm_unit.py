"""kernels/lstm_unit.py against Caffe's LSTMUnit equations (tests/reference/recurrent.py): forward
c, h and backward dc_prev, dX for drawn N, D and cont patterns (0, 1 and a fractional 0.5, which
Caffe folds into f), 1e-5 relative (float32 exp)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import lstm_unit as L
from tests.helpers import assert_close
from tests.reference.recurrent import lstm_unit_bwd_ref, lstm_unit_ref


@given(n=st.integers(1, 4), d=st.integers(1, 5), pattern=st.integers(0, 3**4 - 1))
def test_forward_and_backward_match_the_equations(n, d, pattern):
    rng = np.random.default_rng(pattern * 10 + n + d)
    c_prev = rng.standard_normal((n, d)).astype(np.float32)
    gates = (2 * rng.standard_normal((n, 4 * d))).astype(np.float32)
    cont = np.array([(0.0, 1.0, 0.5)[(pattern // 3**j) % 3] for j in range(n)], np.float32)
    dev = [cuda.to_device(a) for a in (c_prev, gates, cont)]
    c = cuda.to_device(np.full((n, d), np.nan, np.float32))
    h = cuda.to_device(np.full((n, d), np.nan, np.float32))
    L.lstm_unit_fwd(*dev, c, h)
    wc, wh = lstm_unit_ref(c_prev, gates, cont)
    assert_close(c.copy_to_host(), wc, 1e-5, 1e-6, name="c")
    assert_close(h.copy_to_host(), wh, 1e-5, 1e-6, name="h")
    dc, dh = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((n, d)).astype(np.float32)
    dcp = cuda.to_device(np.full((n, d), np.nan, np.float32))
    dx = cuda.to_device(np.full((n, 4 * d), np.nan, np.float32))
    L.lstm_unit_bwd(*dev, c, cuda.to_device(dc), cuda.to_device(dh), dcp, dx)
    want_dcp, want_dx = lstm_unit_bwd_ref(c_prev, gates, cont, dc, dh)
    assert_close(dcp.copy_to_host(), want_dcp, 1e-5, 1e-6, name="dc_prev")
    assert_close(dx.copy_to_host(), want_dx, 1e-5, 1e-6, name="dX")


def test_backward_independent_of_launch_geometry():
    n, d = 3, 5
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((n, d), (n, 4 * d))]
    cont = np.array([1, 0, 1], np.float32)
    c, h = (cuda.to_device(np.zeros((n, d), np.float32)) for _ in range(2))
    L.lstm_unit_fwd(cuda.to_device(arrays[0]), cuda.to_device(arrays[1]), cuda.to_device(cont), c, h)
    dc, dh = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    want = lstm_unit_bwd_ref(arrays[0], arrays[1], cont, dc, dh)
    for launch in [(1, 1), (2, 3), (1, 64)]:
        dcp = cuda.to_device(np.zeros(n * d, np.float32))
        dx = cuda.to_device(np.zeros(4 * n * d, np.float32))
        flat = [cuda.to_device(a.reshape(-1)) for a in (arrays[0], arrays[1], cont)]
        L.lstm_unit_bwd_v1[launch](*flat, c.reshape(n * d), cuda.to_device(dc.reshape(-1)),
                                   cuda.to_device(dh.reshape(-1)), dcp, dx, np.int64(n), np.int64(d))
        assert_close(dcp.copy_to_host().reshape(n, d), want[0], 1e-5, 1e-6, name=f"dc_prev {launch}")
        assert_close(dx.copy_to_host().reshape(n, 4 * d), want[1], 1e-5, 1e-6, name=f"dX {launch}")
