"""kernels/reduction.py (Caffe's Reduction: SUM, ASUM, SUMSQ; MEAN is SUM with coeff / dim) against
tests/reference/caffe_extra.py, hypothesis-drawn rows, lengths, ops and coefficients; the single-row
path (axis 0) and the block-per-row path."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import reduction as K
from tests.helpers import assert_close
from tests.reference import caffe_extra as ref
from tests.sizes import MAX_ELEMENTS

OPS = {"SUM": K.OP_SUM, "ASUM": K.OP_ASUM, "SUMSQ": K.OP_SUMSQ}


@given(num=st.integers(1, 6), dim=st.integers(0, min(MAX_ELEMENTS // 3, 1 << 13)),
       op=st.sampled_from(sorted(OPS)), coeff=st.sampled_from([1.0, -0.5, 3.0]),
       seed=st.integers(0, 2**31 - 1))
def test_reduction(num, dim, op, coeff, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, dim)).astype(np.float32)
    x.reshape(-1)[::5] = 0                                  # ASUM's sign(0) = 0
    y = cuda.to_device(np.full(num, 5, np.float32))
    K.reduction_fwd(cuda.to_device(x.reshape(-1)), y, num, dim, OPS[op], coeff)
    y_ref = ref.reduction_ref(x, 1, op, coeff)
    assert_close(y.copy_to_host(), y_ref, 1e-5, 1e-5, name="y")
    dyv = rng.standard_normal(num).astype(np.float32)
    dx = cuda.to_device(np.full(num * dim, 9, np.float32))
    K.reduction_bwd(cuda.to_device(x.reshape(-1)), cuda.to_device(dyv), dx, num, dim, OPS[op], coeff)
    assert_close(dx.copy_to_host(), ref.reduction_grad_ref(x, dyv, 1, op, coeff).reshape(-1), 1e-6,
                 1e-6, name="dx")
