"""kernels/activation.py against tests/reference/activation.py (float64 textbook math) and, for
Clip, Threshold, Swish and PReLU, the float64 loops of tests/reference/caffe_extra.py.

Every op: forward and backward on hypothesis sizes and parameters. The references are themselves
checked against central differences. Tolerances (relative to the float64 reference, plus a small
absolute floor for values near 0): ReLU / AbsVal exact up to 1e-6; Sigmoid, TanH, BNLL, ELU, Exp,
Log, Power rtol 1e-5 (float32 transcendental functions, 1-2 ulp, and Caffe's y/x forms of the
derivatives); Power/Exp with large outputs are compared relatively.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import _elementwise as E
from kernels import activation as A
from kernels._launch import promoted
from tests.helpers import CAIArray, assert_close
from tests.reference import activation as R
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_ELEMENTS, MAX_SPATIAL

# name -> (backward takes which of x / y, parameter cases, input kind, rtol, atol)
OPS = {
    "relu": (("x",), [{"negative_slope": 0.0}, {"negative_slope": 0.1}, {"negative_slope": -0.5}],
             "any", 1e-6, 1e-7),
    "sigmoid": (("y",), [{}], "any", 1e-5, 1e-6),
    "tanh": (("y",), [{}], "any", 1e-5, 1e-6),
    "power": (("x", "y"), [
        {"power": 1.0, "scale": 2.0, "shift": 0.5},     # power == 1: dx = dy*diff_scale
        {"power": 2.0, "scale": 1.5, "shift": 0.0},     # power == 2 form
        {"power": 2.0, "scale": 1.0, "shift": 1.0},     # power == 2 with shift
        {"power": 3.0, "scale": 1.0, "shift": 0.0},     # shift == 0: dx = dy*power*y/x
        {"power": 0.5, "scale": 2.0, "shift": 1.0},     # general form
        {"power": -0.75, "scale": 0.5, "shift": 2.0},   # as LRN within-channel uses it
        {"power": 0.0, "scale": 1.0, "shift": 2.0},     # power 0: y = 1, dx = 0
        {"power": 2.0, "scale": 0.0, "shift": 3.0},     # scale 0: y = shift^power, dx = 0
    ], "positive", 1e-5, 1e-6),
    "exp": (("y",), [{"base": -1.0, "scale": 1.0, "shift": 0.0},
                     {"base": 2.0, "scale": 0.5, "shift": 1.0},
                     {"base": 10.0, "scale": -0.3, "shift": 0.0},
                     {"base": -1.0, "scale": 2.0, "shift": -1.0}], "any", 1e-5, 1e-6),
    "log": (("x",), [{"base": -1.0, "scale": 1.0, "shift": 0.0}, {"base": 2.0, "scale": 0.5, "shift": 1.0},
                     {"base": 10.0, "scale": 3.0, "shift": 0.25}], "positive", 1e-5, 1e-6),
    "absval": (("x",), [{}], "any", 1e-6, 0.0),
    "bnll": (("x",), [{}], "any", 1e-5, 1e-6),
    "elu": (("x", "y"), [{"alpha": 1.0}, {"alpha": 0.3}], "any", 1e-5, 1e-6),
}


def _inputs(kind, n, seed):
    rng = np.random.default_rng(seed)
    if kind == "positive":
        return rng.uniform(0.25, 3.0, n).astype(np.float32)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[rng.random(n) < 0.1] = 0          # exact zeros: the x > 0 / x <= 0 boundary
    return x


def versions(name):
    """Every version of op ``name`` in the library (forward and backward have the same ones)."""
    found = {k.rsplit("_", 1)[1] for k in A.KERNELS if k.rsplit("_", 1)[0] in (f"{name}_fwd", f"{name}_bwd")}
    return sorted(found)


def run_op(name, x, dy, params, version=None):
    """(y, dx) from the kernels under test (``version``: both directions' version, else the
    promoted ones)."""
    uses = OPS[name][0]
    ops = {} if version is None else {f"{name}_fwd": version, f"{name}_bwd": version}
    with promoted(A.PROMOTED, **ops):
        d_x = cuda.to_device(x)
        d_y = cuda.to_device(np.full_like(x, np.nan))
        getattr(A, f"{name}_fwd")(d_x, d_y, **params)
        d_dx = cuda.to_device(np.full_like(x, np.nan))
        args = [cuda.to_device(dy)] + [d_x if u == "x" else d_y for u in uses] + [d_dx]
        getattr(A, f"{name}_bwd")(*args, **params)
    return d_y.copy_to_host(), d_dx.copy_to_host()


def test_promoted_versions_exist():
    assert set(A.PROMOTED) == {f"{name}_{d}" for name in OPS for d in ("fwd", "bwd")}
    for op, version in A.PROMOTED.items():
        assert f"{op}_{version}" in A.KERNELS, op


@pytest.mark.parametrize("name, version", [(name, v) for name in sorted(OPS) for v in versions(name)])
@given(n=st.integers(0, MAX_ELEMENTS), seed=st.integers(0, 2**16), case=st.integers(0, 7))
def test_activation_matches_reference(name, version, n, seed, case):
    _, cases, kind, rtol, atol = OPS[name]
    params = cases[case % len(cases)]
    x = _inputs(kind, n, seed)
    dy = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    y, dx = run_op(name, x, dy, params, version)
    assert_close(y, getattr(R, f"{name}_ref")(x, **params), rtol=rtol, atol=atol, name=f"{name} y")
    assert_close(dx, getattr(R, f"{name}_grad_ref")(x, dy, **params), rtol=rtol, atol=atol,
                 name=f"{name} dx")


@pytest.mark.parametrize("name", sorted(OPS))
@given(n=st.integers(0, 90), seed=st.integers(0, 2**16), case=st.integers(0, 7),
       launch=st.sampled_from([(1, 1), (1, 4), (2, 3), (3, 8)]))
def test_v2_bit_identical_to_v1(name, n, seed, case, launch):
    """v2 (uint32 indices, unrolled by 4) gives v1's bits exactly, forward and backward; a tiny
    launch geometry makes the simulator's sizes run the unrolled body, its tail and in-place use."""
    _, cases, kind, _, _ = OPS[name]
    params = cases[case % len(cases)]
    x = _inputs(kind, n, seed)
    dy = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    y1, dx1 = run_op(name, x, dy, params, version="v1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "configured_v2", lambda kernel, n, threads=0: kernel[launch])
        y2, dx2 = run_op(name, x, dy, params, version="v2")
    np.testing.assert_array_equal(y2.view(np.uint32), y1.view(np.uint32), err_msg=f"{name} y")
    np.testing.assert_array_equal(dx2.view(np.uint32), dx1.view(np.uint32), err_msg=f"{name} dx")


def test_v2_in_place():
    """In-place v2 (y is x) at a geometry with an unrolled body."""
    x = _inputs("any", 61, 4)
    d = cuda.to_device(x)
    with pytest.MonkeyPatch.context() as mp, promoted(A.PROMOTED, relu_fwd="v2", relu_bwd="v2"):
        mp.setattr(E, "configured_v2", lambda kernel, n, threads=0: kernel[2, 4])
        A.relu_fwd(d, d, 0.5)
        g = cuda.to_device(np.ones_like(x))
        A.relu_bwd(g, cuda.to_device(x), g, 0.5)
    assert_close(d.copy_to_host(), R.relu_ref(x, 0.5), rtol=0, atol=0, name="in-place relu v2")
    assert_close(g.copy_to_host(), R.relu_grad_ref(x, np.ones_like(x), 0.5), rtol=0, atol=0,
                 name="in-place relu bwd v2")


@pytest.mark.parametrize("name", sorted(OPS))
def test_reference_gradients_are_derivatives(name):
    """The float64 references' backward is the central difference of their forward (away from
    the kinks at 0)."""
    _, cases, kind, _, _ = OPS[name]
    for params in cases:
        x = _inputs(kind, 50, 3).astype(np.float64)
        x = x[np.abs(x) > 1e-2]
        h = 1e-6
        f = getattr(R, f"{name}_ref")
        numeric = (f(x + h, **params) - f(x - h, **params)) / (2 * h)
        analytic = getattr(R, f"{name}_grad_ref")(x, np.ones_like(x), **params)
        assert_close(analytic, numeric, rtol=1e-5, atol=1e-6, name=f"{name} {params} gradcheck")


def test_power_negative_inputs_integer_powers():
    x = np.array([-2.0, -1.0, -0.5, 0.5, 1.5, 2.0], np.float32)
    dy = np.linspace(-1, 1, x.size).astype(np.float32)
    for params in ({"power": 2.0, "scale": -1.0, "shift": 0.0}, {"power": 3.0, "scale": 1.0, "shift": 0.0},
                   {"power": 3.0, "scale": 2.0, "shift": 1.5}, {"power": 1.0, "scale": -3.0, "shift": 0.0}):
        y, dx = run_op("power", x, dy, params)
        assert_close(y, R.power_ref(x, **params), rtol=1e-6, atol=1e-6, name=f"power {params} y")
        assert_close(dx, R.power_grad_ref(x, dy, **params), rtol=1e-5, atol=1e-6, name=f"power {params} dx")


def test_power_shift_zero_at_zero_is_nan_as_caffe():
    """Caffe computes dy/dx = power*y/x when shift == 0: at x == 0 that is 0/0 (NaN)."""
    x = np.array([0.0, 1.0], np.float32)
    _, dx = run_op("power", x, np.ones(2, np.float32), {"power": 3.0, "scale": 1.0, "shift": 0.0})
    assert np.isnan(dx[0]) and dx[1] == 3


def test_saturating_inputs_stay_finite():
    """Large |x|: BNLL (Caffe's stable form), sigmoid, tanh, ELU give finite exact limits."""
    x = np.array([-1e4, -100.0, -60.0, 60.0, 100.0, 1e4], np.float32)
    dy = np.ones_like(x)
    y, dx = run_op("bnll", x, dy, {})
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert_close(y, R.bnll_ref(x), rtol=1e-6, atol=1e-30, name="bnll saturated y")
    np.testing.assert_array_equal(dx[3:], 1)        # exp(min(x, 50)) / (exp(50) + 1) -> 1 in float32
    y, dx = run_op("sigmoid", x, dy, {})
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(dx, 0)
    y, _ = run_op("tanh", x, dy, {})
    np.testing.assert_array_equal(y, [-1, -1, -1, 1, 1, 1])
    y, dx = run_op("elu", x, dy, {"alpha": 2.0})
    np.testing.assert_array_equal(y[:3], -2)
    np.testing.assert_array_equal(dx[:3], 0)


def test_in_place():
    """Caffe runs ReLU (and others) in place: top is bottom, bottom diff is top diff."""
    x = _inputs("any", 37, 5)
    d = cuda.to_device(x)
    A.relu_fwd(d, d, 0.25)
    assert_close(d.copy_to_host(), R.relu_ref(x, 0.25), rtol=1e-6, atol=0, name="in-place relu")
    g = cuda.to_device(np.ones_like(x))
    A.relu_bwd(g, cuda.to_device(x), g, 0.25)
    assert_close(g.copy_to_host(), R.relu_grad_ref(x, np.ones_like(x), 0.25), rtol=0, atol=0,
                 name="in-place relu bwd")


def test_base_validation():
    d = cuda.to_device(np.ones(4, np.float32))
    for bad in (0.0, -2.0):
        with pytest.raises(ValueError):
            A.exp_fwd(d, d, base=bad)
        with pytest.raises(ValueError):
            A.log_fwd(d, d, base=bad)
    with pytest.raises(ValueError):
        A.log_fwd(d, d, base=1.0)
    inner, outer = A.exp_scales(2.0, 3.0, 1.0)
    assert inner == pytest.approx(3 * np.log(2), rel=1e-6) and outer == 2.0


def test_cuda_array_interface_and_shapes():
    x = _inputs("any", 24, 9).reshape(2, 3, 2, 2)
    y = CAIArray(np.zeros_like(x))
    A.elu_fwd(CAIArray(x), y, alpha=0.5)
    assert_close(y.to_host(), R.elu_ref(x, 0.5), rtol=1e-5, atol=1e-6, name="CAI elu")
    with pytest.raises(ValueError):
        A.tanh_fwd(cuda.to_device(x), cuda.device_array(5, np.float32))
    with pytest.raises(TypeError):
        A.tanh_fwd(x, cuda.device_array(x.shape, np.float32))


@given(n=st.integers(0, 90), seed=st.integers(0, 2**16), case=st.integers(0, 7),
       launch=st.sampled_from([(1, 1), (1, 4), (2, 3), (3, 8)]))
def test_relu_v3_bit_identical_to_v1(n, seed, case, launch):
    """ReLU v3 (128-bit loads/stores, two groups of four per step, a single last group, the
    n % 4 tail) gives v1's bits exactly at tiny launch geometries, forward and backward."""
    _, cases, kind, _, _ = OPS["relu"]
    params = cases[case % len(cases)]
    x = _inputs(kind, n, seed)
    dy = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    y1, dx1 = run_op("relu", x, dy, params, version="v1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "configured_v3", lambda kernel, n, threads=0: kernel[launch])
        y3, dx3 = run_op("relu", x, dy, params, version="v3")
    np.testing.assert_array_equal(y3.view(np.uint32), y1.view(np.uint32), err_msg="relu y")
    np.testing.assert_array_equal(dx3.view(np.uint32), dx1.view(np.uint32), err_msg="relu dx")


# ------------------------------------------------ Clip, Threshold, Swish, PReLU (v1 only)
N_MAX = min(MAX_ELEMENTS, 1 << 15)     # the references are Python loops

PARAM = st.floats(-2, 2, allow_nan=False, width=32)


def _x(n, seed, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@given(n=st.integers(0, N_MAX), lo=PARAM, width=st.floats(0, 3, width=32),
       seed=st.integers(0, 2**31 - 1), in_place=st.booleans())
def test_clip(n, lo, width, seed, in_place):
    hi = np.float32(lo + width)
    x = _x(n, seed)
    x[: n // 4] = np.float32(lo)                  # the bounds are inside the window (>=, <=)
    dx_ref = ref.clip_grad_ref(x, np.ones(n), lo, hi)
    d = cuda.to_device(x)
    out = d if in_place else cuda.to_device(np.full(n, 9, np.float32))
    A.clip_fwd(d, out, lo, hi)
    assert_close(out.copy_to_host(), ref.clip_ref(x, np.float32(lo), hi), 0, 0, name="y")
    dy = cuda.to_device(np.ones(n, np.float32))
    A.clip_bwd(cuda.to_device(x), dy, dy, lo, hi)
    assert_close(dy.copy_to_host(), dx_ref, 0, 0, name="dx")


def test_clip_nan_gives_lo():
    d = cuda.to_device(np.array([np.nan, -5, 5, 0.25], np.float32))
    A.clip_fwd(d, d, -1.0, 1.0)
    np.testing.assert_array_equal(d.copy_to_host(), [-1, -1, 1, 0.25])


@given(n=st.integers(0, N_MAX), t=PARAM, seed=st.integers(0, 2**31 - 1))
def test_threshold(n, t, seed):
    x = _x(n, seed)
    x[: n // 5] = np.float32(t)                     # x == t gives 0 (strictly greater)
    y = cuda.to_device(np.full(n, 7, np.float32))
    A.threshold_fwd(cuda.to_device(x), y, t)
    assert_close(y.copy_to_host(), ref.threshold_ref(x, np.float32(t)), 0, 0)


@given(n=st.integers(0, N_MAX), beta=st.floats(-3, 3, width=32), seed=st.integers(0, 2**31 - 1))
def test_swish(n, beta, seed):
    x = _x(n, seed, 4.0)
    dyv = _x(n, seed + 1, 1.0)
    d = cuda.to_device(x)
    y, s = cuda.to_device(np.zeros(n, np.float32)), cuda.to_device(np.zeros(n, np.float32))
    A.swish_fwd(d, y, s, beta)
    assert_close(y.copy_to_host(), ref.swish_ref(x, beta), 1e-5, 1e-6, name="y")
    dx = cuda.to_device(dyv)
    A.swish_bwd(y, s, dx, dx, beta)                 # in place: dx is dy
    assert_close(dx.copy_to_host(), ref.swish_grad_ref(x, dyv, beta), 1e-4, 1e-5, name="dx")


@given(n=st.integers(1, MAX_BATCH), c=st.integers(1, MAX_CHANNELS), s=st.integers(0, MAX_SPATIAL),
       shared=st.booleans(), seed=st.integers(0, 2**31 - 1), in_place=st.booleans())
def test_prelu(n, c, s, shared, seed, in_place):
    shape = (n, c, s, 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = 0                          # x == 0 takes the negative side in backward
    slope = rng.standard_normal(1 if shared else c).astype(np.float32)
    dyv = rng.standard_normal(shape).astype(np.float32)
    dim = s * 2
    xd = cuda.to_device(x.reshape(-1))
    out = xd if in_place else cuda.to_device(np.zeros(x.size, np.float32))
    A.prelu_fwd(xd, cuda.to_device(slope), out, c, dim, shared)
    assert_close(out.copy_to_host(), ref.prelu_ref(x, slope, shared).reshape(-1), 1e-6, 1e-7, name="y")
    dx_ref, ds_ref = ref.prelu_grad_ref(x, slope, dyv, shared)
    dx = cuda.to_device(dyv.reshape(-1))
    ds = cuda.to_device(np.full(slope.shape, 0.5, np.float32))          # accumulates
    A.prelu_bwd(cuda.to_device(x.reshape(-1)), cuda.to_device(slope), dx, dx, ds, c, dim, shared)
    assert_close(dx.copy_to_host(), dx_ref.reshape(-1), 1e-6, 1e-7, name="dx")
    assert_close(ds.copy_to_host(), ds_ref + 0.5, 1e-5, 1e-5, name="dslope")
