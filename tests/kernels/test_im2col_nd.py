"""kernels/im2col_nd.py and kernels/conv_nd.py against the naive N-D references
(tests/reference/conv_nd.py): im2col_nd / col2im_nd for drawn 1-3 spatial axes, kernels, pads,
strides, dilations and image ranges (exact: copies and adds of a few terms); the composed N-D
convolution forward and all three gradients, also split into chunks of one image (1e-4 relative:
GEMM sums reorder); the Im2col layer's layout (im2col_layer_fwd / _bwd) against the loops of
tests/reference/caffe_extra.py."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from kernels import conv_nd as CND
from kernels import im2col_nd as I
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.reference.conv_nd import col2im_nd_ref, conv_nd_backward_ref, conv_nd_ref, im2col_nd_ref, out_shape
from tests.sizes import ON_GPU


@st.composite
def geometries(draw, max_axes=3):
    d = draw(st.integers(1, max_axes))
    ins = tuple(draw(st.integers(1, 4)) for _ in range(d))
    kernel, pad, stride, dil = [], [], [], []
    for i in ins:
        dl = draw(st.integers(1, 2))
        p = draw(st.integers(0, 1))
        k = draw(st.integers(1, max(1, (i + 2 * p - 1) // dl + 1)))
        kernel.append(k)
        pad.append(p)
        stride.append(draw(st.integers(1, 2)))
        dil.append(dl)
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    n0 = draw(st.integers(0, n - 1))
    n1 = draw(st.integers(n0 + 1, n))
    return (n, c) + ins, tuple(kernel), tuple(pad), tuple(stride), tuple(dil), n0, n1


@given(geometries())
def test_im2col_nd_matches_reference(g):
    shape, kernel, pad, stride, dil, n0, n1 = g
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    want = im2col_nd_ref(x, n0, n1, kernel, pad, stride, dil)
    col = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    outs = out_shape(shape[2:], kernel, pad, stride, dil)
    I.im2col_nd(cuda.to_device(x), n0, n1, kernel, pad, stride, dil, outs, col)
    assert_close(col.copy_to_host(), want, 0, 0, name="col")


@given(geometries())
def test_col2im_nd_matches_reference(g):
    shape, kernel, pad, stride, dil, n0, n1 = g
    outs = out_shape(shape[2:], kernel, pad, stride, dil)
    rows, cols = shape[1] * int(np.prod(kernel)), (n1 - n0) * int(np.prod(outs))
    col = np.random.default_rng(rows + cols).standard_normal((rows, cols)).astype(np.float32)
    dx = cuda.to_device(np.full(shape, 5.0, np.float32))
    I.col2im_nd(cuda.to_device(col), n0, n1, kernel, pad, stride, dil, outs, dx)
    got = dx.copy_to_host()
    want = col2im_nd_ref(col.astype(np.float64), shape, n0, n1, kernel, pad, stride, dil)
    assert_close(got[n0:n1], want[n0:n1], 1e-6, 1e-6, name="dx rows written")
    assert (np.delete(got, np.s_[n0:n1], axis=0) == 5.0).all(), "rows outside [n0, n1) touched"


@settings(max_examples=3 if not ON_GPU else 40)     # each example runs 6 GEMMs in the simulator
@given(geometries(max_axes=3), st.integers(1, 2), st.booleans())
def test_conv_nd_forward_and_backward(g, groups, one_image_chunks):
    shape, kernel, pad, stride, dil, _, _ = g
    n, c = shape[:2]
    c *= groups
    cout = 2 * groups
    shape = (n, c) + shape[2:]
    rng = np.random.default_rng(c + cout + sum(kernel))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((cout, c // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    outs = out_shape(shape[2:], kernel, pad, stride, dil)
    cap = 4 if one_image_chunks else 1 << 20            # bytes: 4 forces one image per chunk
    y = cuda.to_device(np.full((n, cout) + outs, np.nan, np.float32))
    CND.conv_nd_forward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), y, pad, stride, dil,
                        groups, max_col_bytes=cap)
    assert_close(y.copy_to_host(), conv_nd_ref(x, w, b, pad, stride, dil, groups), 1e-4, 1e-4, name="y")
    dy = rng.standard_normal((n, cout) + outs).astype(np.float32)
    dx = cuda.to_device(np.full(shape, np.nan, np.float32))
    dw = cuda.to_device(np.ones(w.shape, np.float32))           # accumulates onto 1
    db = cuda.to_device(np.ones(cout, np.float32))
    CND.conv_nd_backward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), dx, dw, db, pad,
                         stride, dil, groups, max_col_bytes=cap)
    want_dx, want_dw, want_db = conv_nd_backward_ref(x, w, dy, pad, stride, dil, groups)
    assert_close(db.copy_to_host(), 1 + want_db, 1e-4, 1e-4, name="db")
    assert_close(dw.copy_to_host(), 1 + want_dw, 1e-4, 1e-4, name="dw")
    assert_close(dx.copy_to_host(), want_dx, 1e-4, 1e-4, name="dx")


# ------------------------------------------------------------------ the Im2col layer's layout

@st.composite
def layer_geometry(draw):
    nd = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 1)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    ins = tuple(max(draw(st.integers(1, 4)), dd * (kk - 1) + 1 - 2 * pp) for kk, pp, dd in zip(k, p, d))
    return ins, k, s, p, d


@given(g=layer_geometry(), num=st.integers(1, 2), c=st.integers(1, 2), seed=st.integers(0, 2**31 - 1))
def test_im2col_layer(g, num, c, seed):
    ins, k, s, p, d = g
    outs = tuple((i + 2 * pp - (dd * (kk - 1) + 1)) // ss + 1 for i, kk, ss, pp, dd in zip(ins, k, s, p, d))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, c) + ins).astype(np.float32)
    y_ref = ref.im2col_ref(x, k, s, p, d)
    y = cuda.to_device(np.full(y_ref.size, 7, np.float32))
    I.im2col_layer_fwd(cuda.to_device(x.reshape(-1)), y, num, c, ins, outs, k, s, p, d)
    assert_close(y.copy_to_host(), y_ref.reshape(-1), 0, 0, name="y")
    dyv = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx = cuda.to_device(np.full(x.size, 7, np.float32))
    I.im2col_layer_bwd(cuda.to_device(dyv.reshape(-1)), dx, num, c, ins, outs, k, s, p, d)
    assert_close(dx.copy_to_host(), ref.im2col_grad_ref(x.shape, dyv, k, s, p, d).reshape(-1), 1e-5, 1e-6)
