"""kernels/reduce.py (sum, sumsq, asum, dot; v1 one block, v2 two passes) against float64 numpy;
Caffe's Reduction layer (SUM, ASUM, SUMSQ; MEAN is SUM with coeff / dim) against
tests/reference/caffe_extra.py over hypothesis-drawn rows, lengths, ops and coefficients: the
single-row path (axis 0) and the block-per-row path.

Tolerance: rtol 1e-5 of the sum of |terms| (float32 accumulation of up to MAX_ELEMENTS terms).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import reduce as R
from kernels._launch import promoted
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_ELEMENTS

OPS = {
    "reduce_sum": (R.OP_SUM, lambda x, y: x, lambda x, y: np.abs(x)),
    "sumsq": (R.OP_SUMSQ, lambda x, y: x * x, lambda x, y: x * x),
    "asum": (R.OP_ASUM, lambda x, y: np.abs(x), lambda x, y: np.abs(x)),
    "dot": (R.OP_DOT, lambda x, y: x * y, lambda x, y: np.abs(x * y)),
}


def _check(got, x, y, name):
    _, term, mag = OPS[name]
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    want = float(term(x64, y64).sum())
    scale = float(mag(x64, y64).sum())
    assert abs(got - want) <= 1e-5 * scale + 1e-7, f"{name}: got {got!r}, want {want!r}"


def _call(name, dx, dy, **kw):
    if name == "dot":
        return R.dot(dx, dy, **kw)
    return getattr(R, name)(dx, **kw)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("name", sorted(OPS))
@given(n=st.integers(0, MAX_ELEMENTS), blocks=st.sampled_from([None, 2, 3]),
       seed=st.integers(0, 2**16))
def test_reductions_host_result(name, version, n, blocks, seed):
    """Every version; ``blocks`` (v2) forces the two-pass path's block count on simulator-sized
    arrays (None: the cached choice, one block below its threshold)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    dx, dy = cuda.to_device(x), cuda.to_device(y)
    with promoted(R.PROMOTED, **{name: version}), pytest.MonkeyPatch.context() as mp:
        if blocks is not None:
            mp.setattr(R, "_blocks_v2", lambda n: blocks)
        got = _call(name, dx, dy)
    assert isinstance(got, float)
    _check(got, x, y, name)


def test_device_out_accumulate_and_total():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (5, 37, 1, 120)]
    out = cuda.to_device(np.array([100.0, -1.0], np.float32))
    assert R.sumsq(cuda.to_device(arrays[0]), out=out) is None
    first = out.copy_to_host()
    assert abs(first[0] - float((arrays[0].astype(np.float64) ** 2).sum())) < 1e-5
    assert first[1] == -1.0   # only out[0] is touched
    R.sumsq(cuda.to_device(arrays[1]), out=out, accumulate=True)
    want = sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays[:2])
    assert abs(out.copy_to_host()[0] - want) <= 1e-5 * want
    total = R.sumsq_total([cuda.to_device(a.reshape(1, -1)) for a in arrays])
    want = sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays)
    assert abs(total - want) <= 1e-5 * want
    assert R.sumsq_total([]) == 0.0


def test_v2_default_path_above_threshold():
    """n just above the one-block limit takes the v2 two-pass path with the cached block count."""
    n = R.REDUCE_THREADS * R.ITEMS_V1 + 1
    assert R._blocks_v2(n) > 1
    x = np.linspace(-1, 1, n, dtype=np.float32)
    got = R.asum(cuda.to_device(x))
    want = float(np.abs(x.astype(np.float64)).sum())
    assert abs(got - want) <= 1e-5 * want


def test_errors():
    a = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        R.dot(a, cuda.to_device(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match="needs an out"):
        R.sumsq(a, accumulate=True)
    with pytest.raises(TypeError, match="float32"):
        R.asum(cuda.to_device(np.zeros(3, np.float64)))


def test_channel_parts_choice():
    """v2 splits a channel only when it is long, and never past the cap."""
    per_block = R.REDUCE_THREADS * R.ITEMS_CHANNEL
    assert R.channel_parts(1000, R.CHANNEL_SHORT) == 0
    assert R.channel_parts(64, max(per_block, R.CHANNEL_SHORT + 1)) == 1
    assert R.channel_parts(3, per_block + 1) == 2
    assert R.channel_parts(1, per_block * 1000) == R.CHANNEL_MAX_PARTS
    assert R.channel_parts(R.CHANNEL_TARGET_BLOCKS, per_block * 1000) == 1


@pytest.mark.parametrize("parts", [0, 2, 5])
def test_channel_sums_modes(parts):
    """channel_sums over (outer, dim, inner): sums of a and a*b (write / add / skip) and squared
    deviations from a per-channel center, against float64 numpy."""
    rng = np.random.default_rng(parts)
    outer, dim, inner = 3, 2, 11
    a = rng.standard_normal((outer, dim, inner)).astype(np.float32)
    b = rng.standard_normal((outer, dim, inner)).astype(np.float32)
    center = rng.standard_normal(dim).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out1 = cuda.to_device(np.ones(dim, np.float32))
    out2 = cuda.to_device(np.full(dim, np.nan, np.float32))
    da, db = cuda.to_device(a.ravel()), cuda.to_device(b.ravel())
    R.channel_sums(da, db, da, out1, out2, outer, dim, inner, R.CH_SUM_DOT, R.OUT_ADD, R.OUT_WRITE,
                   scale2=0.5, parts=parts)
    np.testing.assert_allclose(out1.copy_to_host(), 1 + a64.sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out2.copy_to_host(), 0.5 * (a64 * b64).sum(axis=(0, 2)), rtol=1e-5,
                               atol=1e-5)
    keep = out2.copy_to_host()
    R.channel_sums(da, da, cuda.to_device(center), out1, out2, outer, dim, inner, R.CH_SQDEV,
                   R.OUT_WRITE, R.OUT_SKIP, parts=parts)
    want = ((a64 - center[None, :, None]) ** 2).sum(axis=(0, 2))
    np.testing.assert_allclose(out1.copy_to_host(), want, rtol=1e-5)
    np.testing.assert_array_equal(out2.copy_to_host(), keep)


# ------------------------------------------------------------------ Caffe's Reduction layer
REDUCTION_OPS = {"SUM": R.REDUCTION_SUM, "ASUM": R.REDUCTION_ASUM, "SUMSQ": R.REDUCTION_SUMSQ}


@given(num=st.integers(1, 6), dim=st.integers(0, min(MAX_ELEMENTS // 3, 1 << 13)),
       op=st.sampled_from(sorted(REDUCTION_OPS)), coeff=st.sampled_from([1.0, -0.5, 3.0]),
       seed=st.integers(0, 2**31 - 1))
def test_reduction(num, dim, op, coeff, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, dim)).astype(np.float32)
    x.reshape(-1)[::5] = 0                                  # ASUM's sign(0) = 0
    y = cuda.to_device(np.full(num, 5, np.float32))
    R.reduction_fwd(cuda.to_device(x.reshape(-1)), y, num, dim, REDUCTION_OPS[op], coeff)
    y_ref = ref.reduction_ref(x, 1, op, coeff)
    assert_close(y.copy_to_host(), y_ref, 1e-5, 1e-5, name="y")
    dyv = rng.standard_normal(num).astype(np.float32)
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    R.reduction_bwd(cuda.to_device(x.reshape(-1)), cuda.to_device(dyv), dx, num, dim, REDUCTION_OPS[op],
                    coeff)
    assert_close(dx.copy_to_host(), ref.reduction_grad_ref(x, dyv, 1, op, coeff).reshape(-1), 1e-6,
                 1e-6, name="dx")
