"""kernels/blas1.py against numpy: fill, copy, scaled_copy, scal, axpy, axpby, add_scalar, add, sub,
mul, div, every version of each (``PROMOTED`` set through ``kernels._launch.promoted``).

Tolerances: elementwise ops rtol 1e-6; axpy/axpby also atol 1e-6 * max(1, max|alpha x| + max|beta y|)
(the GPU may fuse the multiply-add: one rounding instead of two, which matters where the sum
cancels); fill/copy exact.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import _elementwise as E
from kernels import blas1 as F
from kernels._launch import promoted
from tests.helpers import CAIArray, assert_close
from tests.sizes import MAX_ELEMENTS

sizes = st.integers(0, MAX_ELEMENTS)
scalars = st.floats(-4, 4, allow_nan=False, width=32)


def _rand(rng, n):
    return rng.standard_normal(n).astype(np.float32)


def versions(op):
    """Every version of ``op`` in the library, oldest first."""
    return sorted(name.rsplit("_", 1)[1] for name in F.KERNELS if name.rsplit("_", 1)[0] == op)


def test_every_op_has_its_versions():
    """The table names a version that exists; copy has v1-v3, the others v1 and v2."""
    for op, version in F.PROMOTED.items():
        assert version in versions(op), op
        assert versions(op) == (["v1", "v2", "v3"] if op == "copy" else ["v1", "v2"]), op


@pytest.mark.parametrize("version", versions("fill"))
@given(n=sizes, value=scalars)
def test_fill(version, n, value):
    x = cuda.to_device(np.full(n, 7.0, np.float32))
    with promoted(F.PROMOTED, fill=version):
        F.fill(x, value)
    np.testing.assert_array_equal(x.copy_to_host(), np.full(n, np.float32(value)))


@pytest.mark.parametrize("version", versions("scaled_copy"))
@given(n=sizes, alpha=scalars, seed=st.integers(0, 2**16))
def test_scal_scaled_copy_add_scalar(version, n, alpha, seed):
    rng = np.random.default_rng(seed)
    h = _rand(rng, n)
    a32 = np.float32(alpha)
    with promoted(F.PROMOTED, scaled_copy=version, add_scalar=version):
        x = cuda.to_device(h)
        F.scal(x, alpha)
        assert_close(x.copy_to_host(), a32 * h, rtol=1e-6, atol=0, name="scal")
        y = cuda.to_device(np.zeros(n, np.float32))
        F.scaled_copy(cuda.to_device(h), y, alpha)
        assert_close(y.copy_to_host(), a32 * h, rtol=1e-6, atol=0, name="scaled_copy")
        x = cuda.to_device(h)
        F.add_scalar(x, alpha)
        assert_close(x.copy_to_host(), h + a32, rtol=1e-6, atol=1e-7, name="add_scalar")


@pytest.mark.parametrize("version", versions("axpy"))
@given(n=sizes, alpha=scalars, beta=scalars, seed=st.integers(0, 2**16))
def test_axpy_axpby(version, n, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    hx, hy = _rand(rng, n), _rand(rng, n)
    a32, b32 = np.float32(alpha), np.float32(beta)
    y = cuda.to_device(hy)
    with promoted(F.PROMOTED, axpy=version, axpby=version, scaled_copy=version):
        F.axpy(alpha, cuda.to_device(hx), y)
    atol = 1e-6 * max(1.0, float(np.abs(a32 * hx).max(initial=0) + np.abs(hy).max(initial=0)))
    assert_close(y.copy_to_host(), a32 * hx + hy, rtol=1e-6, atol=atol, name="axpy")
    y = cuda.to_device(hy)
    with promoted(F.PROMOTED, axpy=version, axpby=version, scaled_copy=version):
        F.axpby(alpha, cuda.to_device(hx), beta, y)
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


@pytest.mark.parametrize("version", versions("add"))
@given(n=sizes, seed=st.integers(0, 2**16))
def test_binary_ops(version, n, seed):
    rng = np.random.default_rng(seed)
    ha, hb = _rand(rng, n), _rand(rng, n)
    hb[np.abs(hb) < 1e-3] = 0.5  # keep div well away from 0
    for fn, ref in ((F.add, ha + hb), (F.sub, ha - hb), (F.mul, ha * hb), (F.div, ha / hb)):
        out = cuda.to_device(np.full(n, np.nan, np.float32))
        with promoted(F.PROMOTED, **{fn.__name__: version}):
            fn(cuda.to_device(ha), cuda.to_device(hb), out)
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
    """Every op's v2 at a tiny geometry (so the 4-way unrolled body, the tail and in-place
    aliasing all run) gives v1's bits exactly."""
    rng = np.random.default_rng(seed)
    ha, hb = _rand(rng, n), _rand(rng, n)
    hb[np.abs(hb) < 1e-3] = 0.5
    nan = np.full(n, np.nan, np.float32)

    def run(version):
        res = {}
        with promoted(F.PROMOTED, **dict.fromkeys(F.PROMOTED, version)), pytest.MonkeyPatch.context() as mp:
            mp.setattr(E, "configured_v2", lambda kernel, n, threads=0: kernel[launch])
            a, b = cuda.to_device(ha), cuda.to_device(hb)
            res["copy"] = cuda.to_device(nan)
            F.copy(a, res["copy"])
            res["scaled_copy"] = cuda.to_device(nan)
            F.scaled_copy(a, res["scaled_copy"], alpha)
            res["scal"] = cuda.to_device(ha)
            F.scal(res["scal"], alpha)
            res["add_scalar"] = cuda.to_device(ha)
            F.add_scalar(res["add_scalar"], alpha)
            res["axpy"] = cuda.to_device(hb)
            F.axpy(alpha, a, res["axpy"])
            res["axpby"] = cuda.to_device(hb)
            F.axpby(alpha, a, beta, res["axpby"])
            for fn in (F.add, F.sub, F.mul, F.div):
                res[fn.__name__] = cuda.to_device(nan)
                fn(a, b, res[fn.__name__])
            res["fill"] = cuda.to_device(np.full(n, 7, np.int32))
            F.fill(res["fill"], -3)
        return {k: v.copy_to_host() for k, v in res.items()}

    v1, v2 = run("v1"), run("v2")
    for name in v1:
        np.testing.assert_array_equal(v2[name].view(np.uint32), v1[name].view(np.uint32), err_msg=name)
    np.testing.assert_array_equal(v1["fill"], np.full(n, -3, np.int32))


def test_fallback_rule():
    """v3 needs aligned float32 arrays and v2/v3 fewer than 2**31 elements: the next older runs."""
    f, i = cuda.to_device(np.zeros(8, np.float32)), cuda.to_device(np.zeros(8, np.int32))
    assert E.runnable("v3", 8, f, f) == "v3"
    assert E.runnable("v3", 8, i, i) == "v2"
    assert E.runnable("v2", 10) == "v2" and E.runnable("v1", 10) == "v1"
    assert E.runnable("v2", E.V2_MAX_ELEMENTS) == "v1"      # huge arrays stay on v1's int64 indexing
    assert E.runnable("v3", E.V2_MAX_ELEMENTS, f) == "v1"


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
    F.copy(src[offset:offset + n], dst2[offset:offset + n])
    np.testing.assert_array_equal(dst2.copy_to_host()[offset:offset + n], h[offset:offset + n])
