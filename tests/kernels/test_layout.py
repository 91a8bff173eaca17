"""kernels/layout.py: cn_to_nc / nc_to_cn against numpy transposes (exact: pure data movement,
bias add is one float32 addition, compared with the same float32 addition in numpy).

Rows of ``dst`` outside [n0, n0+Nc) must stay untouched; v1 and v2 (S == 1 tile transpose) are
both checked, and a round trip nc_to_cn -> cn_to_nc reproduces the input.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import layout as L
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@st.composite
def layouts(draw, spatial=None):
    N = draw(st.integers(1, MAX_BATCH + 1))
    n0 = draw(st.integers(0, N - 1))
    Nc = draw(st.integers(1, N - n0))
    C = draw(st.integers(1, MAX_CHANNELS + 2))
    S = spatial if spatial is not None else draw(st.integers(1, MAX_SPATIAL * 2))
    return N, n0, Nc, C, S


def _cn_to_nc_ref(src, dst, n0, bias):
    C = src.shape[0]
    N, _, S = dst.shape
    Nc = src.shape[1] // S
    out = dst.copy()
    block = src.reshape(C, Nc, S).transpose(1, 0, 2)
    if bias is not None:
        block = block + bias[None, :, None]
    out[n0:n0 + Nc] = block
    return out


def _check_cn_to_nc(geo, with_bias, version, seed):
    N, n0, Nc, C, S = geo
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((C, Nc * S)).astype(np.float32)
    dst0 = rng.standard_normal((N, C, S)).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32) if with_bias else None
    dst = cuda.to_device(dst0)
    L.cn_to_nc(cuda.to_device(src), dst, n0, None if bias is None else cuda.to_device(bias), version=version)
    np.testing.assert_array_equal(dst.copy_to_host(), _cn_to_nc_ref(src, dst0, n0, bias))


def _check_nc_to_cn(geo, version, seed):
    N, n0, Nc, C, S = geo
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((N, C, S)).astype(np.float32)
    dst = cuda.to_device(np.full((C, Nc * S), np.nan, np.float32))
    L.nc_to_cn(cuda.to_device(src), n0, dst, version=version)
    want = src[n0:n0 + Nc].transpose(1, 0, 2).reshape(C, Nc * S)
    np.testing.assert_array_equal(dst.copy_to_host(), want)


@given(geo=layouts(), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cn_to_nc_v1(geo, with_bias, seed):
    _check_cn_to_nc(geo, with_bias, "v1", seed)


@given(geo=layouts(spatial=1), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cn_to_nc_v2_transpose(geo, with_bias, seed):
    _check_cn_to_nc(geo, with_bias, "v2", seed)


@given(geo=layouts(), seed=st.integers(0, 2**16))
def test_nc_to_cn_v1(geo, seed):
    _check_nc_to_cn(geo, "v1", seed)


@given(geo=layouts(spatial=1), seed=st.integers(0, 2**16))
def test_nc_to_cn_v2_transpose(geo, seed):
    _check_nc_to_cn(geo, "v2", seed)


def test_transpose_crosses_tiles():
    """S == 1 with C and Nc larger than one 32x32 tile and not multiples of it."""
    _check_cn_to_nc((40, 3, 37, 33, 1), True, None, 5)
    _check_nc_to_cn((40, 2, 35, 34, 1), None, 6)


def test_round_trip_4d():
    """nc_to_cn then cn_to_nc on a (N, C, H, W) array reproduces the moved rows."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 2, 5)).astype(np.float32)
    cn = cuda.device_array((4, 2 * 10), np.float32)
    L.nc_to_cn(cuda.to_device(x), 1, cn)
    back = cuda.to_device(np.zeros_like(x))
    L.cn_to_nc(cn, back, 1)
    want = np.zeros_like(x)
    want[1:3] = x[1:3]
    np.testing.assert_array_equal(back.copy_to_host(), want)


def test_shape_errors():
    src = cuda.to_device(np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        L.cn_to_nc(src, cuda.to_device(np.zeros((1, 3, 4), np.float32)), 0)
    with pytest.raises(ValueError, match="S == 1"):
        L.cn_to_nc(src, cuda.to_device(np.zeros((2, 3, 4), np.float32)), 0, version="v2")
