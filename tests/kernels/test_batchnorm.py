"""kernels/batchnorm.py against tests/reference/batchnorm.py: TRAIN statistics, running-average
update over several iterations, global-stats mode (incl. blob2 == 0), normalize, backward.

Tolerances: statistics atol 1e-5 * scale (float32 reductions vs float64), normalize and backward
rtol/atol 1e-5 (reductions inside; dx atol scaled by max|dx|), running averages rtol 2e-6 with
atol 1e-6 * max|blob| (a GPU FMA rounds once where Caffe's axpby rounds twice).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import batchnorm as B
from kernels import reduce as R
from tests.helpers import assert_close
from tests.reference import batchnorm as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS),
                   st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))
EPS = 1e-5


def _nan(shape):
    return cuda.to_device(np.full(shape, np.nan, np.float32))


@contextmanager
def reduction_path(parts):
    """The statistics' and the backward's reduction path: None = v2 with ``reduce.channel_parts``'s
    own choice, 1 = v1 (a block per channel), 0 or > 1 = v2 with that many blocks per channel (0:
    a thread each)."""
    with pytest.MonkeyPatch.context() as mp:
        if parts == 1:
            mp.setitem(B.PROMOTED, "channel_mean_var", "v1")
            mp.setitem(B.PROMOTED, "batchnorm_bwd", "v1")
        elif parts is not None:
            mp.setattr(R, "channel_parts", lambda dim, per_channel: parts)
        yield


@given(shape=shapes, seed=st.integers(0, 2**16), offset=st.sampled_from([0.0, 3.0]),
       in_place=st.booleans(), parts=st.sampled_from([None, 0, 1, 3]))
def test_train_forward_backward_and_running_average(shape, seed, offset, in_place, parts):
    """parts: None = the cached choice, 0 = thread per channel, 1 = v1, 3 = v2 split channels."""
    rng = np.random.default_rng(seed)
    n, c = shape[0], shape[1]
    s = shape[2] * shape[3]
    maf = 0.9
    run_mean = np.zeros(c, np.float32)
    run_var = np.zeros(c, np.float32)
    run_factor = np.zeros(1, np.float32)
    d_rm, d_rv, d_rf = cuda.to_device(run_mean), cuda.to_device(run_var), cuda.to_device(run_factor)
    for it in range(2):      # two TRAIN iterations: the moving averages compound
        x = (rng.standard_normal(shape) * 2 + offset).astype(np.float32)
        dx_ = cuda.to_device(x)
        mean, var = _nan(c), _nan(c)
        with reduction_path(parts):
            B.channel_mean_var(dx_, mean, var, n, c, s)
        want_mean, want_var = ref.mean_var_ref(x, n, c, s)
        scale = float(np.abs(x).max()) + 1
        assert_close(mean.copy_to_host(), want_mean, 0, 1e-5 * scale, f"mean it{it}")
        assert_close(var.copy_to_host(), want_var, 1e-5, 1e-5 * scale, f"var it{it}")

        B.batchnorm_running_update(mean, var, d_rm, d_rv, d_rf, maf, n * s)
        ref.running_update_ref(mean.copy_to_host(), var.copy_to_host(), run_mean, run_var,
                               run_factor, maf, n * s)
        assert_close(d_rf.copy_to_host(), run_factor, 0, 0, "blob2")
        # maf * blob + stat may cancel and may be one FMA on a GPU: atol scaled by magnitude
        assert_close(d_rm.copy_to_host(), run_mean, 2e-6, 1e-6 * max(1.0, np.abs(run_mean).max()),
                     "blob0")
        assert_close(d_rv.copy_to_host(), run_var, 2e-6, 1e-6 * max(1.0, np.abs(run_var).max()),
                     "blob1")
        if it == 0:
            continue     # normalize and backward once (simulator time), on the second batch

        y = dx_ if in_place else _nan(shape)
        inv_std = _nan(c)
        B.batchnorm_fwd(dx_, mean, var, EPS, y, inv_std, n, c, s)
        want_y, want_inv = ref.normalize_ref(x, mean.copy_to_host().astype(np.float64),
                                             var.copy_to_host(), EPS, n, c, s)
        assert_close(inv_std.copy_to_host(), want_inv, 1e-6, 0, "inv_std")
        y_host = y.copy_to_host()
        assert_close(y_host, want_y, 1e-5, 1e-5, "y")

        dy = rng.standard_normal(shape).astype(np.float32)
        ddy = cuda.to_device(dy)
        dxd = ddy if in_place else _nan(shape)
        with reduction_path(parts):
            B.batchnorm_bwd(y, ddy, inv_std, dxd, n, c, s, use_global_stats=False)
        want_dx = ref.backward_ref(y_host, dy, inv_std.copy_to_host(), n, c, s, False)
        assert_close(dxd.copy_to_host(), want_dx, 1e-5, 1e-5 * float(np.abs(want_dx).max() + 1),
                     "dx train")
    np.testing.assert_allclose(run_factor, np.float32(0.9 + 1), rtol=1e-7)


@given(shape=shapes, seed=st.integers(0, 2**16), factor=st.sampled_from([0.0, 1.0, 1.9, 9.5]))
def test_global_stats(shape, seed, factor):
    rng = np.random.default_rng(seed)
    n, c = shape[0], shape[1]
    s = shape[2] * shape[3]
    run_mean = rng.standard_normal(c).astype(np.float32)
    run_var = (rng.random(c) * 3).astype(np.float32)
    run_factor = np.array([factor], np.float32)
    mean, var = _nan(c), _nan(c)
    B.batchnorm_global_stats(cuda.to_device(run_mean), cuda.to_device(run_var),
                             cuda.to_device(run_factor), mean, var)
    want_mean, want_var = ref.global_stats_ref(run_mean, run_var, run_factor)
    assert_close(mean.copy_to_host(), want_mean, 1e-6, 0, "global mean")
    assert_close(var.copy_to_host(), want_var, 1e-6, 0, "global var")

    x = rng.standard_normal(shape).astype(np.float32)
    y, inv_std = _nan(shape), _nan(c)
    B.batchnorm_fwd(cuda.to_device(x), mean, var, EPS, y, inv_std, n, c, s)
    want_y, want_inv = ref.normalize_ref(x, want_mean.astype(np.float64), want_var, EPS, n, c, s)
    assert_close(y.copy_to_host(), want_y, 1e-5, 1e-5, "y global")
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = _nan(shape)
    B.batchnorm_bwd(y, cuda.to_device(dy), inv_std, dx, n, c, s, use_global_stats=True)
    want_dx = ref.backward_ref(want_y, dy, inv_std.copy_to_host(), n, c, s, True)
    assert_close(dx.copy_to_host(), want_dx, 1e-6, 1e-7, "dx global")


@pytest.mark.parametrize("parts", [0, 1, 2, 5])
def test_every_reduction_path(parts):
    """Statistics and backward on one fixed blob through each path (thread per channel, block per
    channel, split channels) against the reference."""
    rng = np.random.default_rng(11)
    n, c, s = 3, 2, 13
    x = (rng.standard_normal((n, c, s)) + 1).astype(np.float32)
    mean, var = _nan(c), _nan(c)
    with reduction_path(parts):
        B.channel_mean_var(cuda.to_device(x), mean, var, n, c, s)
    want_mean, want_var = ref.mean_var_ref(x, n, c, s)
    assert_close(mean.copy_to_host(), want_mean, 1e-5, 1e-6, "mean")
    assert_close(var.copy_to_host(), want_var, 1e-5, 1e-6, "var")
    y, inv_std = _nan((n, c, s)), _nan(c)
    B.batchnorm_fwd(cuda.to_device(x), mean, var, EPS, y, inv_std, n, c, s)
    dy = rng.standard_normal((n, c, s)).astype(np.float32)
    dx = _nan((n, c, s))
    with reduction_path(parts):
        B.batchnorm_bwd(y, cuda.to_device(dy), inv_std, dx, n, c, s, False)
    want = ref.backward_ref(y.copy_to_host(), dy, inv_std.copy_to_host(), n, c, s, False)
    assert_close(dx.copy_to_host(), want, 1e-5, 1e-5, "dx")


def test_single_value_per_channel():
    """m == 1: variance 0, y = 0, the running variance uses correction factor 1 (not m/(m-1))."""
    x = np.array([[[2.0]], [[-3.0]]], np.float32).reshape(1, 2, 1)
    mean, var = _nan(2), _nan(2)
    B.channel_mean_var(cuda.to_device(x), mean, var, 1, 2, 1)
    np.testing.assert_array_equal(mean.copy_to_host(), [2.0, -3.0])
    np.testing.assert_array_equal(var.copy_to_host(), [0.0, 0.0])
    rm, rv = cuda.to_device(np.ones(2, np.float32)), cuda.to_device(np.ones(2, np.float32))
    rf = cuda.to_device(np.ones(1, np.float32))
    B.batchnorm_running_update(mean, var, rm, rv, rf, 0.5, 1)
    np.testing.assert_array_equal(rm.copy_to_host(), [2.5, -2.5])
    np.testing.assert_array_equal(rv.copy_to_host(), [0.5, 0.5])
    np.testing.assert_array_equal(rf.copy_to_host(), [1.5])


def test_errors():
    x = cuda.to_device(np.zeros(12, np.float32))
    c3 = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="expected n\\*c\\*s"):
        B.channel_mean_var(x, c3, c3, 2, 3, 3)
    with pytest.raises(ValueError, match="expected c = 4"):
        B.batchnorm_fwd(x, c3, c3, EPS, x, c3, 1, 4, 3)
    with pytest.raises(ValueError, match="one float32"):
        B.batchnorm_global_stats(c3, c3, c3, c3, c3)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_every_version(version, monkeypatch):
    """Each version of the three functions on one blob (rows shorter than a warp take the row
    kernels here, and the channels two blocks each): v1 flat normalize and fused backward, v2 row
    normalize, split statistics and flat apply (row global), v3 row apply."""
    monkeypatch.setattr(B, "ROW_MIN_INNER", 0)
    monkeypatch.setattr(R, "channel_parts", lambda dim, per_channel: 2)
    monkeypatch.setitem(B.PROMOTED, "channel_mean_var", "v1" if version == "v1" else "v2")
    monkeypatch.setitem(B.PROMOTED, "batchnorm_fwd", "v1" if version == "v1" else "v2")
    monkeypatch.setitem(B.PROMOTED, "batchnorm_bwd", version)
    rng = np.random.default_rng(23)
    n, c, s = 2, 3, 10
    x = rng.standard_normal((n, c, s)).astype(np.float32)
    mean, var = _nan(c), _nan(c)
    B.channel_mean_var(cuda.to_device(x), mean, var, n, c, s)
    y, inv_std = _nan((n, c, s)), _nan(c)
    B.batchnorm_fwd(cuda.to_device(x), mean, var, EPS, y, inv_std, n, c, s)
    want_y, want_inv = ref.normalize_ref(x, mean.copy_to_host().astype(np.float64),
                                         var.copy_to_host(), EPS, n, c, s)
    assert_close(inv_std.copy_to_host(), want_inv, 1e-6, 0, "inv_std")
    assert_close(y.copy_to_host(), want_y, 1e-5, 1e-5, "y")
    dy = rng.standard_normal((n, c, s)).astype(np.float32)
    for use_global in (False, True):
        dx = _nan((n, c, s))
        B.batchnorm_bwd(y, cuda.to_device(dy), inv_std, dx, n, c, s, use_global)
        want = ref.backward_ref(y.copy_to_host(), dy, inv_std.copy_to_host(), n, c, s, use_global)
        assert_close(dx.copy_to_host(), want, 1e-5, 1e-5, f"dx global={use_global}")
