"""kernels/fill.py against numpy: fill, scal, scale, axpy, axpby, add_scalar, copy.

Tolerances: elementwise ops rtol 1e-6; axpy/axpby also atol 1e-6 * max(1, max|alpha x| + max|beta y|)
(the GPU may fuse the multiply-add: one rounding instead of two, which matters where the sum
cancels); fill/copy exact.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import fill as F
from tests.helpers import CAIArray, assert_close
from tests.sizes import MAX_ELEMENTS

ON_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

sizes = st.integers(0, MAX_ELEMENTS)
scalars = st.floats(-4, 4, allow_nan=False, width=32)


def _rand(rng, n):
    return rng.standard_normal(n).astype(np.float32)




VERSIONS = [1, 2]


@pytest.mark.parametrize("version", VERSIONS)
@given(n=sizes, value=scalars)
def test_fill(version, n, value):
    x = cuda.to_device(np.full(n, 7.0, np.float32))
    F.fill(x, value, version=version)
    np.testing.assert_array_equal(x.copy_to_host(), np.full(n, np.float32(value)))


@pytest.mark.parametrize("version", VERSIONS)
@given(n=sizes, alpha=scalars, seed=st.integers(0, 2**16))
def test_scal_scale_add_scalar(version, n, alpha, seed):
    rng = np.random.default_rng(seed)
    h = _rand(rng, n)
    a32 = np.float32(alpha)
    x = cuda.to_device(h)
    F.scal(x, alpha, version=version)
    assert_close(x.copy_to_host(), a32 * h, rtol=1e-6, atol=0, name="scal")
    y = cuda.to_device(np.zeros(n, np.float32))
    F.scale(cuda.to_device(h), y, alpha, version=version)
    assert_close(y.copy_to_host(), a32 * h, rtol=1e-6, atol=0, name="scale")
    x = cuda.to_device(h)
    F.add_scalar(x, alpha, version=version)
    assert_close(x.copy_to_host(), h + a32, rtol=1e-6, atol=1e-7, name="add_scalar")


@pytest.mark.parametrize("version", VERSIONS)
@given(n=sizes, alpha=scalars, beta=scalars, seed=st.integers(0, 2**16))
def test_axpy_axpby(version, n, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    hx, hy = _rand(rng, n), _rand(rng, n)
    a32, b32 = np.float32(alpha), np.float32(beta)
    y = cuda.to_device(hy)
    F.axpy(alpha, cuda.to_device(hx), y, version=version)
    atol = 1e-6 * max(1.0, float(np.abs(a32 * hx).max(initial=0) + np.abs(hy).max(initial=0)))
    assert_close(y.copy_to_host(), a32 * hx + hy, rtol=1e-6, atol=atol, name="axpy")
    y = cuda.to_device(hy)
    F.axpby(alpha, cuda.to_device(hx), beta, y, version=version)
    atol = 1e-6 * max(1.0, float(np.abs(a32 * hx).max(initial=0) + np.abs(b32 * hy).max(initial=0)))
    assert_close(y.copy_to_host(), a32 * hx + b32 * hy, rtol=1e-6, atol=atol, name="axpby")


def test_copy_between_shapes_and_foreign_arrays():
    rng = np.random.default_rng(0)
    h = _rand(rng, 24).reshape(2, 3, 2, 2)
    dst = cuda.to_device(np.zeros((2, 12), np.float32))
    F.copy(cuda.to_device(h), dst)
    np.testing.assert_array_equal(dst.copy_to_host(), h.reshape(2, 12))
    # a foreign __cuda_array_interface__ object as source and destination
    src = CAIArray(h)
    out = CAIArray(np.zeros((4, 6), np.float32))
    F.copy(src, out)
    np.testing.assert_array_equal(out.to_host(), h.reshape(4, 6))
    F.scal(out, 2.0)
    np.testing.assert_array_equal(out.to_host(), 2 * h.reshape(4, 6))


def test_int32_fill_and_copy():
    m = cuda.to_device(np.zeros((2, 3), np.int32))
    F.fill(m, -1)
    np.testing.assert_array_equal(m.copy_to_host(), np.full((2, 3), -1, np.int32))
    dst = cuda.to_device(np.zeros(6, np.int32))
    F.copy(m, dst)
    np.testing.assert_array_equal(dst.copy_to_host(), np.full(6, -1, np.int32))
    with pytest.raises(TypeError, match="two float32 or two int32"):
        F.copy(m, cuda.to_device(np.zeros(6, np.float32)))


def test_errors():
    a = cuda.to_device(np.zeros(4, np.float32))
    b = cuda.to_device(np.zeros(5, np.float32))
    try:
        F.copy(a, b)
    except ValueError as e:
        assert "differ in size" in str(e)
    else:
        raise AssertionError("size mismatch not detected")
    try:
        F.fill(np.zeros(3, np.float32), 1.0)
    except TypeError as e:
        assert "device array" in str(e)
    else:
        raise AssertionError("host array accepted")
    with pytest.raises(TypeError, match="float32 or int32"):
        F.fill(cuda.to_device(np.zeros(3, np.float64)), 1.0)


@pytest.mark.parametrize("version", VERSIONS)
@given(n=sizes, seed=st.integers(0, 2**16))
def test_binary_ops(version, n, seed):
    rng = np.random.default_rng(seed)
    ha, hb = _rand(rng, n), _rand(rng, n)
    hb[np.abs(hb) < 1e-3] = 0.5  # keep div well away from 0
    for fn, ref in ((F.add, ha + hb), (F.sub, ha - hb), (F.mul, ha * hb), (F.div, ha / hb)):
        out = cuda.to_device(np.full(n, np.nan, np.float32))
        fn(cuda.to_device(ha), cuda.to_device(hb), out, version=version)
        assert_close(out.copy_to_host(), ref, rtol=1e-6, atol=0, name=fn.__name__)
    a = cuda.to_device(ha)  # in place: out is a
    F.mul(a, cuda.to_device(hb), a)
    assert_close(a.copy_to_host(), ha * hb, rtol=1e-6, atol=0, name="mul in place")


def test_nan_safety_beta_alpha_zero():
    """axpby with beta == 0 and scal with alpha == 0 never propagate NaN garbage (Caffe's BLAS)."""
    h = np.arange(5, dtype=np.float32)
    y = cuda.to_device(np.full(5, np.nan, np.float32))
    F.axpby(2.0, cuda.to_device(h), 0.0, y)
    np.testing.assert_array_equal(y.copy_to_host(), 2 * h)
    x = cuda.to_device(np.full(5, np.nan, np.float32))
    F.scal(x, 0.0)
    np.testing.assert_array_equal(x.copy_to_host(), np.zeros(5, np.float32))


# (blocks, threads) geometries small enough that the simulator's sizes run the v2 unrolled body
# (n >= 4 * blocks * threads) and its tail (n not a multiple of 4 * stride)
V2_LAUNCHES = [(1, 1), (1, 4), (2, 3), (3, 8)]


@pytest.mark.parametrize("launch", V2_LAUNCHES)
@given(n=st.integers(0, 120), alpha=scalars, beta=scalars, seed=st.integers(0, 2**16))
def test_v2_unrolled_body_and_tail_bit_identical_to_v1(launch, n, alpha, beta, seed):
    """Each v2 template kernel at a tiny geometry (so the 4-way unrolled body, the tail and
    in-place aliasing all run) gives v1's bits exactly."""
    rng = np.random.default_rng(seed)
    ha, hb = _rand(rng, n), _rand(rng, n)
    hb[np.abs(hb) < 1e-3] = 0.5
    a32, b32, z = np.float32(alpha), np.float32(beta), np.float32(0)
    nan = np.full(n, np.nan, np.float32)
    # name: (v1 kernel, v1 args (host arrays and scalars), index of v1's output among them,
    #        v2 kernel, v2 args, index of v2's output); the same host array object twice = in place
    cases = {
        "copy": (F.copy_v1, [ha, nan, n], 1, F.copy_v2, [ha, nan, z, z, z], 1),
        "scal": (F.scal_v1, [ha, n, a32], 0, F.scale_v2, [ha, ha, a32, z, z], 0),
        "scale": (F.scale_v1, [ha, nan, n, a32], 1, F.scale_v2, [ha, nan, a32, z, z], 1),
        "add_scalar": (F.add_scalar_v1, [ha, n, a32], 0, F.add_scalar_v2, [ha, ha, a32, z, z], 0),
        "axpy": (F.axpy_v1, [ha, hb, n, a32], 1, F.axpy_v2, [ha, hb, hb, a32, z, z], 1),
        "axpby": (F.axpby_v1, [ha, hb, n, a32, b32], 1, F.axpby_v2, [ha, hb, hb, a32, b32, z], 1),
        "add": (F.add_v1, [ha, hb, nan, n], 2, F.add_v2, [ha, hb, nan, z, z, z], 2),
        "sub": (F.sub_v1, [ha, hb, nan, n], 2, F.sub_v2, [ha, hb, nan, z, z, z], 2),
        "mul": (F.mul_v1, [ha, hb, nan, n], 2, F.mul_v2, [ha, hb, nan, z, z, z], 2),
        "div": (F.div_v1, [ha, hb, nan, n], 2, F.div_v2, [ha, hb, nan, z, z, z], 2),
    }

    def device_args(args):
        seen: dict[int, object] = {}
        out = []
        for a in args:
            if isinstance(a, np.ndarray):
                if id(a) not in seen:
                    seen[id(a)] = cuda.to_device(a)
                out.append(seen[id(a)])
            else:
                out.append(a)
        return out

    for name, (k1, args1, o1, k2, args2, o2) in cases.items():
        d1 = device_args(args1)
        k1[4, 32](*d1)
        d2 = device_args(args2)
        n_arrays = sum(isinstance(a, np.ndarray) for a in args2)
        d2.insert(n_arrays, np.uint32(n))
        k2[launch](*d2)
        got, want = d2[o2].copy_to_host(), d1[o1].copy_to_host()
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=name)
    x = cuda.to_device(np.full(n, 7, np.int32))
    F.fill_v2[launch](x, np.uint32(n), np.int32(-3))
    np.testing.assert_array_equal(x.copy_to_host(), np.full(n, -3, np.int32))


def test_version_argument():
    x = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="version"):
        F.fill(x, 1.0, version=3)
    assert F._use_v2(2, 10) and not F._use_v2(1, 10)
    assert not F._use_v2(2, F.V2_MAX_ELEMENTS)      # huge arrays stay on v1's int64 indexing


V3_LAUNCHES = [(1, 1), (1, 4), (2, 3), (3, 8)]


@pytest.mark.parametrize("launch", V3_LAUNCHES)
@given(n=st.integers(0, 120), offset=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_copy_v3_groups_and_tail_bit_identical(launch, n, offset, seed):
    """copy_v3 (128-bit accesses) at tiny geometries -- two groups per step, a single last group
    and the n % 4 tail all run -- copies exactly; through ``copy`` an unaligned view (offset not a
    multiple of 4 elements on a GPU) falls back to v2 with the same result."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(n + 4).astype(np.float32)
    src = cuda.to_device(h)
    dst = cuda.to_device(np.full(n + 4, np.nan, np.float32))
    F.copy_v3[launch](src[:n], dst[:n], np.uint32(n), np.float32(0), np.float32(0), np.float32(0))
    out = dst.copy_to_host()
    np.testing.assert_array_equal(out[:n].view(np.uint32), h[:n].view(np.uint32))
    assert np.isnan(out[n:]).all()                       # nothing past n written
    dst2 = cuda.to_device(np.full(n + 4, np.nan, np.float32))
    F.copy(src[offset:offset + n], dst2[offset:offset + n], version=3)
    np.testing.assert_array_equal(dst2.copy_to_host()[offset:offset + n], h[offset:offset + n])
