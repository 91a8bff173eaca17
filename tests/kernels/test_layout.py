"""kernels/layout.py: cn_to_nc / nc_to_cn against numpy transposes (exact: pure data movement,
bias add is one float32 addition, compared with the same float32 addition in numpy).

Rows of ``dst`` outside [n0, n0+Nc) must stay untouched; v1, v2 (S == 1 tile transpose) and v3
(int32 + magic-number division, 4 elements per thread) are all checked, v3 also with a single block
so its grid-stride loop and the 4-element tails run, and a round trip nc_to_cn -> cn_to_nc
reproduces the input. ``kernels._index.magic_div`` is checked against numpy's integer division.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import layout as L
from kernels._index import magic_div
from kernels._launch import promoted
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
    with promoted(L.PROMOTED, **({} if version is None else {"cn_to_nc": version})):
        L.cn_to_nc(cuda.to_device(src), dst, n0, None if bias is None else cuda.to_device(bias))
    np.testing.assert_array_equal(dst.copy_to_host(), _cn_to_nc_ref(src, dst0, n0, bias))


def _check_nc_to_cn(geo, version, seed):
    N, n0, Nc, C, S = geo
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((N, C, S)).astype(np.float32)
    dst = cuda.to_device(np.full((C, Nc * S), np.nan, np.float32))
    with promoted(L.PROMOTED, **({} if version is None else {"nc_to_cn": version})):
        L.nc_to_cn(cuda.to_device(src), n0, dst)
    want = src[n0:n0 + Nc].transpose(1, 0, 2).reshape(C, Nc * S)
    np.testing.assert_array_equal(dst.copy_to_host(), want)


@pytest.mark.parametrize("version", ["v1", "v3"])
@given(geo=layouts(), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cn_to_nc_v1_v3(version, geo, with_bias, seed):
    _check_cn_to_nc(geo, with_bias, version, seed)


@given(geo=layouts(spatial=1), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cn_to_nc_v2_transpose(geo, with_bias, seed):
    _check_cn_to_nc(geo, with_bias, "v2", seed)


@pytest.mark.parametrize("version", ["v1", "v3"])
@given(geo=layouts(), seed=st.integers(0, 2**16))
def test_nc_to_cn_v1_v3(version, geo, seed):
    _check_nc_to_cn(geo, version, seed)


def test_spatial_one_v1():
    """S == 1 through the elementwise v1 kernels (v3 falls back to the v2 tile transpose there)."""
    _check_cn_to_nc((5, 1, 3, 7, 1), True, "v1", 7)
    _check_nc_to_cn((5, 2, 3, 6, 1), "v1", 8)


def test_fallbacks():
    """Where the promoted version does not apply the next older one does: v3 needs S > 1 and int32
    indices, v2 is the S == 1 transpose."""
    assert L.PROMOTED == {"cn_to_nc": "v3", "nc_to_cn": "v3"}
    assert L._version("cn_to_nc", 5, True) == "v3"
    assert L._version("cn_to_nc", 1, True) == "v2"
    assert L._version("nc_to_cn", 5, False) == "v1"
    with promoted(L.PROMOTED, cn_to_nc="v2"):
        assert L._version("cn_to_nc", 5, True) == "v1"


def test_v3_grid_stride_single_block():
    """v3 launched with one block: total = 2*1024 + 31 elements needs three grid-stride steps, the
    last one a tail of 31 (i0 valid for 31 threads, i1..i3 past the end) -- cn_to_nc with bias,
    then nc_to_cn."""
    rng = np.random.default_rng(9)
    N, n0, Nc, C, S = 5, 1, 3, 7, 99          # Nc*C*S = 2079 = 2*1024 + 31
    src = rng.standard_normal((C, Nc * S)).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    dst0 = rng.standard_normal((N, C, S)).astype(np.float32)
    dst = cuda.to_device(dst0)
    total = Nc * C * S
    L.cn_to_nc_v3[1, L.V3_THREADS](cuda.to_device(src.ravel()), dst.reshape(dst.size), np.int32(n0),
                                   np.int32(C), np.int32(S), np.int32(Nc * S), np.int32(total),
                                   *magic_div(S), *magic_div(C), cuda.to_device(bias), np.int32(1))
    np.testing.assert_array_equal(dst.copy_to_host(), _cn_to_nc_ref(src, dst0, n0, bias))
    x = rng.standard_normal((N, C, S)).astype(np.float32)
    out = cuda.to_device(np.full(C * Nc * S, np.nan, np.float32))
    L.nc_to_cn_v3[1, L.V3_THREADS](cuda.to_device(x.ravel()), np.int32(n0), np.int32(C), np.int32(S),
                                   np.int32(Nc * S), np.int32(total), *magic_div(Nc * S),
                                   *magic_div(S), out)
    want = x[n0:n0 + Nc].transpose(1, 0, 2).reshape(-1)
    np.testing.assert_array_equal(out.copy_to_host(), want)


def test_v3_several_blocks():
    """Nc*C*S = 3*5*170 = 2550 elements: three 1024-element blocks through the public functions
    (the default for S > 1 is v3), the last block partial."""
    _check_cn_to_nc((4, 1, 3, 5, 170), True, None, 10)
    _check_nc_to_cn((4, 0, 3, 5, 170), None, 11)


def test_magic_div_exact():
    """(n * m) >> s == n // d for divisors 1..2000 and large ones, numerators at the edges of
    every quotient step and up to 2**31 - 1 (the v3 kernels' whole int32 range)."""
    rng = np.random.default_rng(0)
    divisors = list(range(1, 2001)) + [int(d) for d in rng.integers(2001, 2**31 - 1, 300)] + [2**31 - 1]
    for d in divisors:
        m, s = magic_div(d)
        top = (2**31 - 1) // d * d
        n = np.concatenate([rng.integers(0, 2**31, 200), [0, 1, d - 1, d, d + 1, top - 1, top, 2**31 - 1]])
        n = n[(n >= 0) & (n < 2**31)].astype(np.uint64)
        got = (n * np.uint64(m)) >> np.uint64(s)
        np.testing.assert_array_equal(got, n // np.uint64(d), err_msg=f"d={d}")
    with pytest.raises(ValueError, match="divisor"):
        magic_div(0)


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
    with pytest.raises(ValueError, match="does not fit"):
        L.nc_to_cn(cuda.to_device(np.zeros((2, 2, 4), np.float32)), 0, src)
