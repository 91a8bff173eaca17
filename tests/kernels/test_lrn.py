"""kernels/lrn.py against tests/reference/lrn.py: ACROSS_CHANNELS (v1 direct sums, v2 Caffe's
running sums, v3 the same running sums with int32 indices, a shared ring and prefetched loads: its
packed small planes, channel tails, ring wrap-around, image stride loop and v2 fallback) and
WITHIN_CHANNEL (v1 direct windows, v2 shared tiles with halo: tile edges, the largest halo, plane
stride loop, v1 fallback; against the literal composition square -> AVE pool -> power -> product),
forward (scale and y) and backward.

Tolerances: rtol 1e-5, atol 1e-6 (float32 pow and window sums of up to n*n terms; the running sum
of v2/v3 adds and subtracts squares, which may lose a few ulps of the window sum).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import lrn as L
from kernels._launch import ceil_div, promoted
from tests.helpers import assert_close
from tests.reference import lrn as R
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL

params = st.fixed_dictionaries({
    "local_size": st.sampled_from([1, 3, 5]),
    "alpha": st.sampled_from([1e-4, 0.5, 2.0]),
    "beta": st.sampled_from([0.75, 0.5, 1.0]),
})


@st.composite
def shapes(draw, max_channels=MAX_CHANNELS + 4):
    return (draw(st.integers(1, MAX_BATCH)), draw(st.integers(1, max_channels)),
            draw(st.integers(1, MAX_SPATIAL)), draw(st.integers(1, MAX_SPATIAL)))


def _x(shape, seed):
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)


def _nan(shape):
    return cuda.to_device(np.full(shape, np.nan, np.float32))


def _across(x, dy, p, k, version):
    d_x, d_s, d_y, d_dx = cuda.to_device(x), _nan(x.shape), _nan(x.shape), _nan(x.shape)
    with promoted(L.PROMOTED, lrn_fwd=version, lrn_bwd=version):
        L.lrn_fwd(d_x, d_s, d_y, k=k, **p)
        L.lrn_bwd(cuda.to_device(dy), d_x, d_y, d_s, d_dx, **p)
    return d_s.copy_to_host(), d_y.copy_to_host(), d_dx.copy_to_host()


def _atol(x, p, version):
    if version == "v1":
        return 1e-6
    column = (p["alpha"] / p["local_size"]) * (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
    return 1e-6 + 8 * np.finfo(np.float32).eps * column


def _check_across(x, dy, p, k, version, got=None):
    scale, y, dx = _across(x, dy, p, k, version) if got is None else got
    ref_scale, ref_y = R.lrn_across_ref(x, k=k, **p)
    atol = _atol(x, p, version)
    name = f"{version} size {p['local_size']} shape {x.shape}"
    assert_close(scale, ref_scale, rtol=1e-5, atol=atol, name=f"{name} scale")
    assert_close(y, ref_y, rtol=1e-5, atol=atol, name=f"{name} y")
    assert_close(dx, R.lrn_across_grad_ref(x, dy, k=k, **p), rtol=1e-5, atol=1e-5 + atol, name=f"{name} dx")


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
@given(shape=shapes(), p=params, k=st.sampled_from([1.0, 2.0]), seed=st.integers(0, 2**16))
def test_lrn_across_channels(version, shape, p, k, seed):
    x = _x(shape, seed)
    dy = _x(shape, seed + 1)
    scale, y, dx = _across(x, dy, p, k, version)
    ref_scale, ref_y = R.lrn_across_ref(x, k=k, **p)
    # v2 is Caffe's running sum: it adds the square entering the window and subtracts the one
    # leaving, so its rounding error grows with the largest squares met along the channel column,
    # not with the window sum itself (seen on an H200: 2e-5 absolute in a scale of 1.01 for C=64).
    # Bound: a few float32 ulps of alpha/n * (sum of x^2 over the column).
    atol = _atol(x, p, version)
    assert_close(scale, ref_scale, rtol=1e-5, atol=atol, name="lrn scale")
    assert_close(y, ref_y, rtol=1e-5, atol=atol, name="lrn y")
    assert_close(dx, R.lrn_across_grad_ref(x, dy, k=k, **p), rtol=1e-5, atol=1e-5 + atol, name="lrn dx")


@pytest.mark.parametrize("C", [1, 2, 7])
def test_lrn_across_window_wider_than_channels(C):
    """local_size 5 with C < post_pad (Caffe's kernel writes out of bounds there; ours must not)."""
    p = {"local_size": 5, "alpha": 1.0, "beta": 0.75}
    x = _x((2, C, 2, 3), 5)
    dy = _x(x.shape, 6)
    for version in ("v1", "v2", "v3"):
        scale, y, dx = _across(x, dy, p, 1.0, version)
        assert_close(y, R.lrn_across_ref(x, k=1.0, **p)[1], rtol=1e-5, atol=1e-6, name=f"{version} y")
        assert_close(dx, R.lrn_across_grad_ref(x, dy, k=1.0, **p), rtol=1e-5, atol=1e-5,
                     name=f"{version} dx")


def _within(x, dy, p, version):
    d_x, d_s, d_y, d_dx = cuda.to_device(x), _nan(x.shape), _nan(x.shape), _nan(x.shape)
    with promoted(L.PROMOTED, lrn_within_fwd=version, lrn_within_bwd=version):
        L.lrn_within_fwd(d_x, d_s, d_y, **p)
        L.lrn_within_bwd(cuda.to_device(dy), d_x, d_s, d_dx, **p)
    return d_s.copy_to_host(), d_y.copy_to_host(), d_dx.copy_to_host()


def _check_within(x, dy, p, got, name):
    ref_scale, ref_y = R.lrn_within_ref(x, **p)
    assert_close(got[0], ref_scale, rtol=1e-5, atol=1e-6, name=f"{name} within scale")
    assert_close(got[1], ref_y, rtol=1e-5, atol=1e-6, name=f"{name} within y")
    assert_close(got[2], R.lrn_within_grad_ref(x, dy, **p), rtol=1e-5, atol=1e-5, name=f"{name} within dx")


@pytest.mark.parametrize("version", ["v1", "v2"])
@given(shape=shapes(max_channels=MAX_CHANNELS), p=params, seed=st.integers(0, 2**16))
def test_lrn_within_channel(version, shape, p, seed):
    x = _x(shape, seed)
    dy = _x(shape, seed + 1)
    _check_within(x, dy, p, _within(x, dy, p, version), version)


@pytest.mark.parametrize("shape, size", [
    ((1, 1, 10, 35), 9),     # 2 x 2 tiles of 8 x 32: halos cross tile edges; the largest halo (4)
    ((1, 2, 9, 33), 7),      # one row and one column past the first tile
    ((1, 1, 3, 4), 11),      # local_size > 9: version 2 falls back to v1
])
def test_lrn_within_v2_tiles(shape, size):
    """within v2 against the reference across tile edges, and equal to v1 up to rounding."""
    p = {"local_size": size, "alpha": 1.5, "beta": 0.75}
    x = _x(shape, size)
    dy = _x(shape, size + 1)
    got = _within(x, dy, p, "v2")
    _check_within(x, dy, p, got, f"v2 size {size} shape {shape}")
    for a, b in zip(got, _within(x, dy, p, "v1")):
        assert_close(a, b, rtol=1e-6, atol=1e-6, name="within v2 vs v1")


def test_lrn_within_v2_plane_stride_loop():
    """A grid with fewer z-blocks than (n, c) planes (as for N*C > 65535): blocks stride over
    planes, with a barrier-separated refill of the shared tiles per plane."""
    shape = (2, 3, 3, 5)
    p = {"local_size": 3, "alpha": 0.5, "beta": 0.75}
    x = _x(shape, 9)
    dy = _x(shape, 10)
    d_x, d_s, d_y, d_dx = (cuda.to_device(x.ravel()), _nan(x.size), _nan(x.size), _nan(x.size))
    geometry = (np.int32(6), np.int32(3), np.int32(5), np.int32(3), np.float32(0.5), np.float32(-0.75))
    block = (L.WITHIN_TX, L.WITHIN_TY)
    L.lrn_within_fwd_v2[(1, 1, 2), block](d_x, d_s, d_y, *geometry)
    L.lrn_within_bwd_v2[(1, 1, 2), block](cuda.to_device(dy.ravel()), d_x, d_s, d_dx, *geometry)
    got = tuple(d.copy_to_host().reshape(shape) for d in (d_s, d_y, d_dx))
    _check_within(x, dy, p, got, "v2 stride")


def test_lrn_within_ignores_k_and_uses_padded_divisor():
    """A 1x1 image, local_size 3: the AVE window [-1, 2) clipped to H+pad = 2 has pool_size 9
    (padded cells count), so scale = 1 + alpha * x^2 / 9."""
    x = np.full((1, 1, 1, 1), 3.0, np.float32)
    d_s, d_y = _nan(x.shape), _nan(x.shape)
    L.lrn_within_fwd(cuda.to_device(x), d_s, d_y, local_size=3, alpha=2.0, beta=1.0)
    assert d_s.copy_to_host().item() == pytest.approx(1 + 2.0 * 9 / 9, rel=1e-6)
    assert d_y.copy_to_host().item() == pytest.approx(3.0 / 3.0, rel=1e-6)


@pytest.mark.parametrize("region", ["across", "within"])
def test_reference_gradients_are_derivatives(region):
    """The references' backward is the central difference of their forward (float64)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 3, 3))
    dy = rng.standard_normal(x.shape)
    p = {"local_size": 3, "alpha": 0.7, "beta": 0.75}
    if region == "across":
        f = lambda v: (R.lrn_across_ref(v, k=2.0, **p)[1] * dy).sum()   # noqa: E731
        analytic = R.lrn_across_grad_ref(x, dy, k=2.0, **p)
    else:
        f = lambda v: (R.lrn_within_ref(v, **p)[1] * dy).sum()          # noqa: E731
        analytic = R.lrn_within_grad_ref(x, dy, **p)
    h, rtol, atol = 1e-6, 1e-6, 1e-7
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        numeric[i] = (f(x + e) - f(x - e)) / (2 * h)
    assert_close(analytic, numeric, rtol=rtol, atol=atol, name=f"{region} gradcheck")


def test_lrn_rejects_even_sizes_and_mismatched_shapes():
    d = cuda.device_array((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="odd"):
        L.lrn_fwd(d, d, d, local_size=4)
    with pytest.raises(ValueError, match="shape"):
        L.lrn_within_fwd(d, cuda.device_array((1, 2, 2, 3), np.float32), d)


@pytest.mark.parametrize("shape, size", [
    ((3, 6, 1, 3), 3),      # HW = 3: 4-position tiles, 64 images per block (only 3 present)
    ((3, 5, 1, 1), 5),      # HW = 1: 1-position tiles (shift 0), 256 images per block
    ((2, 9, 5, 7), 5),      # HW = 35: 64-position tile, C = 9 (not a multiple of the unroll 4)
    ((1, 21, 2, 2), 15),    # the largest window the 16-slot ring holds; C > 16 wraps the ring
    ((2, 19, 1, 2), 13),    # wrap-around with a smaller window, C = 19 leaves a 3-channel tail
    ((1, 18, 1, 3), 17),    # local_size > 15: version 3 falls back to v2
])
def test_lrn_v3_geometry_and_ring(shape, size):
    """v3 against the reference on the shapes its special paths handle, and equal to v2 up to
    float rounding (the same running sum, in the same order)."""
    p = {"local_size": size, "alpha": 0.9, "beta": 0.75}
    x = _x(shape, size)
    dy = _x(shape, size + 1)
    got = _across(x, dy, p, 2.0, "v3")
    _check_across(x, dy, p, 2.0, "v3", got)
    for a, b in zip(got, _across(x, dy, p, 2.0, "v2")):
        assert_close(a, b, rtol=1e-6, atol=1e-6, name="v3 vs v2")


def test_lrn_v3_geometry_choice():
    """Tiles: the smallest power of 2 >= HW up to the block (several images per block for small
    planes); None (v2) for windows over the ring and tensors beyond int32 indexing."""
    assert L._v3_geometry(256, 96, 55 * 55, 5) == ((ceil_div(3025, 256), 256), 8)
    assert L._v3_geometry(5, 3, 36, 5) == ((1, 2), 6)           # 64-wide tiles, 4 images per block
    assert L._v3_geometry(1, 3, 1, 5) == ((1, 1), 0)                # 1x1 planes: 256 images per block
    assert L._v3_geometry(3, 3, 2, 5) == ((1, 1), 1)
    assert L._v3_geometry(70000, 1, 256, 5)[0] == (1, L.MAX_GRID_Y)
    assert L._v3_geometry(2, 3, 4, L.RING - 1) is not None
    assert L._v3_geometry(2, 3, 4, L.RING + 1) is None
    assert L._v3_geometry(2**16, 2**10, 2**6, 5) is None          # 2**32 elements


def test_lrn_v3_image_stride_loop():
    """A grid with fewer image groups than images (as for N > 65535 * images per block): with
    128-position tiles (2 images per block) and one block, each thread strides over n by 2, and
    positions past HW idle."""
    shape = (5, 6, 2, 8)
    N, C, H, W = shape
    x = _x(shape, 7)
    dy = _x(shape, 8)
    d_x, d_s, d_y, d_dx = cuda.to_device(x.ravel()), _nan(x.size), _nan(x.size), _nan(x.size)
    geometry = (np.int32(N), np.int32(C), np.int32(H * W), np.int32(3), np.int32(7))   # shift 7
    L.lrn_fwd_v3[(1, 1), L.LRN_THREADS](d_x, d_s, d_y, *geometry, np.float32(np.float32(0.5) / 3),
                                         np.float32(1.0), np.float32(-0.75))
    L.lrn_bwd_v3[(1, 1), L.LRN_THREADS](cuda.to_device(dy.ravel()), d_x, d_y, d_s, d_dx, *geometry,
                                         np.float32(-0.75), np.float32(2 * 0.5 * 0.75 / 3))
    got = tuple(d.copy_to_host().reshape(shape) for d in (d_s, d_y, d_dx))
    _check_across(x, dy, {"local_size": 3, "alpha": 0.5, "beta": 0.75}, 1.0, "v3", got)
