"""kernels/im2col_layer.py (Caffe's Im2col layer over 1, 2 or 3 spatial axes) against the loops of
tests/reference/caffe_extra.py, hypothesis-drawn shapes, kernels, strides, pads and dilations."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import im2col_layer as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref


@st.composite
def geometry(draw):
    nd = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 1)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    ins = tuple(max(draw(st.integers(1, 4)), dd * (kk - 1) + 1 - 2 * pp) for kk, pp, dd in zip(k, p, d))
    return ins, k, s, p, d


@given(g=geometry(), num=st.integers(1, 2), c=st.integers(1, 2), seed=st.integers(0, 2**31 - 1))
def test_im2col_layer(g, num, c, seed):
    ins, k, s, p, d = g
    outs = tuple((i + 2 * pp - (dd * (kk - 1) + 1)) // ss + 1 for i, kk, ss, pp, dd in zip(ins, k, s, p, d))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, c) + ins).astype(np.float32)
    y_ref = ref.im2col_ref(x, k, s, p, d)
    y = cuda.to_device(np.full(y_ref.size, 7, np.float32))
    K.im2col_layer_fwd(cuda.to_device(x.reshape(-1)), y, num, c, ins, outs, k, s, p, d)
    assert_close(y.copy_to_host(), y_ref.reshape(-1), 0, 0, name="y")
    dyv = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx = cuda.to_device(np.full(x.size, 7, np.float32))
    K.im2col_layer_bwd(cuda.to_device(dyv.reshape(-1)), dx, num, c, ins, outs, k, s, p, d)
    assert_close(dx.copy_to_host(), ref.im2col_grad_ref(x.shape, dyv, k, s, p, d).reshape(-1), 1e-5, 1e-6)
