"""kernels/activation.py against tests/reference/activation.py (float64 textbook math).

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
from tests.sizes import MAX_ELEMENTS

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
