"""Op parity: every op of runner.backend.base.Backend on the cpu backend (numpy, the spec) vs the
cuda backend (kernels/, here in Numba's simulator or on a GPU) with the same random inputs.

Each test draws shapes from tests/sizes.py (tiny in the simulator) and a seed, builds the inputs
once in numpy, runs the op on both backends (outputs prefilled with the same garbage, so ``=`` vs
``+=`` mistakes show) and compares. Tolerances: elementwise ops 1e-5 relative (+1e-6 absolute);
GEMM / convolution / reductions 1e-4 relative Frobenius norm (different summation orders);
dropout masks and max-pool / eltwise-max masks must be identical.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdef.geometry import ConvGeometry, PoolGeometry
from runner.backend import get_backend
from tests.helpers import assert_close, rel_frobenius
from tests.reference.conv import out_size as conv_out_size
from tests.reference.pool import pooled_size_ref
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_ELEMENTS, MAX_GEMM_DIM, MAX_SPATIAL

_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
CPU = get_backend("cpu")
GPU = get_backend("cuda")
FEW = settings(max_examples=min(settings().max_examples, 3))   # the slowest ops in the simulator

seeds = st.integers(0, 2**31 - 1)


def _rng(seed):
    return np.random.default_rng(seed)


def _up(be, a):
    """A backend array holding host array ``a`` (its dtype kept)."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.float32:
        return be.to_device(a)
    out = be.empty(a.shape, dtype=a.dtype)
    be.to_device(a, out=out)
    return out


def _host(be, a):
    return np.array(be.to_host(a))


def both(fn, *arrays):
    """Run ``fn(backend, *backend_arrays)`` on cpu and cuda with copies of ``arrays`` (numpy);
    ``fn`` returns a tuple of backend arrays and/or host values. Returns (cpu results, cuda results)
    as numpy / Python values, plus the backend arrays' final inputs (in-place ops)."""
    out = []
    for be in (CPU, GPU):
        dev = [None if a is None else _up(be, a) for a in arrays]
        res = fn(be, *dev)
        res = res if isinstance(res, tuple) else (res,)
        out.append([r if isinstance(r, (int, float, np.integer, np.floating)) or r is None
                    else np.array(r) if isinstance(r, np.ndarray) else _host(be, r) for r in res])
    return out


def _garbage(be, shape, dtype=np.float32):
    """An output array prefilled with a non-zero pattern (so '=' must overwrite it)."""
    return _up(be, np.full(shape, 7.25, dtype=dtype))


def _close_all(a, b, rtol=1e-5, atol=1e-6, names=None):
    for i, (x, y) in enumerate(zip(a, b)):
        name = names[i] if names else f"result {i}"
        if isinstance(x, np.ndarray):
            assert_close(y, x, rtol=rtol, atol=atol, name=name)
        else:
            assert y == pytest.approx(x, rel=rtol, abs=atol), name


def _frob(a, b, tol=1e-4, names=None):
    for i, (x, y) in enumerate(zip(a, b)):
        name = names[i] if names else f"result {i}"
        assert y.shape == x.shape, f"{name}: shape {y.shape} != {x.shape}"
        err = rel_frobenius(y, x)
        assert err <= tol, f"{name}: relative Frobenius error {err:.3g} > {tol}"


def _vec(seed, n, scale=1.0, positive=False):
    v = _rng(seed).standard_normal(n).astype(np.float32) * np.float32(scale)
    return np.abs(v) + np.float32(0.5) if positive else v


sizes = st.integers(1, MAX_ELEMENTS)


# ------------------------------------------------------------------------------- arrays / BLAS-1
def test_array_management():
    """empty/zeros/to_device/to_host/view/reshape/copy/fill keep shapes and values; views are
    cached (the same object for the same shape) and share memory with their buffer."""
    be = GPU
    z = be.zeros((3, 4))
    assert tuple(z.shape) == (3, 4) and not _host(be, z).any()
    zi = be.zeros((5,), dtype="int32")
    assert _host(be, zi).dtype == np.int32 and not _host(be, zi).any()
    h = np.arange(12, dtype=np.float32)
    buf = be.to_device(h)
    v = be.view(buf, (2, 3))
    assert v is be.view(buf, (2, 3)) and tuple(v.shape) == (2, 3)
    assert_close(_host(be, v), h[:6].reshape(2, 3))
    r = be.reshape(buf, (3, 4))
    assert r is be.reshape(buf, [3, 4])
    be.fill(v, 2.0)                       # writes through the view into buf
    assert_close(_host(be, buf)[:6], np.full(6, 2, np.float32))
    assert_close(_host(be, buf)[6:], h[6:])
    out = np.zeros((4, 3), np.float32)
    be.to_host(r, out=out)
    assert_close(out.reshape(-1), _host(be, buf))
    dst = be.empty((12,))
    be.copy(r, dst)
    assert_close(_host(be, dst), _host(be, buf))
    be.to_device(np.ones((3, 4)), out=dst)
    assert_close(_host(be, dst), np.ones(12, np.float32))
    with pytest.raises(ValueError):
        be.reshape(buf, (5, 5))
    with pytest.raises(ValueError):
        be.to_device(np.ones(5), out=dst)
    scalar = be.view(be.zeros((1,)), ())
    assert tuple(scalar.shape) == ()


class _Foreign:
    """A foreign device array (as CuPy/PyTorch would hand over): only ``__cuda_array_interface__``.
    In the simulator the "device" pointer is host memory, so it is built from the numpy buffer."""

    def __init__(self, dev):
        self._keep = dev
        ai = dev._ary.__array_interface__ if _SIM else dev.__cuda_array_interface__
        self.__cuda_array_interface__ = {"shape": tuple(ai["shape"]), "typestr": ai["typestr"],
                                         "data": ai["data"], "strides": None, "version": 3}


def test_cuda_array_interface_inputs():
    """Ops take any __cuda_array_interface__ object without copying (reads and writes land in
    the foreign buffer)."""
    be = GPU
    h = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    x = be.to_device(h)
    y = be.zeros((3, 4))
    be.relu_fwd(_Foreign(x), _Foreign(y))
    assert_close(_host(be, y), np.maximum(h, 0), 0, 0, name="relu through CAI")
    c = be.zeros((3, 3))
    be.gemm(False, True, 1.0, _Foreign(x), _Foreign(x), 0.0, _Foreign(c))
    assert rel_frobenius(_host(be, c), h @ h.T) < 1e-5
    assert_close(be.to_host(_Foreign(y)), np.maximum(h, 0), 0, 0, name="to_host of a CAI object")
    out = be.to_device(_Foreign(x))           # device-to-device copy into a new array
    assert out is not x and rel_frobenius(_host(be, out), h) == 0


@pytest.mark.parametrize("op", ["fill", "copy", "axpy", "axpby", "axpby0", "scal", "scal0",
                                "add", "sub", "mul", "div"])
@given(n=sizes, seed=seeds, alpha=st.sampled_from([1.0, -0.5, 2.25]))
def test_blas1_and_arithmetic(op, n, seed, alpha):
    x, y = _vec(seed, n), _vec(seed + 1, n, positive=op == "div")
    if op == "axpby0":   # beta == 0 must not read y (NaN garbage)
        y = np.full(n, np.nan, np.float32)

    def fn(be, x, y):
        if op == "fill":
            be.fill(x, alpha)
            return x
        if op == "copy":
            be.copy(x, y)
            return y
        if op == "axpy":
            be.axpy(alpha, x, y)
            return y
        if op in ("axpby", "axpby0"):
            be.axpby(alpha, x, 0.0 if op == "axpby0" else 0.75, y)
            return y
        if op in ("scal", "scal0"):
            xn = x if op == "scal" else be.to_device(np.full(n, np.nan, np.float32))
            be.scal(alpha if op == "scal" else 0.0, xn)
            return xn
        out = _garbage(be, (n,))
        getattr(be, op)(x, y, out)
        return out

    c, g = both(fn, x, y)
    _close_all(c, g)


@pytest.mark.parametrize("op", ["dot", "asum", "sumsq"])
@given(n=sizes, seed=seeds)
def test_reductions(op, n, seed):
    x, y = _vec(seed, n), _vec(seed + 1, n)
    c, g = both(lambda be, x, y: getattr(be, op)(x, y) if op == "dot" else getattr(be, op)(x), x, y)
    assert isinstance(g[0], float)
    assert g[0] == pytest.approx(c[0], rel=1e-4, abs=1e-4)


@FEW
@given(m=st.integers(1, MAX_GEMM_DIM), n=st.integers(1, MAX_GEMM_DIM), k=st.integers(1, MAX_GEMM_DIM),
       ta=st.booleans(), tb=st.booleans(), beta=st.sampled_from([0.0, 1.0, 0.5]), seed=seeds)
def test_gemm(m, n, k, ta, tb, beta, seed):
    a = _rng(seed).standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = _rng(seed + 1).standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c0 = _rng(seed + 2).standard_normal((m, n)).astype(np.float32)
    if beta == 0:
        c0[...] = np.nan      # beta == 0 must not read C

    def fn(be, a, b, c):
        be.gemm(ta, tb, 1.5, a, b, beta, c)
        return c

    c, g = both(fn, a, b, c0)
    _frob(c, g)


# ------------------------------------------------------------------------------- activations
ACTIVATIONS = {
    # name: (forward call, backward call, input transform)
    "relu": (lambda be, x, y: be.relu_fwd(x, y), lambda be, x, y, dy, dx: be.relu_bwd(x, dy, dx), None),
    "leaky": (lambda be, x, y: be.relu_fwd(x, y, 0.1), lambda be, x, y, dy, dx: be.relu_bwd(x, dy, dx, 0.1),
              None),
    "sigmoid": (lambda be, x, y: be.sigmoid_fwd(x, y), lambda be, x, y, dy, dx: be.sigmoid_bwd(y, dy, dx),
                None),
    "tanh": (lambda be, x, y: be.tanh_fwd(x, y), lambda be, x, y, dy, dx: be.tanh_bwd(y, dy, dx), None),
    "elu": (lambda be, x, y: be.elu_fwd(x, y, 0.7), lambda be, x, y, dy, dx: be.elu_bwd(x, y, dy, dx, 0.7),
            None),
    "abs": (lambda be, x, y: be.abs_fwd(x, y), lambda be, x, y, dy, dx: be.abs_bwd(x, dy, dx), None),
    "bnll": (lambda be, x, y: be.bnll_fwd(x, y), lambda be, x, y, dy, dx: be.bnll_bwd(x, dy, dx), None),
    "power": (lambda be, x, y: be.power_fwd(x, y, 2.0, 0.5, 3.0),
              lambda be, x, y, dy, dx: be.power_bwd(x, y, dy, dx, 2.0, 0.5, 3.0), None),
    "power_frac": (lambda be, x, y: be.power_fwd(x, y, 0.5, 1.0, 1.0),
                   lambda be, x, y, dy, dx: be.power_bwd(x, y, dy, dx, 0.5, 1.0, 1.0), "positive"),
    "power_zero": (lambda be, x, y: be.power_fwd(x, y, 0.0, 1.0, 0.0),
                   lambda be, x, y, dy, dx: be.power_bwd(x, y, dy, dx, 0.0, 1.0, 0.0), None),
    "exp": (lambda be, x, y: be.exp_fwd(x, y, -1.0, 0.5, 0.25),
            lambda be, x, y, dy, dx: be.exp_bwd(y, dy, dx, -1.0, 0.5), None),
    "exp2": (lambda be, x, y: be.exp_fwd(x, y, 2.0, 1.0, -1.0),
             lambda be, x, y, dy, dx: be.exp_bwd(y, dy, dx, 2.0, 1.0), None),
    "log": (lambda be, x, y: be.log_fwd(x, y, -1.0, 1.0, 0.0),
            lambda be, x, y, dy, dx: be.log_bwd(x, dy, dx, -1.0, 1.0, 0.0), "positive"),
    "log10": (lambda be, x, y: be.log_fwd(x, y, 10.0, 2.0, 0.5),
              lambda be, x, y, dy, dx: be.log_bwd(x, dy, dx, 10.0, 2.0, 0.5), "positive"),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(n=sizes, seed=seeds, in_place=st.booleans())
def test_activation(name, n, seed, in_place):
    fwd, bwd, kind = ACTIVATIONS[name]
    x = _vec(seed, n, scale=3.0, positive=kind == "positive")
    dy = _vec(seed + 1, n)

    def fn(be, x, dy):
        x_keep = be.empty((n,))
        be.copy(x, x_keep)
        y = x if in_place else _garbage(be, (n,))
        fwd(be, x, y)
        dx = dy if in_place else _garbage(be, (n,))
        bwd(be, x_keep, y, dy, dx)
        return y, dx

    c, g = both(fn, x, dy)
    _close_all(c, g, rtol=2e-5, atol=1e-6, names=["y", "dx"])


# ------------------------------------------------------------------------------- dropout
@given(n=sizes, seed=seeds, ratio=st.sampled_from([0.0, 0.3, 0.5, 0.9]),
       counter=st.integers(0, 10**6))
def test_dropout(n, seed, ratio, counter):
    """Same seed and counter: the same keep mask on both backends (uint8, the Dropout layer's
    mask dtype; the cuda kernel takes uint8 only)."""
    x, dy = _vec(seed, n), _vec(seed + 1, n)

    def fn(be, x, dy):
        y = _garbage(be, (n,))
        mask = be.empty((n,), dtype="uint8")
        be.dropout_fwd(x, y, mask, ratio, seed, counter)
        dx = _garbage(be, (n,))
        be.dropout_bwd(dy, mask, dx, ratio)
        return y, mask, dx

    c, g = both(fn, x, dy)
    np.testing.assert_array_equal(g[1], c[1], err_msg="dropout masks differ")
    assert set(np.unique(g[1])) <= {0, 1}
    _close_all(c, g, names=["y", "mask", "dx"])


# ------------------------------------------------------------------------------- bias / scale
@st.composite
def oid(draw):
    return (draw(st.integers(1, MAX_BATCH * 2)), draw(st.integers(1, MAX_CHANNELS + 2)),
            draw(st.integers(1, MAX_SPATIAL * 2)))


@given(dims=oid(), seed=seeds, in_place=st.booleans())
def test_bias(dims, seed, in_place):
    o, d, i = dims
    x, b, dy = _vec(seed, o * d * i), _vec(seed + 1, d), _vec(seed + 2, o * d * i)
    db0 = _vec(seed + 3, d)

    def fn(be, x, b, dy, db):
        y = x if in_place else _garbage(be, (o * d * i,))
        be.bias_fwd(x, b, y, o, d, i)
        be.bias_bwd(dy, db, o, d, i)     # accumulates onto db0
        return y, db

    c, g = both(fn, x, b, dy, db0)
    _close_all(c, g, rtol=1e-5, atol=1e-5, names=["y", "db"])


@given(dims=oid(), seed=seeds, with_bias=st.booleans(), acc=st.booleans(), in_place=st.booleans())
def test_scale(dims, seed, with_bias, acc, in_place):
    o, d, i = dims
    n = o * d * i
    x, s, b, dy = _vec(seed, n), _vec(seed + 1, d), _vec(seed + 2, d), _vec(seed + 3, n)
    ds0 = _vec(seed + 4, d)

    def fn(be, x, s, b, dy, ds):
        y = x if in_place else _garbage(be, (n,))
        x_keep = be.empty((n,))
        be.copy(x, x_keep)
        be.scale_fwd(x, s, b if with_bias else None, y, o, d, i)
        dx = _garbage(be, (n,))
        be.scale_bwd(x_keep, s, dy, dx, ds, o, d, i, accumulate_ds=acc)
        return y, dx, ds

    c, g = both(fn, x, s, b, dy, ds0)
    _close_all(c, g, rtol=1e-5, atol=1e-5, names=["y", "dx", "ds"])


# ------------------------------------------------------------------------------- convolution
@st.composite
def conv_geometries(draw):
    group = draw(st.sampled_from([1, 1, 2]))
    cin = group * draw(st.integers(1, max(1, MAX_CHANNELS // group)))
    cout = group * draw(st.integers(1, max(1, MAX_CHANNELS // group)))
    n = draw(st.integers(1, MAX_BATCH))
    dims = []
    for _ in range(2):
        size = draw(st.integers(1, MAX_SPATIAL))
        k = draw(st.integers(1, 3))
        dil = draw(st.sampled_from([1, 1, 2]))
        pad = draw(st.integers(0, 2))
        stride = draw(st.integers(1, 2))
        if size + 2 * pad < dil * (k - 1) + 1:
            pad = (dil * (k - 1) + 1 - size + 1) // 2
        dims.append((size, k, stride, pad, dil, conv_out_size(size, k, pad, stride, dil)))
    (h, kh, sh, ph, dh, oh), (w, kw, sw, pw, dw, ow) = dims
    return ConvGeometry(n, cin, h, w, cout, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group)


def _conv_case(g: ConvGeometry, seed: int, with_bias: bool):
    r = _rng(seed)
    x = r.standard_normal(g.x_shape).astype(np.float32)
    w = r.standard_normal(g.w_shape).astype(np.float32)
    b = r.standard_normal(g.c_out).astype(np.float32) if with_bias else None
    dy = r.standard_normal(g.y_shape).astype(np.float32)
    dw0 = r.standard_normal(g.w_shape).astype(np.float32)
    db0 = r.standard_normal(g.c_out).astype(np.float32)

    def fn(be, x, w, b, dy, dw, db):
        y = _garbage(be, g.y_shape)
        be.conv_forward(x, w, b, y, g)
        dx = _garbage(be, g.x_shape)
        be.conv_backward(x, w, dy, dx, dw, db, g)
        return y, dx, dw, db

    return both(fn, x, w, b, dy, dw0, db0)


@FEW
@given(g=conv_geometries(), seed=seeds, with_bias=st.booleans())
def test_conv(g, seed, with_bias):
    c, g_ = _conv_case(g, seed, with_bias)
    _frob(c, g_, names=["y", "dx", "dw (accumulated)", "db (accumulated)"])


@pytest.mark.parametrize("g", [
    ConvGeometry(2, 3, 4, 5, 4, 4, 5, 1, 1),                            # 1x1: no im2col
    ConvGeometry(2, 2, 5, 5, 2, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, group=2),  # grouped, strided, padded
    ConvGeometry(1, 1, 6, 6, 1, 2, 2, 3, 3, 1, 1, 0, 0, 2, 2),          # dilated
], ids=["1x1", "group2", "dilated"])
def test_conv_cases(g):
    c, g_ = _conv_case(g, 3, True)
    _frob(c, g_, names=["y", "dx", "dw", "db"])


# ------------------------------------------------------------------------------- pooling
@st.composite
def pool_geometries(draw):
    n, c = draw(st.integers(1, MAX_BATCH)), draw(st.integers(1, MAX_CHANNELS))
    dims = []
    for _ in range(2):
        size = draw(st.integers(1, MAX_SPATIAL))
        k = draw(st.integers(1, min(size + 1, 4)))
        pad = draw(st.integers(0, k - 1)) if k > 1 else 0
        if k > size + 2 * pad:
            pad = k - 1
        stride = draw(st.integers(1, k))   # stride > kernel can leave an empty last window (Caffe: 0/0)
        dims.append((size, k, stride, pad))
    (h, kh, sh, ph), (w, kw, sw, pw) = dims
    any_pad = bool(ph or pw)          # Caffe clips the last window on both axes when either pads
    oh = pooled_size_ref(h, kh, ph, sh, any_pad=any_pad)
    ow = pooled_size_ref(w, kw, pw, sw, any_pad=any_pad)
    return PoolGeometry(n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw)


@FEW
@given(g=pool_geometries(), seed=seeds, ties=st.booleans())
def test_max_pool(g, seed, ties):
    r = _rng(seed)
    shape = (g.n, g.c, g.h, g.w)
    x = (r.integers(-2, 3, shape) if ties else r.standard_normal(shape)).astype(np.float32)
    yshape = (g.n, g.c, g.out_h, g.out_w)
    dy = r.standard_normal(yshape).astype(np.float32)

    def fn(be, x, dy):
        y = _garbage(be, yshape)
        mask = be.empty(yshape, dtype="int32")
        be.max_pool_fwd(x, y, mask, g)
        dx = _garbage(be, shape)
        be.max_pool_bwd(dy, mask, dx, g)
        return y, mask, dx

    c, g_ = both(fn, x, dy)
    np.testing.assert_array_equal(g_[1], c[1], err_msg="argmax masks differ")
    _close_all(c, g_, names=["y", "mask", "dx"])


@FEW
@given(g=pool_geometries(), seed=seeds)
def test_ave_pool(g, seed):
    r = _rng(seed)
    shape = (g.n, g.c, g.h, g.w)
    yshape = (g.n, g.c, g.out_h, g.out_w)
    x = r.standard_normal(shape).astype(np.float32)
    dy = r.standard_normal(yshape).astype(np.float32)

    def fn(be, x, dy):
        y = _garbage(be, yshape)
        be.ave_pool_fwd(x, y, g)
        dx = _garbage(be, shape)
        be.ave_pool_bwd(dy, dx, g)
        return y, dx

    c, g_ = both(fn, x, dy)
    _close_all(c, g_, rtol=1e-5, atol=1e-5, names=["y", "dx"])


# ------------------------------------------------------------------------------- LRN
@FEW
@given(n=st.integers(1, MAX_BATCH), c=st.integers(1, MAX_CHANNELS + 3), h=st.integers(1, 4),
       w=st.integers(1, 4), local=st.sampled_from([1, 3, 5]), within=st.booleans(), seed=seeds)
def test_lrn(n, c, h, w, local, within, seed):
    r = _rng(seed)
    shape = (n, c, h, w)
    x = r.standard_normal(shape).astype(np.float32)
    dy = r.standard_normal(shape).astype(np.float32)
    alpha, beta, k = 0.7, 0.75, 2.0

    def fn(be, x, dy):
        y, scale, dx = _garbage(be, shape), _garbage(be, shape), _garbage(be, shape)
        if within:
            be.lrn_within_fwd(x, y, scale, local, alpha, beta)
            be.lrn_within_bwd(x, y, scale, dy, dx, local, alpha, beta)
        else:
            be.lrn_across_fwd(x, y, scale, local, alpha, beta, k)
            be.lrn_across_bwd(x, y, scale, dy, dx, local, alpha, beta)
        return y, scale, dx

    c_, g_ = both(fn, x, dy)
    _close_all(c_, g_, rtol=1e-4, atol=1e-5, names=["y", "scale", "dx"])


# ------------------------------------------------------------------------------- softmax / losses
@FEW
@given(dims=oid(), seed=seeds, in_place=st.booleans())
def test_softmax(dims, seed, in_place):
    o, d, i = dims
    x, dy = _vec(seed, o * d * i, 3.0), _vec(seed + 1, o * d * i)

    def fn(be, x, dy):
        y = x if in_place else _garbage(be, (o * d * i,))
        be.softmax_fwd(x, y, o, d, i)
        dx = dy if in_place else _garbage(be, (o * d * i,))
        be.softmax_bwd(y, dy, dx, o, d, i)
        return y, dx

    c, g = both(fn, x, dy)
    _close_all(c, g, rtol=1e-5, atol=1e-6, names=["y", "dx"])


@FEW
@given(dims=oid(), seed=seeds, ignore=st.sampled_from([None, 0, -1]))
def test_softmax_loss(dims, seed, ignore):
    o, d, i = dims
    r = _rng(seed)
    logits = r.standard_normal((o, d, i)).astype(np.float32)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    prob[0, 0, 0] = 0.0   # the FLT_MIN floor
    label = r.integers(-1 if ignore == -1 else 0, d, o * i).astype(np.float32)

    def fn(be, prob, label):
        loss, count = be.softmax_loss_fwd(prob, label, o, d, i, ignore)
        dx = _garbage(be, (o, d, i))
        be.softmax_loss_bwd(prob, label, dx, o, d, i, ignore, 0.37)
        return loss, count, dx

    c, g = both(fn, prob.astype(np.float32), label)
    assert g[1] == c[1]
    assert g[0] == pytest.approx(c[0], rel=1e-5, abs=1e-5)
    assert_close(g[2], c[2], rtol=1e-5, atol=1e-6, name="dx")


def test_softmax_loss_bad_label():
    prob = np.full((2, 3, 1), 1 / 3, np.float32)
    for be in (CPU, GPU):
        with pytest.raises(ValueError):
            be.softmax_loss_fwd(_up(be, prob), _up(be, np.array([0, 3], np.float32)), 2, 3, 1, None)


@given(n=sizes, seed=seeds, ignore=st.sampled_from([None, -1]))
def test_sigmoid_ce_loss(n, seed, ignore):
    r = _rng(seed)
    x = (r.standard_normal(n) * 4).astype(np.float32)
    t = r.integers(-1 if ignore is not None else 0, 2, n).astype(np.float32)

    def fn(be, x, t):
        loss, count = be.sigmoid_ce_loss_fwd(x, t, ignore)
        dx = _garbage(be, (n,))
        be.sigmoid_ce_loss_bwd(x, t, dx, ignore, 0.5)
        return loss, count, dx

    c, g = both(fn, x, t)
    assert g[1] == c[1]
    assert g[0] == pytest.approx(c[0], rel=1e-5, abs=1e-4)
    assert_close(g[2], c[2], rtol=1e-5, atol=1e-6, name="dx")


@given(n=st.integers(1, MAX_BATCH * 3), d=st.integers(1, 6), seed=seeds, legacy=st.booleans())
def test_contrastive_loss(n, d, seed, legacy):
    r = _rng(seed)
    a = r.standard_normal((n, d)).astype(np.float32)
    b = (a + r.standard_normal((n, d)) * 0.5).astype(np.float32)
    sim = r.integers(0, 2, n).astype(np.float32)
    margin = 1.5

    def fn(be, a, b, sim):
        diff, dist_sq = _garbage(be, (n, d)), _garbage(be, (n,))
        loss = be.contrastive_loss_fwd(a, b, sim, diff, dist_sq, margin, legacy)
        da, db = _garbage(be, (n, d)), _garbage(be, (n, d))
        be.contrastive_loss_bwd(diff, dist_sq, sim, da, 1.0, margin, legacy, 0.25)
        be.contrastive_loss_bwd(diff, dist_sq, sim, db, -1.0, margin, legacy, 0.25)
        return loss, diff, dist_sq, da, db

    c, g = both(fn, a, b, sim)
    assert g[0] == pytest.approx(c[0], rel=1e-5, abs=1e-5)
    _close_all(c[1:], g[1:], rtol=1e-5, atol=1e-5, names=["diff", "dist_sq", "da", "db"])


# ------------------------------------------------------------------------------- concat / eltwise
@given(outer=st.integers(1, MAX_BATCH * 2), inner=st.integers(1, MAX_SPATIAL * 2),
       dims=st.lists(st.integers(1, MAX_CHANNELS), min_size=1, max_size=3), seed=seeds,
       skip=st.integers(-1, 2))
def test_concat(outer, inner, dims, seed, skip):
    xs = [_vec(seed + j, outer * d * inner) for j, d in enumerate(dims)]
    total = sum(dims)
    dy = _vec(seed + 9, outer * total * inner)

    def fn(be, dy, *xs):
        y = _garbage(be, (outer * total * inner,))
        be.concat_fwd(list(xs), y, outer, dims, inner)
        dxs = [None if j == skip else _garbage(be, (outer * d * inner,)) for j, d in enumerate(dims)]
        be.concat_bwd(dy, dxs, outer, dims, inner)
        return (y, *[dx for dx in dxs if dx is not None])

    c, g = both(fn, dy, *xs)
    _close_all(c, g, rtol=0, atol=0)


@given(n=sizes, k=st.integers(2, 4), seed=seeds, ties=st.booleans())
def test_eltwise_max(n, k, seed, ties):
    r = _rng(seed)
    xs = [(r.integers(-1, 2, n) if ties else r.standard_normal(n)).astype(np.float32) for _ in range(k)]
    dy = _vec(seed + 1, n)

    def fn(be, dy, *xs):
        y = _garbage(be, (n,))
        mask = be.empty((n,), dtype="int32")
        be.eltwise_max_fwd(list(xs), y, mask)
        outs = [y, mask]
        for j in range(k):
            dx = _garbage(be, (n,))
            be.eltwise_max_bwd(dy, mask, j, dx)
            outs.append(dx)
        return tuple(outs)

    c, g = both(fn, dy, *xs)
    np.testing.assert_array_equal(g[1], c[1], err_msg="eltwise max masks differ")
    _close_all(c, g, rtol=0, atol=0)


# ------------------------------------------------------------------------------- batch norm
@given(n=st.integers(1, MAX_BATCH * 2), c=st.integers(1, MAX_CHANNELS + 2), s=st.integers(1, MAX_SPATIAL * 2),
       seed=seeds, use_global=st.booleans(), in_place=st.booleans())
def test_batchnorm(n, c, s, seed, use_global, in_place):
    r = _rng(seed)
    x = (r.standard_normal((n, c, s)) * 2 + 1).astype(np.float32)
    dy = r.standard_normal((n, c, s)).astype(np.float32)

    def fn(be, x, dy):
        mean, var, inv = _garbage(be, (c,)), _garbage(be, (c,)), _garbage(be, (c,))
        be.channel_mean_var(x, mean, var, n, c, s)
        y = x if in_place else _garbage(be, (n, c, s))
        be.batchnorm_fwd(x, mean, var, 1e-5, y, inv, n, c, s)
        dx = dy if in_place else _garbage(be, (n, c, s))
        be.batchnorm_bwd(y, dy, inv, dx, n, c, s, use_global)
        return mean, var, inv, y, dx

    c_, g = both(fn, x, dy)
    _close_all(c_, g, rtol=1e-4, atol=1e-5, names=["mean", "var", "inv_std", "y", "dx"])


# ------------------------------------------------------------------------------- host-side ops
@given(dims=oid(), seed=seeds, top_k=st.integers(1, 3), ignore=st.sampled_from([None, 1]))
def test_accuracy_argmax(dims, seed, top_k, ignore):
    o, d, i = dims
    top_k = min(top_k, d)
    r = _rng(seed)
    x = r.integers(-2, 3, (o, d, i)).astype(np.float32)   # ties
    label = r.integers(0, d, o * i).astype(np.float32)

    def fn(be, x, label):
        acc = be.accuracy(x, label, o, d, i, top_k, ignore)
        y = _garbage(be, (o, top_k, i))
        be.argmax(x, y, o, d, i, top_k, False, True)
        return acc[0], acc[1], acc[2], acc[3], y

    c, g = both(fn, x, label)
    assert g[:2] == c[:2]
    _close_all(c[2:], g[2:], rtol=0, atol=0)
