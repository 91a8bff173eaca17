"""kernels/pool.py against tests/reference/pool.py: max (value, argmax mask, gradient) and average
pooling (Caffe's padded divisor), with hypothesis geometry and the issue's edge cases; stochastic
pooling against tests/reference/stochastic_pool.py: the device's Philox uniforms equal the host's
(the same picks), TRAIN picks / TEST averages / backward routing for drawn shapes, kernels and
strides, and the gather backward at every launch geometry (picks and routed gradients exact, TEST
averages to 1e-5 relative).

Tolerances: max pooling is exact (a copy of one input; the gradient sums the same dy values in the
same order) -> rtol 0, atol 0 for y/mask, 1e-6 for dx; average pooling sums in float32 in the same
order as the reference -> rtol 1e-6, atol 1e-6.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import pool
from kernels._launch import promoted
from kernels.dropout import random_uint32_host
from tests.helpers import CAIArray, assert_close
from tests.reference import pool as ref
from tests.reference.stochastic_pool import sto_bwd_ref, sto_test_ref, sto_train_ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

ON_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


@st.composite
def geometries(draw):
    """(x shape, kernel, stride, pad) with Caffe's constraints pad < kernel <= size + 2*pad."""
    n = draw(st.integers(1, MAX_BATCH))
    c = draw(st.integers(1, MAX_CHANNELS))
    h = draw(st.integers(1, MAX_SPATIAL))
    w = draw(st.integers(1, MAX_SPATIAL))
    kernel, stride, pad = [], [], []
    for size in (h, w):
        k = draw(st.integers(1, size + 1))
        p = draw(st.integers(1 if k > size else 0, k - 1))
        s = draw(st.integers(1, k + 2))          # includes stride > kernel
        kernel.append(k)
        stride.append(s)
        pad.append(p)
    return (n, c, h, w), tuple(kernel), tuple(stride), tuple(pad)


def _input(shape, seed, ties):
    rng = np.random.default_rng(seed)
    if ties:   # small integers: many equal values in one window (first-max rule)
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32) * 3   # negative values included


def _out_hw(shape, kernel, stride, pad):
    any_pad = pad[0] > 0 or pad[1] > 0
    return (ref.pooled_size_ref(shape[2], kernel[0], pad[0], stride[0], any_pad=any_pad),
            ref.pooled_size_ref(shape[3], kernel[1], pad[1], stride[1], any_pad=any_pad))


def _check_max(x, kernel, stride, pad, out_hw=None, seed=0, version="v2"):
    out_hw = out_hw or _out_hw(x.shape, kernel, stride, pad)
    y_ref, mask_ref = ref.max_pool_fwd_ref(x, out_hw, kernel, stride, pad)
    d_x = cuda.to_device(x)
    d_y = cuda.device_array(y_ref.shape, np.float32)
    d_mask = cuda.device_array(y_ref.shape, np.int32)
    with promoted(pool.PROMOTED, max_pool_fwd=version):
        pool.max_pool_fwd(d_x, d_y, d_mask, kernel, stride, pad)
    np.testing.assert_array_equal(d_mask.copy_to_host(), mask_ref)
    assert_close(d_y.copy_to_host(), y_ref, rtol=0, atol=0, name="max pool y")

    dy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape).astype(np.float32)
    d_dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))   # must be overwritten
    with promoted(pool.PROMOTED, max_pool_bwd=version):
        pool.max_pool_bwd(cuda.to_device(dy), d_mask, d_dx, kernel, stride, pad)
    # v2 adds a pixel's terms in Caffe's order only when one chunk of covering outputs spans it
    # along w (3x3/2, 2x2/2); with more overlap (e.g. 5x10/1, up to 50 terms) the order differs,
    # so the sums agree to rounding (measured on the H200: 2e-6 relative), not bit for bit
    assert_close(d_dx.copy_to_host(), ref.max_pool_bwd_ref(x, dy, kernel, stride, pad),
                 rtol=1e-5, atol=1e-5, name="max pool dx")


def _assert_close_nan(actual, expected, rtol, atol, name):
    """assert_close where NaN must match NaN: an empty average window (stride > kernel, no pad, the
    ceil rule's last window starting past the image) divides 0 by 0 in Caffe too."""
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=f"{name}: NaN positions")
    assert_close(np.where(nan, 0, actual), np.where(nan, 0, expected), rtol=rtol, atol=atol, name=name)


def _check_ave(x, kernel, stride, pad, out_hw=None, seed=0, version="v2"):
    out_hw = out_hw or _out_hw(x.shape, kernel, stride, pad)
    y_ref = ref.ave_pool_fwd_ref(x, out_hw, kernel, stride, pad)
    d_y = cuda.device_array(y_ref.shape, np.float32)
    with promoted(pool.PROMOTED, ave_pool_fwd=version):
        pool.ave_pool_fwd(cuda.to_device(x), d_y, kernel, stride, pad)
    _assert_close_nan(d_y.copy_to_host(), y_ref, rtol=1e-6, atol=1e-6, name="ave pool y")

    dy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape).astype(np.float32)
    d_dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))
    with promoted(pool.PROMOTED, ave_pool_bwd=version):
        pool.ave_pool_bwd(cuda.to_device(dy), d_dx, kernel, stride, pad)
    _assert_close_nan(d_dx.copy_to_host(), ref.ave_pool_bwd_ref(x.shape, dy, kernel, stride, pad),
                      rtol=1e-6, atol=1e-6, name="ave pool dx")


VERSIONS = ("v1", "v2")


@pytest.mark.parametrize("version", VERSIONS)
@given(geom=geometries(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_matches_reference(version, geom, seed, ties):
    shape, kernel, stride, pad = geom
    _check_max(_input(shape, seed, ties), kernel, stride, pad, seed=seed, version=version)


@pytest.mark.parametrize("version", VERSIONS)
@given(geom=geometries(), seed=st.integers(0, 2**16))
def test_ave_pool_matches_reference(version, geom, seed):
    shape, kernel, stride, pad = geom
    _check_ave(_input(shape, seed, False), kernel, stride, pad, seed=seed, version=version)


EDGES = {
    # name: (x shape, kernel, stride, pad)
    "lenet 2x2 s2": ((1, 2, 6, 6), (2, 2), (2, 2), (0, 0)),
    "alexnet 3x3 s2 ceil": ((1, 1, 7, 7), (3, 3), (2, 2), (0, 0)),
    "1x1 kernel": ((2, 1, 3, 4), (1, 1), (1, 1), (0, 0)),
    "stride > kernel": ((1, 2, 7, 5), (2, 1), (3, 3), (0, 0)),
    "pad = kernel-1": ((1, 1, 4, 5), (3, 3), (1, 2), (2, 2)),
    "non-square": ((1, 2, 3, 7), (2, 4), (1, 2), (1, 0)),
    "global": ((2, 3, 5, 4), (5, 4), (1, 1), (0, 0)),
    "kernel = size + 1": ((1, 1, 3, 3), (4, 4), (1, 1), (1, 1)),
    # v2 backward chunk shapes: output pairs along h only, along w only; odd W (a row's last input
    # pair is one input); a window spanning the row (the pair's second index would be the next
    # row's first cell)
    "pairs rows only": ((1, 2, 6, 7), (3, 2), (1, 2), (0, 0)),
    "pairs columns only": ((1, 1, 6, 7), (2, 3), (2, 1), (0, 1)),
    "odd width 3x3 s2": ((2, 1, 5, 7), (3, 3), (2, 2), (1, 1)),
    "global odd width": ((1, 2, 3, 5), (3, 5), (1, 1), (0, 0)),
}


def test_ave_pool_empty_window_is_nan_as_caffe():
    """H=2, kernel 1, stride 2, no pad: the ceil rule gives 2 outputs, the second window [2,3) lies
    past the image and its pool_size is 0 -> 0/0 = NaN (max pooling gives -FLT_MAX, mask -1)."""
    assert ref.pooled_size_ref(2, 1, 0, 2) == 2
    x = np.ones((1, 1, 2, 1), np.float32)
    d_y = cuda.device_array((1, 1, 2, 1), np.float32)
    pool.ave_pool_fwd(cuda.to_device(x), d_y, (1, 1), (2, 1), 0)
    y = d_y.copy_to_host().ravel()
    assert y[0] == 1 and np.isnan(y[1])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(EDGES))
def test_pool_edges(name, version):
    shape, kernel, stride, pad = EDGES[name]
    x = _input(shape, 7, ties=name.startswith("global"))
    _check_max(x, kernel, stride, pad, version=version)
    _check_ave(x, kernel, stride, pad, version=version)


def test_max_pool_ties_keep_first():
    """A constant plane: every window's argmax is its first (top-left) cell, and the gradient of
    each output goes there only."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    d_y = cuda.device_array((1, 1, 2, 2), np.float32)
    d_mask = cuda.device_array((1, 1, 2, 2), np.int32)
    pool.max_pool_fwd(cuda.to_device(x), d_y, d_mask, 3, 1, 0)
    np.testing.assert_array_equal(d_mask.copy_to_host()[0, 0], [[0, 1], [4, 5]])
    d_dx = cuda.device_array(x.shape, np.float32)
    pool.max_pool_bwd(cuda.to_device(np.ones((1, 1, 2, 2), np.float32)), d_mask, d_dx, 3, 1, 0)
    np.testing.assert_array_equal(d_dx.copy_to_host()[0, 0],
                                  [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_max_pool_all_minus_inf():
    """Caffe starts from -FLT_MAX with a strict '>': a window of -inf gives y=-FLT_MAX, mask=-1 and
    no gradient."""
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    d_y = cuda.device_array((1, 1, 1, 1), np.float32)
    d_mask = cuda.device_array((1, 1, 1, 1), np.int32)
    pool.max_pool_fwd(cuda.to_device(x), d_y, d_mask, 2, 2, 0)
    assert d_y.copy_to_host()[0, 0, 0, 0] == -np.finfo(np.float32).max
    assert d_mask.copy_to_host()[0, 0, 0, 0] == -1
    d_dx = cuda.device_array(x.shape, np.float32)
    pool.max_pool_bwd(cuda.to_device(np.ones((1, 1, 1, 1), np.float32)), d_mask, d_dx, 2, 2, 0)
    assert not d_dx.copy_to_host().any()


def test_ave_pool_divisor_counts_padding():
    """3x3 input, kernel 3, pad 1, stride 2 -> 2x2 output; the corner window [-1,2)x[-1,2) divides
    by 9 (all inside the padded extent), not by the 4 real cells."""
    x = np.ones((1, 1, 3, 3), np.float32)
    d_y = cuda.device_array((1, 1, 2, 2), np.float32)
    pool.ave_pool_fwd(cuda.to_device(x), d_y, 3, 2, 1)
    assert_close(d_y.copy_to_host()[0, 0], np.array([[4, 4], [4, 4]], np.float32) / 9,
                 rtol=1e-7, atol=0, name="ave padded divisor")
    # kernel 2, stride 2, pad 1 on 3 cells: windows [-1,1), [1,3); ceil gives 3 outputs, but the
    # last would start at 3 >= H + pad = 4? no: (3-1)*2 = 4 >= 4 -> dropped; the divisor of the
    # window [1,3) is 2 (clipped at H + pad = 4 only)
    d_y = cuda.device_array((1, 1, 2, 2), np.float32)
    assert ref.pooled_size_ref(3, 2, 1, 2) == 2
    pool.ave_pool_fwd(cuda.to_device(x), d_y, 2, 2, 1)
    assert_close(d_y.copy_to_host()[0, 0], np.array([[1, 2], [2, 4]], np.float32) / 4,
                 rtol=1e-7, atol=0, name="ave clipped divisor")


def test_reference_pooled_size_known_values():
    """The reference's output sizes (which size these tests' outputs) on known Caffe layers."""
    assert ref.pooled_size_ref(28, 2, 0, 2) == 14             # LeNet
    assert ref.pooled_size_ref(55, 3, 0, 2) == 27             # AlexNet pool1 (ceil)
    assert ref.pooled_size_ref(56, 3, 0, 2) == 28             # ceil: 27.5 -> 28 (+1)
    assert ref.pooled_size_ref(56, 3, 0, 2, "FLOOR") == 27
    assert ref.pooled_size_ref(5, 1, 0, 3) == 3               # no pad: nothing dropped
    assert ref.pooled_size_ref(5, 1, 0, 3, any_pad=True) == 2  # pad on the other axis: last dropped


def test_pool_accepts_cuda_array_interface_objects():
    x = _input((1, 2, 4, 4), 3, False)
    y_ref, mask_ref = ref.max_pool_fwd_ref(x, (2, 2), (2, 2), (2, 2), (0, 0))
    y = CAIArray(np.zeros(y_ref.shape, np.float32))
    mask = CAIArray(np.zeros(y_ref.shape, np.int32))
    pool.max_pool_fwd(CAIArray(x), y, mask, 2, 2, 0)
    assert_close(y.to_host(), y_ref, rtol=0, atol=0, name="CAI max pool")
    np.testing.assert_array_equal(mask.to_host(), mask_ref)


def test_pool_rejects_bad_arguments():
    d_x = cuda.device_array((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError):
        pool.ave_pool_fwd(d_x, cuda.device_array((2, 1, 2, 2), np.float32), 2, 2, 0)
    with pytest.raises(TypeError):
        pool.ave_pool_fwd(np.zeros((1, 1, 4, 4), np.float32),
                          cuda.device_array((1, 1, 2, 2), np.float32), 2, 2, 0)
    with pytest.raises(TypeError):
        pool.ave_pool_fwd(cuda.device_array((1, 1, 4, 4), np.float64),
                          cuda.device_array((1, 1, 2, 2), np.float32), 2, 2, 0)


# ------------------------------------------------------------------------ v2 special paths

@given(geom=geometries(), seed=st.integers(0, 2**16), ties=st.booleans(), frac=st.floats(0, 1))
def test_v2_forward_bands_and_fallback(geom, seed, ties, frac):
    """A tile smaller than one plane: v2's forward splits the output rows into bands (input rows
    of neighbouring bands overlap when kernel > stride), or, when not even one output row's
    input rows fit, falls back to v1; either way the results are Caffe's."""
    shape, kernel, stride, pad = geom
    n, c, h, w = shape
    band = max(1, int(frac * (h * w - 1)))       # < one plane whenever the plane has 2+ cells
    out_hw = _out_hw(shape, kernel, stride, pad)
    plan = pool._fwd_plan(n * c, h, w, *out_hw, kernel[0], stride[0], pad[0], band,
                          pool.V2_THREADS, pool._MAX_GRID_Y)
    if plan is not None:                         # the planes of a block fit the tile
        assert plan[3] * plan[1][1] <= band and plan[2] >= 1
    old = pool._BAND_FLOATS
    pool._BAND_FLOATS = band
    try:
        x = _input(shape, seed, ties)
        _check_max(x, kernel, stride, pad, seed=seed, version="v2")
        _check_ave(x, kernel, stride, pad, seed=seed, version="v2")
    finally:
        pool._BAND_FLOATS = old


@pytest.mark.parametrize("shape, kernel, stride, pad", [
    ((1, 1, 5, 300), (3, 3), (1, 1), (0, 0)),     # rows of 298 outputs: longer than a block's TX
    ((1, 2, 7, 131), (3, 3), (2, 2), (1, 1)),     # 3-wide windows, clipped at both edges
    ((2, 1, 9, 70), (2, 3), (1, 2), (0, 1))])
def test_v2_forward_wide_rows(shape, kernel, stride, pad):
    """max_pool_fwd_v2 steps each thread's output index by the block width TX and carries it into
    (row, column) without a division: output rows longer than TX, and the straight-line path of
    whole 3-wide window rows next to clipped ones, keep Caffe's values and first-max masks."""
    for ties in (False, True):
        _check_max(_input(shape, 3, ties), kernel, stride, pad, version="v2")


def test_v2_band_rows_overlap():
    """AlexNet's 3x3/2 with a tile of 3 input rows: one output row per band, each band reloading
    the row it shares with the previous one."""
    shape, kernel, stride, pad = (1, 2, 9, 7), (3, 3), (2, 2), (0, 0)
    plan = pool._fwd_plan(2, 9, 7, 4, 3, 3, 2, 0, 3 * 7, pool.V2_THREADS, pool._MAX_GRID_Y)
    assert plan is not None and plan[2] == 1 and plan[0][0] == 4
    old = pool._BAND_FLOATS
    pool._BAND_FLOATS = 3 * 7
    try:
        x = _input(shape, 5, True)
        _check_max(x, kernel, stride, pad, version="v2")
        _check_ave(x, kernel, stride, pad, version="v2")
    finally:
        pool._BAND_FLOATS = old


@pytest.mark.parametrize("band", [2, 3])
def test_v2_forward_tile_limits_planes(band, monkeypatch):
    """Global pooling with a tile holding only 2 or 3 whole planes: TY = 2 or 3 planes per block
    (7 planes: the last group is short), TX widened to keep the block's threads loading."""
    monkeypatch.setattr(pool, "_BAND_FLOATS", band * 4 * 5)
    grid, block, R, slot = pool._fwd_plan(7, 4, 5, 1, 1, 4, 1, 0, band * 20, pool.V2_THREADS,
                                          pool._MAX_GRID_Y)
    assert block[1] == band and block[0] * band * 2 > pool.V2_THREADS and R == 1 and slot == 20
    x = _input((7, 1, 4, 5), 13, True)
    _check_max(x, (4, 5), (1, 1), (0, 0), version="v2")
    _check_ave(x, (4, 5), (1, 1), (0, 0), version="v2")


@pytest.mark.parametrize("max_grid_y", [1, 2])
def test_v2_plane_loop(max_grid_y, monkeypatch):
    """Fewer grid rows than plane groups: every kernel loops over the remaining planes (the
    forward keeps its barriers block-uniform while some of its planes are past the end)."""
    monkeypatch.setattr(pool, "_MAX_GRID_Y", max_grid_y)
    x = _input((3, 3, 5, 6), 11, True)           # 9 planes: not a multiple of the planes per block
    _check_max(x, (3, 2), (2, 1), (1, 0), version="v2")
    _check_ave(x, (3, 2), (2, 1), (1, 0), version="v2")


def test_v2_plans():
    """v2 takes ordinary shapes (the tests above do run v2) and leaves to v1 what it cannot index in
    int32 or tile."""
    assert pool._fwd_plan(6, 7, 7, 3, 3, 3, 2, 0, pool.SMEM_FLOATS, 256, 65535) is not None
    assert pool._bwd_plan(6, 7, 7, 3, 3, 256, 65535) is not None
    # AlexNet pool1, b256 on the GPU: one block per plane, all 27 output rows, 256 threads
    grid, block, R, slot = pool._fwd_plan(256 * 96, 55, 55, 27, 27, 3, 2, 0, pool.SMEM_FLOATS,
                                          256, 65535)
    assert (grid, block, R, slot) == ((1, 24576), (256, 1), 27, 55 * 55)
    # pool5 (13x13 -> 6x6): 32 threads per plane, 8 planes share a block
    assert pool._fwd_plan(256 * 256, 13, 13, 6, 6, 3, 2, 0, pool.SMEM_FLOATS, 256,
                          65535)[:2] == ((1, 8192), (32, 8))
    # pool1 backward, a thread per pair of inputs: 55 x 28 = 1540 pairs as 7 blocks of 224
    assert pool._bwd_pairs_plan(256 * 96, 55, 55, 27, 27, 256, 65535) == ((7, 24576), (224, 1))
    # pool5 backward: 65536 planes, grid rows capped at 65535 (the kernel loops over the rest)
    assert pool._bwd_plan(256 * 256, 13, 13, 6, 6, 256, 65535) == ((1, 65535), (192, 1))
    # global 7x7 pooling (GoogLeNet, 256 x 1024 planes): 125 whole planes share the tile, one or
    # two threads per plane (TX widened so the block keeps 250 threads for the load)
    assert pool._fwd_plan(256 * 1024, 7, 7, 1, 1, 7, 1, 0, pool.SMEM_FLOATS, 256,
                          65535)[:3] == ((1, 2098), (2, 125), 1)
    assert pool._fwd_plan(2**31, 2, 2, 1, 1, 2, 2, 0, pool.SMEM_FLOATS, 256, 65535) is None
    assert pool._bwd_plan(1, 2**16, 2**15, 2, 2, 256, 65535) is None
    assert pool._fwd_plan(1, 4, 10000, 2, 5000, 3, 2, 0, pool.SMEM_FLOATS, 256, 65535) is None


def test_v2_bounds_table():
    """The backward's packed table: row h's covering outputs [start, end) as start | end << 16,
    then the columns; the pair flags say where 2+ outputs cover one input (or, pair_w2, one pair of
    columns), so 2x2/2 pooling loads a single mask/dy per input."""
    table, pair_h, pair_w, pair_w2 = pool._bounds_table(7, 7, 3, 3, 3, 3, 2, 2, 0, 0)   # 3x3/2
    t = table.copy_to_host()
    start, end = t & 0xFFFF, t >> 16
    np.testing.assert_array_equal(start[:7], [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(end[:7], [1, 1, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(t[7:], t[:7])
    assert (pair_h, pair_w, pair_w2) == (1, 1, 1)
    assert pool._bounds_table(6, 6, 3, 3, 2, 2, 2, 2, 0, 0)[1:] == (0, 0, 0)   # 2x2/2: one each
    assert pool._bounds_table(4, 4, 4, 4, 1, 1, 1, 1, 0, 0)[1:] == (0, 0, 1)   # 1x1/1: pairs of w


def test_promoted_versions_exist():
    for op, version in pool.PROMOTED.items():
        assert f"{op}_{version}" in pool.KERNELS and version in VERSIONS, op


# ------------------------------------------------------------------ stochastic pooling

@st.composite
def sto_problems(draw):
    n, c = draw(st.integers(1, MAX_BATCH)), draw(st.integers(1, MAX_CHANNELS))
    h, w = draw(st.integers(1, MAX_SPATIAL)), draw(st.integers(1, MAX_SPATIAL))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = -(-(h - kh) // sh) + 1, -(-(w - kw) // sw) + 1     # Caffe's ceil rule, no pad
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), draw(st.integers(0, 2**32)), draw(st.integers(0, 9))


def test_uniform_host_is_curands_formula():
    r = random_uint32_host(1000, 7, 3).astype(np.float64)
    u = pool.uniform_host(1000, 7, 3)
    assert u.dtype == np.float32 and u.min() > 0 and u.max() <= 1
    assert_close(u, r / 2**32 + 2.0**-33, 1e-7, 0, name="u")


@given(sto_problems())
def test_train_matches_reference(p):
    shape, kernel, stride, out, seed, stream = p
    x = np.random.default_rng(seed % 1000).random(shape).astype(np.float32)
    y = cuda.to_device(np.full(shape[:2] + out, np.nan, np.float32))
    idx = cuda.to_device(np.full(shape[:2] + out, 99, np.int32))
    pool.sto_pool_fwd_train(cuda.to_device(x), y, idx, kernel, stride, seed, stream)
    u = pool.uniform_host(int(np.prod(shape[:2] + out)), seed, stream)
    want_y, want_idx = sto_train_ref(x, out, kernel, stride, u)
    assert_close(y.copy_to_host(), want_y, 0, 0, name="y")
    np.testing.assert_array_equal(idx.copy_to_host(), want_idx)
    dy = np.random.default_rng(1).standard_normal(want_y.shape).astype(np.float32)
    dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    pool.sto_pool_bwd(cuda.to_device(dy), idx, dx, kernel, stride)
    assert_close(dx.copy_to_host(), sto_bwd_ref(dy, want_idx, shape), 1e-6, 1e-6, name="dx")


@given(sto_problems())
def test_test_phase_matches_reference(p):
    shape, kernel, stride, out, seed, _ = p
    x = np.random.default_rng(seed % 1000).random(shape).astype(np.float32)
    y = cuda.to_device(np.full(shape[:2] + out, np.nan, np.float32))
    pool.sto_pool_fwd_test(cuda.to_device(x), y, kernel, stride)
    assert_close(y.copy_to_host(), sto_test_ref(x, out, kernel, stride), 1e-5, 1e-6, name="y")


def test_negative_window_picks_nothing():
    """A window whose running sum never reaches u * sum (possible only with negative values; Caffe
    then leaves a stale top): four -1s with u = 0.1272 (seed 1234, stream 0) give thres = -0.509,
    running sums -1 .. -4 all below it: y = 0, idx = -1, and backward routes nothing."""
    x = np.full((1, 1, 2, 2), -1.0, np.float32)
    y = cuda.to_device(np.full((1, 1, 1, 1), np.nan, np.float32))
    idx = cuda.to_device(np.zeros((1, 1, 1, 1), np.int32))
    pool.sto_pool_fwd_train(cuda.to_device(x), y, idx, (2, 2), (2, 2), 1234, 0)
    assert int(idx.copy_to_host()[0, 0, 0, 0]) == -1 and y.copy_to_host()[0, 0, 0, 0] == 0
    dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))
    pool.sto_pool_bwd(cuda.to_device(np.ones((1, 1, 1, 1), np.float32)), idx, dx, (2, 2), (2, 2))
    assert not dx.copy_to_host().any()


def test_backward_independent_of_launch_geometry():
    shape, kernel, stride = (2, 2, 5, 6), (3, 2), (1, 2)
    out = (3, 3)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    _, idx = sto_train_ref(x, out, kernel, stride, pool.uniform_host(2 * 2 * 9, 5, 1))
    dy = np.random.default_rng(1).standard_normal(shape[:2] + out).astype(np.float32)
    want = sto_bwd_ref(dy, idx, shape)
    geom = [np.int32(v) for v in (2, 5, 6, 3, 3, *kernel, *stride)]
    for launch in [(1, 1), (2, 7), (1, 64)]:
        dx = cuda.to_device(np.full(shape, np.nan, np.float32))
        pool.sto_pool_bwd_v1[launch](cuda.to_device(dy.reshape(-1)), cuda.to_device(idx.reshape(-1)),
                                  dx.reshape(dx.size), *geom)
        assert_close(dx.copy_to_host(), want, 1e-6, 1e-6, name=f"dx {launch}")
