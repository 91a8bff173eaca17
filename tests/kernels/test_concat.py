"""kernels/concat.py against tests/reference/concat.py (loops) and np.concatenate: axes 0, 1, 2 of
NCHW blobs with 1-3 bottoms of different axis sizes, forward and backward. Copies: exact."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import concat as C
from tests.reference import concat as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

base_shapes = st.tuples(st.integers(1, MAX_BATCH), st.integers(1, MAX_CHANNELS),
                        st.integers(1, MAX_SPATIAL), st.integers(1, MAX_SPATIAL))


@pytest.mark.parametrize("axis", [0, 1, 2])
@given(base=base_shapes,
       extents=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_concat_and_slice(base, axis, extents, seed):
    rng = np.random.default_rng(seed)
    shapes = []
    for e in extents:
        s = list(base)
        s[axis] = e
        shapes.append(tuple(s))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = ref.concat_ref(xs, axis)
    np.testing.assert_array_equal(want, np.concatenate(xs, axis=axis))   # the reference itself
    outer, inner = ref.outer_inner(want.shape, axis)
    y = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    C.concat_fwd_all([cuda.to_device(x) for x in xs], y, outer, extents, inner)
    np.testing.assert_array_equal(y.copy_to_host(), want)

    dy = rng.standard_normal(want.shape).astype(np.float32)
    pieces = ref.slice_ref(dy, axis, extents)
    dxs = [cuda.to_device(np.full(s, np.nan, np.float32)) for s in shapes]
    skip = len(dxs) - 1 if len(dxs) > 1 else None       # propagate_down false for the last one
    C.concat_bwd_all(cuda.to_device(dy), [None if j == skip else d for j, d in enumerate(dxs)],
                     outer, extents, inner)
    for j, (d, p) in enumerate(zip(dxs, pieces)):
        got = d.copy_to_host()
        if j == skip:
            assert np.isnan(got).all()
        else:
            np.testing.assert_array_equal(got, p)


def test_single_piece_round_trip():
    """concat_fwd / concat_bwd with an explicit offset in the middle of the top."""
    top = np.zeros((2, 5, 3), np.float32)
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    dtop = cuda.to_device(top)
    C.concat_fwd(cuda.to_device(x), dtop, 2, 2, 5, 2, 3)
    top[:, 2:4, :] = x
    np.testing.assert_array_equal(dtop.copy_to_host(), top)
    back = cuda.to_device(np.zeros_like(x))
    C.concat_bwd(dtop, back, 2, 2, 5, 2, 3)
    np.testing.assert_array_equal(back.copy_to_host(), x)


def test_errors():
    x = cuda.to_device(np.zeros(12, np.float32))
    y = cuda.to_device(np.zeros(30, np.float32))
    with pytest.raises(ValueError, match="exceed"):
        C.concat_fwd(x, y, 2, 2, 5, 4, 3)
    with pytest.raises(ValueError, match="bottom has 12 elements"):
        C.concat_fwd(x, y, 2, 3, 5, 0, 3)
    with pytest.raises(ValueError, match="top has 30 elements"):
        C.concat_bwd(y, x, 2, 2, 4, 0, 3)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_both_versions(axis, version, monkeypatch):
    """v1 (flat index) and v2 (block per row, here on rows shorter than a warp too) on the same
    blobs: forward and backward exact."""
    monkeypatch.setattr(C, "ROW_MIN_INNER", 0)
    monkeypatch.setitem(C.PROMOTED, "concat_fwd", version)
    monkeypatch.setitem(C.PROMOTED, "concat_bwd", version)
    rng = np.random.default_rng(axis)
    base = [2, 3, 4, 5]
    shapes = []
    for e in (1, 3):
        s = list(base)
        s[axis] = e
        shapes.append(tuple(s))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = np.concatenate(xs, axis=axis)
    outer, inner = ref.outer_inner(want.shape, axis)
    y = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    C.concat_fwd_all([cuda.to_device(x) for x in xs], y, outer, [1, 3], inner)
    np.testing.assert_array_equal(y.copy_to_host(), want)
    dxs = [cuda.to_device(np.full(s, np.nan, np.float32)) for s in shapes]
    C.concat_bwd_all(y, dxs, outer, [1, 3], inner)
    for d, x in zip(dxs, xs):
        np.testing.assert_array_equal(d.copy_to_host(), x)
