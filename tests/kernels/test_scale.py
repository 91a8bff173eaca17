"""kernels/scale.py against tests/reference/scale.py over Caffe's axis/num_axes variants.

Tolerances: forward and dx rtol 1e-6 (one or two roundings; with a bias atol 1e-6 * max|x s|: an
FMA rounds once where Caffe rounds twice); ds/db (float32 reductions vs float64 reference) atol
1e-5 * sum|terms| + 1e-6.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from kernels import reduce as R
from kernels import scale as K
from tests.helpers import assert_close
from tests.reference import scale as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS),
                   st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))
EXAMPLES = min(settings.default.max_examples, 20)   # per variant: 6 variants (GPU profile time)
# (axis, num_axes): Caffe's default (1, 1), the channel+height block, a scalar, the height, a
# per-element scale (axis 0, all axes: Caffe's is_eltwise) and a negative axis
VARIANTS = [(1, 1), (1, 2), (1, 0), (2, 1), (0, -1), (-1, 1)]


def _sum_tol(terms):
    return 1e-5 * float(np.abs(terms).sum()) + 1e-6


@contextmanager
def reduction_path(parts):
    """The backward's reduction path: None = v2 with ``reduce.channel_parts``'s own choice, 1 = v1
    (a block per channel), 0 or > 1 = v2 with that many blocks per channel (0: a thread each)."""
    with pytest.MonkeyPatch.context() as mp:
        if parts == 1:
            mp.setitem(K.PROMOTED, "scale_bwd", "v1")
        elif parts is not None:
            mp.setattr(R, "channel_parts", lambda dim, per_channel: parts)
        yield


@pytest.mark.parametrize("axis,num_axes", VARIANTS)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=st.integers(0, 2**16), bias=st.booleans(), in_place=st.booleans(),
       accumulate=st.booleans(), parts=st.sampled_from([None, 0, 1, 2]))
def test_scale(axis, num_axes, shape, seed, bias, in_place, accumulate, parts):
    """parts: None = the cached choice, 0 = thread per channel, 1 = v1, 2 = v2 split channels."""
    rng = np.random.default_rng(seed)
    outer, dim, inner = ref.scale_dims(shape, axis, num_axes)
    x = rng.standard_normal(shape).astype(np.float32)
    s = rng.standard_normal(dim).astype(np.float32)
    b = rng.standard_normal(dim).astype(np.float32) if bias else None
    dx_ = cuda.to_device(x)
    y = dx_ if in_place else cuda.to_device(np.full(shape, np.nan, np.float32))
    K.scale_fwd(dx_, cuda.to_device(s), None if b is None else cuda.to_device(b), y, outer, dim, inner)
    xs_max = float(np.abs(x.reshape(outer, dim, inner) * s[None, :, None]).max())
    assert_close(y.copy_to_host(), ref.scale_fwd_ref(x, s, b, outer, dim, inner), 1e-6,
                 1e-6 * max(1.0, xs_max),
                 "scale fwd")

    dy = rng.standard_normal(shape).astype(np.float32)
    want_dx, want_ds, want_db = ref.scale_bwd_ref(x, s, dy, outer, dim, inner)
    ds0 = rng.standard_normal(dim).astype(np.float32)
    db0 = rng.standard_normal(dim).astype(np.float32)
    ds, db = cuda.to_device(ds0), cuda.to_device(db0)
    ddy = cuda.to_device(dy)
    dxd = ddy if in_place else cuda.to_device(np.full(shape, np.nan, np.float32))
    with reduction_path(parts):
        K.scale_bwd(cuda.to_device(x), cuda.to_device(s), ddy, dxd, ds, outer, dim, inner,
                    accumulate_ds=accumulate, db=db if bias else None)
    assert_close(dxd.copy_to_host(), want_dx, 1e-6, 0, "dx")
    terms = (dy * x).reshape(outer, dim, inner)
    base_s = ds0.astype(np.float64) if accumulate else 0.0
    assert_close(ds.copy_to_host(), base_s + want_ds, 0, _sum_tol(terms), "ds")
    if bias:
        assert_close(db.copy_to_host(), db0.astype(np.float64) + want_db, 0, _sum_tol(dy), "db")
    else:
        np.testing.assert_array_equal(db.copy_to_host(), db0)   # untouched


@pytest.mark.parametrize("parts", [0, 1, 2])
def test_bias_only_and_skips(parts):
    """db alone (frozen scale) accumulates; dx=None and ds=None skip their outputs (v1 and v2)."""
    rng = np.random.default_rng(3)
    outer, dim, inner = 2, 3, 5
    x = rng.standard_normal(outer * dim * inner).astype(np.float32)
    dy = rng.standard_normal(outer * dim * inner).astype(np.float32)
    s = rng.standard_normal(dim).astype(np.float32)
    db = cuda.to_device(np.ones(dim, np.float32))
    with reduction_path(parts):
        K.scale_bwd(cuda.to_device(x), cuda.to_device(s), cuda.to_device(dy), None, None, outer, dim,
                    inner, db=db)
    want = 1 + dy.reshape(outer, dim, inner).astype(np.float64).sum(axis=(0, 2))
    assert_close(db.copy_to_host(), want, 0, _sum_tol(dy))


def test_errors():
    a = cuda.to_device(np.zeros(12, np.float32))
    s = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="expected dim = 4"):
        K.scale_fwd(a, s, None, a, 1, 4, 3)
    with pytest.raises(ValueError, match="x has 12 elements"):
        K.scale_fwd(a, s, None, a, 2, 3, 3)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("axis,num_axes", [(1, 1), (2, 1), (0, -1)])
def test_elementwise_versions(axis, num_axes, version, monkeypatch):
    """Flat (v1) and block-per-row (v2, here on rows shorter than a warp too) elementwise kernels:
    y with and without bias, and dx."""
    monkeypatch.setattr(K, "ROW_MIN_INNER", 0)
    monkeypatch.setitem(K.PROMOTED, "scale_fwd", version)
    monkeypatch.setitem(K.PROMOTED, "scale_bwd", version)
    rng = np.random.default_rng(17)
    shape = (2, 3, 4, 5)
    outer, dim, inner = ref.scale_dims(shape, axis, num_axes)
    x = rng.standard_normal(shape).astype(np.float32)
    s = rng.standard_normal(dim).astype(np.float32)
    b = rng.standard_normal(dim).astype(np.float32)
    for bias in (None, b):
        y = cuda.to_device(np.full(shape, np.nan, np.float32))
        K.scale_fwd(cuda.to_device(x), cuda.to_device(s), None if bias is None else cuda.to_device(bias),
                    y, outer, dim, inner)
        assert_close(y.copy_to_host(), ref.scale_fwd_ref(x, s, bias, outer, dim, inner), 1e-6, 1e-6)
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    K.scale_bwd(cuda.to_device(x), cuda.to_device(s), cuda.to_device(dy), dx, None, outer, dim, inner)
    assert_close(dx.copy_to_host(), ref.scale_bwd_ref(x, s, dy, outer, dim, inner)[0], 1e-6, 0)
