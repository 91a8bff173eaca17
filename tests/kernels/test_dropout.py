"""kernels/dropout.py: Philox known answers, device mask == host mask bit for bit, the same mask for
any launch geometry, Caffe's threshold/scale arithmetic, keep fractions within statistical bounds.

Tolerances: everything is exact (integer masks; y = x*mask*scale is one or two float32 products
computed the same way by numpy).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import dropout as D
from kernels._launch import promoted
from tests.sizes import MAX_ELEMENTS

ratios = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.75, 0.9])
seeds = st.integers(0, 2**64 - 1)


def test_philox_known_answers():
    """Random123's kat_vectors for philox4x32-10 (counter, key -> 4 words)."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for ctr, key, want in cases:
        got = D.philox4x32_10(np.array(ctr, np.uint64), np.array(key, np.uint64))
        assert [int(v) for v in got] == list(want)


VERSIONS = ["v1", "v2"]


def _device_fwd(x, ratio, seed, stream, launch=None, version="v2"):
    d_x = cuda.to_device(x)
    d_y = cuda.to_device(np.full_like(x, np.nan))
    d_m = cuda.to_device(np.full(x.shape, 7, np.uint8))
    if launch is None:
        with promoted(D.PROMOTED, dropout_fwd=version):
            D.dropout_fwd(d_x, d_y, d_m, ratio, seed, stream)
    elif version == "v1":   # the raw kernel at another geometry
        D.dropout_fwd_v1[launch](d_x, d_y, d_m, np.uint64(D.uint_threshold(ratio)),
                                 np.float32(D.dropout_scale(ratio)), np.uint64(seed), np.uint64(stream))
    else:
        D.dropout_fwd_v2[launch](d_x, d_y, d_m, np.uint32(x.size), np.uint32(D.uint_threshold(ratio)),
                                 np.float32(D.dropout_scale(ratio)), np.uint64(seed), np.uint64(stream))
    return d_y.copy_to_host(), d_m.copy_to_host()


@pytest.mark.parametrize("version", VERSIONS)
@given(n=st.integers(0, MAX_ELEMENTS), ratio=ratios, seed=seeds, stream=st.integers(0, 2**64 - 1))
def test_device_matches_host_bit_for_bit(version, n, ratio, seed, stream):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y, mask = _device_fwd(x, ratio, seed, stream, version=version)
    host_mask = D.dropout_mask_host(n, ratio, seed, stream)
    np.testing.assert_array_equal(mask, host_mask)
    scale = np.float32(D.dropout_scale(ratio))
    np.testing.assert_array_equal(y, x * host_mask.astype(np.float32) * scale)
    dy = np.random.default_rng(n + 1).standard_normal(n).astype(np.float32)
    d_dx = cuda.to_device(np.full_like(dy, np.nan))
    with promoted(D.PROMOTED, dropout_bwd=version):
        D.dropout_bwd(cuda.to_device(dy), cuda.to_device(mask), d_dx, ratio)
    np.testing.assert_array_equal(d_dx.copy_to_host(), dy * host_mask.astype(np.float32) * scale)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("launch", [(1, 1), (1, 32), (3, 8), (2, 256)])
def test_mask_independent_of_launch_geometry(launch, version):
    """Every version at every geometry draws v1's mask (the stream is bit-identical), including
    the partial last group of 103 elements."""
    x = np.random.default_rng(3).standard_normal(103).astype(np.float32)
    y_ref, m_ref = _device_fwd(x, 0.5, 1234, 5, version="v1")
    y, m = _device_fwd(x, 0.5, 1234, 5, launch, version)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(y.view(np.uint32), y_ref.view(np.uint32))


@given(n=st.integers(0, 70), ratio=ratios, seed=seeds, stream=st.integers(0, 2**64 - 1),
       launch=st.sampled_from([(1, 1), (2, 3), (1, 8)]))
def test_v2_same_stream_as_v1(n, ratio, seed, stream, launch):
    """dropout_fwd_v2 (32-bit Philox words, uint32 loop) gives v1's mask and y bit for bit for
    any seed and stream (both 64-bit) and any size, full groups and a partial last one; the
    backward v2 at a geometry running its unrolled body gives v1's dx."""
    x = np.random.default_rng(n + 11).standard_normal(n).astype(np.float32)
    y1, m1 = _device_fwd(x, ratio, seed, stream, (2, 8), version="v1")
    y2, m2 = _device_fwd(x, ratio, seed, stream, launch, version="v2")
    np.testing.assert_array_equal(m2, m1)
    np.testing.assert_array_equal(y2.view(np.uint32), y1.view(np.uint32))
    dy = np.random.default_rng(n + 12).standard_normal(n).astype(np.float32)
    scale = np.float32(D.dropout_scale(ratio))
    d1 = cuda.to_device(np.full_like(dy, np.nan))
    D.dropout_bwd_v1[2, 8](cuda.to_device(dy), cuda.to_device(m1), d1, scale)
    d2 = cuda.to_device(dy)                       # in place: dx is dy
    D.dropout_bwd_v2[launch](d2, cuda.to_device(m1), d2, np.uint32(n), scale, np.float32(0),
                             np.float32(0))
    np.testing.assert_array_equal(d2.copy_to_host().view(np.uint32), d1.copy_to_host().view(np.uint32))


def test_promoted_versions_exist():
    for op, version in D.PROMOTED.items():
        assert f"{op}_{version}" in D.KERNELS and version in VERSIONS, op
    assert sorted(k.rsplit("_", 1)[1] for k in D.KERNELS) == ["v1", "v1", "v2", "v2"]


def test_host_stream_is_a_prefix_property():
    """Element i's word depends only on (seed, stream, i): a longer draw extends a shorter one."""
    a = D.random_uint32_host(10, 99, 3)
    b = D.random_uint32_host(1001, 99, 3)
    np.testing.assert_array_equal(a, b[:10])
    assert not np.array_equal(D.random_uint32_host(1000, 99, 3), D.random_uint32_host(1000, 99, 4))
    assert not np.array_equal(D.random_uint32_host(1000, 99, 3), D.random_uint32_host(1000, 98, 3))


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_keep_fraction_within_bounds(ratio):
    """Host (n = 400k) and device (n = MAX_ELEMENTS) keep fractions within 6 sigma of 1 - ratio;
    two streams' masks agree at the rate of independent draws."""
    p = 1 - D.uint_threshold(ratio) / 2**32
    n = 400_000
    m1 = D.dropout_mask_host(n, ratio, 2024, 0)
    m2 = D.dropout_mask_host(n, ratio, 2024, 1)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(m1.mean() - p) < 6 * sigma
    agree = p * p + (1 - p) ** 2
    assert abs((m1 == m2).mean() - agree) < 6 * math.sqrt(agree * (1 - agree) / n)
    words = D.random_uint32_host(n, 7)
    bits = (words[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 6 * math.sqrt(0.25 / n))
    nd = max(MAX_ELEMENTS, 8)
    _, md = _device_fwd(np.ones(nd, np.float32), ratio, 2024, 0)
    assert abs(md.mean() - p) < 6 * math.sqrt(p * (1 - p) / nd)


def test_caffe_threshold_and_scale():
    # UINT_MAX as float32 is 2^32: the threshold is float32(2^32 * ratio) truncated
    assert D.uint_threshold(0.5) == 2**31
    assert D.uint_threshold(0.0) == 0
    assert D.uint_threshold(0.3) == int(np.float32(2**32) * np.float32(0.3))
    assert D.dropout_scale(0.5) == 2.0
    assert D.dropout_scale(0.3) == float(np.float32(1 / (1 - float(np.float32(0.3)))))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            D.dropout_scale(bad)


def test_ratio_zero_keeps_everything_and_in_place():
    x = np.arange(1, 41, dtype=np.float32)
    d = cuda.to_device(x)
    d_m = cuda.device_array(x.shape, np.uint8)
    D.dropout_fwd(d, d, d_m, 0.0, 5)              # y is x (in place)
    np.testing.assert_array_equal(d.copy_to_host(), x)   # P(r == 0) = 2^-32 per element
    np.testing.assert_array_equal(d_m.copy_to_host(), 1)


def test_rejects_bad_arguments():
    d = cuda.device_array(8, np.float32)
    with pytest.raises(TypeError):
        D.dropout_fwd(d, d, cuda.device_array(8, np.float32), 0.5, 1)
    with pytest.raises(ValueError):
        D.dropout_fwd(d, d, cuda.device_array(9, np.uint8), 0.5, 1)
    with pytest.raises(ValueError):
        D.dropout_fwd(d, d, cuda.device_array(8, np.uint8), 0.5, -1)
