"""kernels/im2col.py against tap-loop references (tests/reference/conv.py) and adjointness.

im2col copies values, so it must match exactly; col2im sums at most kh*kw float32 terms per pixel
(rtol 1e-5, atol 1e-6). Adjointness: <im2col(x), Y> == <x, col2im(Y)> within 1e-5 relative (float64
dot products of the float32 results). Shapes: hypothesis over batch ranges [n0, n1), channels, H, W,
kernel, pad (up to the kernel size), stride (up to kernel + 1), dilation (1-2), plus fixed edge cases.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import im2col as I
from tests.helpers import assert_close
from tests.reference.conv import col2im_ref, im2col_ref, out_size
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@st.composite
def geometries(draw):
    """(x_shape, n0, n1, kernel, pad, stride, dil) with an output of at least 1x1."""
    N = draw(st.integers(1, MAX_BATCH))
    n0 = draw(st.integers(0, N - 1))
    n1 = draw(st.integers(n0 + 1, N))
    C = draw(st.integers(1, MAX_CHANNELS))
    H = draw(st.integers(1, MAX_SPATIAL))
    W = draw(st.integers(1, MAX_SPATIAL))
    kh = draw(st.integers(1, min(5, H + 2)))
    kw = draw(st.integers(1, min(5, W + 2)))
    ph = draw(st.integers(0, kh))
    pw = draw(st.integers(0, kw))
    sh = draw(st.integers(1, kh + 1))
    sw = draw(st.integers(1, kw + 1))
    dh = draw(st.integers(1, 2))
    dw = draw(st.integers(1, 2))
    if out_size(H, kh, ph, sh, dh) < 1:
        dh, ph = 1, kh
    if out_size(W, kw, pw, sw, dw) < 1:
        dw, pw = 1, kw
    return (N, C, H, W), n0, n1, (kh, kw), (ph, pw), (sh, sw), (dh, dw)


EDGES = [
    ((2, 3, 5, 4), 0, 2, (1, 1), (0, 0), (1, 1), (1, 1)),   # 1x1 kernel
    ((1, 2, 4, 5), 0, 1, (3, 2), (3, 2), (1, 1), (1, 1)),   # pad >= kernel - 1 (output larger)
    ((2, 2, 7, 6), 1, 2, (2, 2), (0, 1), (3, 4), (1, 1)),   # stride > kernel (gaps)
    ((1, 3, 7, 7), 0, 1, (3, 3), (2, 1), (1, 2), (2, 3)),   # dilation > 1, non-square
    ((3, 1, 3, 6), 1, 3, (1, 4), (0, 0), (2, 1), (1, 1)),   # non-square kernel, chunk in the batch
]


def _run_im2col(version, geo, seed):
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    want = im2col_ref(x, n0, n1, kernel, pad, stride, dil)
    col = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    I.im2col(cuda.to_device(x), n0, n1, *kernel, *pad, *stride, *dil, col, version=version)
    got = col.copy_to_host()
    assert_close(got, want, rtol=0, atol=0, name=f"im2col_{version} {geo}")
    return x, got


@pytest.mark.parametrize("version", ["v1", "v2"])
@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_im2col_matches_reference(version, geo, seed):
    _run_im2col(version, geo, seed)


@pytest.mark.parametrize("geo", EDGES)
def test_im2col_edges(geo):
    _run_im2col("v2", geo, 1)


def _run_col2im(geo, seed):
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    rng = np.random.default_rng(seed)
    OH = out_size(x_shape[2], kernel[0], pad[0], stride[0], dil[0])
    OW = out_size(x_shape[3], kernel[1], pad[1], stride[1], dil[1])
    col = rng.standard_normal((x_shape[1] * kernel[0] * kernel[1], (n1 - n0) * OH * OW)).astype(np.float32)
    dx_init = rng.standard_normal(x_shape).astype(np.float32)   # outside [n0, n1) must stay
    dx = cuda.to_device(dx_init)
    I.col2im(cuda.to_device(col), n0, n1, *kernel, *pad, *stride, *dil, dx)
    got = dx.copy_to_host()
    want = dx_init.astype(np.float64)
    want[n0:n1] = col2im_ref(col, x_shape, n0, n1, kernel, pad, stride, dil)
    assert_close(got, want, rtol=1e-5, atol=1e-6, name=f"col2im {geo}")
    return col, got


@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_col2im_matches_reference(geo, seed):
    _run_col2im(geo, seed)


@pytest.mark.parametrize("geo", EDGES)
def test_col2im_edges(geo):
    _run_col2im(geo, 2)


@pytest.mark.parametrize("geo", EDGES[1:4])
def test_adjoint(geo):
    """<im2col(x), Y> == <x, col2im(Y)> with the device kernels on both sides."""
    x, colx = _run_im2col("v2", geo, 3)
    Y, dx = _run_col2im(geo, 4)
    _, n0, n1 = geo[:3]
    lhs = float(np.dot(colx.astype(np.float64).ravel(), Y.astype(np.float64).ravel()))
    rhs = float(np.dot(x[n0:n1].astype(np.float64).ravel(), dx[n0:n1].astype(np.float64).ravel()))
    assert abs(lhs - rhs) <= 1e-5 * max(1.0, abs(lhs)), (lhs, rhs)


def test_bad_geometry_raises():
    x = cuda.to_device(np.zeros((1, 1, 3, 3), np.float32))
    col = cuda.to_device(np.zeros((9, 1), np.float32))
    with pytest.raises(ValueError, match="col has shape"):
        I.im2col(x, 0, 1, 3, 3, 1, 1, 1, 1, 1, 1, col)
    with pytest.raises(ValueError, match="larger than padded input"):
        I.im2col(x, 0, 1, 5, 5, 0, 0, 1, 1, 1, 1, col)
    with pytest.raises(ValueError, match="image range"):
        I.im2col(x, 0, 2, 3, 3, 0, 0, 1, 1, 1, 1, col)
