"""Naive GEMM reference (float64): ``alpha * op(A) @ op(B) + beta * C`` with BLAS semantics."""
from __future__ import annotations

import numpy as np


def gemm_ref(trans_a: bool, trans_b: bool, alpha: float, A, B, beta: float, C) -> np.ndarray:
    """Return ``alpha * op(A) @ op(B) + beta * C`` in float64; ``beta == 0`` ignores C entirely
    (C may hold NaN), as BLAS does. op(X) = X.T when the flag is set."""
    a = np.asarray(A, dtype=np.float64)
    b = np.asarray(B, dtype=np.float64)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    M, K = a.shape
    K2, N = b.shape
    assert K == K2, (a.shape, b.shape)
    prod = np.einsum("mk,kn->mn", a, b)
    if beta == 0:
        return alpha * prod
    return alpha * prod + beta * np.asarray(C, dtype=np.float64)
