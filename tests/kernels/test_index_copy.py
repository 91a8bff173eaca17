"""kernels/index_copy.py (Crop, Tile, Embed, the BatchReindex/Filter row gathers and scatters)
against tests/reference/caffe_extra.py, hypothesis-drawn shapes, offsets and indices."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import index_copy as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref


@st.composite
def crop_case(draw):
    ndim = draw(st.integers(1, 4))
    xs = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    ys = tuple(draw(st.integers(1, s)) for s in xs)
    off = tuple(draw(st.integers(0, x - y)) for x, y in zip(xs, ys))
    return xs, ys, off


@given(case=crop_case(), seed=st.integers(0, 2**31 - 1))
def test_crop(case, seed):
    xs, ys, off = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    y = cuda.to_device(np.zeros(ys, np.float32))
    K.crop_fwd(cuda.to_device(x), y, off)
    assert_close(y.copy_to_host(), ref.crop_ref(x, ys, 0, list(off)), 0, 0, name="y")
    dyv = rng.standard_normal(ys).astype(np.float32)
    dx = cuda.to_device(np.full(xs, 3, np.float32))
    K.crop_bwd(cuda.to_device(dyv), dx, off)
    assert_close(dx.copy_to_host(), ref.crop_grad_ref(xs, dyv, 0, list(off)), 0, 0, name="dx")


@given(outer=st.integers(0, 3), inner=st.integers(0, 5), tiles=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_tile(outer, inner, tiles, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((outer, inner)).astype(np.float32)
    y = cuda.to_device(np.zeros(outer * tiles * inner, np.float32))
    K.tile_fwd(cuda.to_device(x.reshape(-1)), y, outer, inner, tiles)
    assert_close(y.copy_to_host(), ref.tile_ref(x, 1, tiles).reshape(-1), 0, 0, name="y")
    dyv = rng.standard_normal(outer * tiles * inner).astype(np.float32)
    dx = cuda.to_device(np.full(outer * inner, 4, np.float32))
    K.tile_bwd(cuda.to_device(dyv), dx, outer, inner, tiles)
    assert_close(dx.copy_to_host(), ref.tile_grad_ref((outer, inner), dyv, 1, tiles).reshape(-1),
                 1e-6, 1e-6, name="dx")


@given(m=st.integers(0, 6), k=st.integers(1, 4), n=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_embed(m, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, m).astype(np.float32)          # repeats: the backward adds them up
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    y = cuda.to_device(np.zeros(m * n, np.float32))
    K.embed_fwd(cuda.to_device(idx), cuda.to_device(w.reshape(-1)), cuda.to_device(b) if bias else None,
                y, m, n, k)
    assert_close(y.copy_to_host(), ref.embed_ref(idx, w, b if bias else None).reshape(-1), 1e-6, 1e-6)
    dyv = rng.standard_normal((m, n)).astype(np.float32)
    dw = cuda.to_device(np.full(k * n, 0.5, np.float32))
    db = cuda.to_device(np.full(n, -1, np.float32))
    K.embed_bwd(cuda.to_device(idx), cuda.to_device(dyv.reshape(-1)), dw, db if bias else None, m, n, k)
    dw_ref, db_ref = ref.embed_grad_ref(idx, dyv, k)
    assert_close(dw.copy_to_host(), dw_ref.reshape(-1) + 0.5, 1e-5, 1e-6, name="dw")
    if bias:
        assert_close(db.copy_to_host(), db_ref - 1, 1e-5, 1e-6, name="db")


def test_embed_bad_index_gives_nan_rows():
    w = np.arange(6, dtype=np.float32)                       # (3, 2)
    y = cuda.to_device(np.zeros(8, np.float32))
    K.embed_fwd(cuda.to_device(np.array([1, 3, -1, 0.5], np.float32)), cuda.to_device(w), None, y, 4, 2, 3)
    out = y.copy_to_host().reshape(4, 2)
    np.testing.assert_array_equal(out[0], [2, 3])
    assert np.isnan(out[1:]).all()


@given(b=st.integers(1, 4), m=st.integers(0, 6), inner=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_take_rows(b, m, inner, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, inner)).astype(np.float32)
    perm = rng.integers(0, b, m).astype(np.float32)
    y = cuda.to_device(np.zeros(m * inner, np.float32))
    K.take_rows_fwd(cuda.to_device(x.reshape(-1)), cuda.to_device(perm), y, inner)
    assert_close(y.copy_to_host(), ref.batch_reindex_ref(x, perm).reshape(-1), 0, 0, name="y")
    dyv = rng.standard_normal((m, inner)).astype(np.float32)
    dx = cuda.to_device(np.full(b * inner, 2, np.float32))
    K.take_rows_bwd(cuda.to_device(dyv.reshape(-1)), cuda.to_device(perm), dx, inner)
    assert_close(dx.copy_to_host(), ref.batch_reindex_grad_ref((b, inner), perm, dyv).reshape(-1), 1e-6,
                 1e-6, name="dx")


@given(b=st.integers(1, 6), inner=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_put_rows(b, inner, seed):
    rng = np.random.default_rng(seed)
    sel = rng.integers(0, 2, b).astype(np.float32)
    keep = np.flatnonzero(sel)
    where = np.full(b, -1, np.float32)
    where[keep] = np.arange(len(keep))
    dyv = rng.standard_normal((len(keep), inner)).astype(np.float32)
    dx = cuda.to_device(np.full(b * inner, 5, np.float32))
    K.put_rows(cuda.to_device(dyv.reshape(-1)), cuda.to_device(where), dx, inner)
    assert_close(dx.copy_to_host(), ref.filter_grad_ref((b, inner), sel, dyv).reshape(-1), 0, 0)
