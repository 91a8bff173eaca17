"""kernels/gemm_tc.py (tensor-core GEMM) against float64 references (tests/reference/gemm.py and
tests/reference/mma.py), elementwise with the written error bound:

- against the exact product: ``|C' - C| <= gemm_error_bound`` (input rounding to TF32/FP16/BF16
  plus FP32 accumulation, kernels/gemm_tc.py's docstring);
- against the product of the *rounded* inputs: ``|C' - C_r| <= accumulation_bound`` (FP32
  accumulation only, ~100x tighter): the inputs were rounded exactly as the format says (TF32
  round-to-nearest-away, FP16/BF16 to nearest even), not truncated, not left in FP32;
- and, so that the first check means something, the result must differ from the FP32 product by
  more than FP32 rounding somewhere (the tensor-core path really rounds its inputs).

``beta == 0`` runs with C poisoned with NaN (not read). Row-strided operands are column slices of
wider arrays. Every ``KERNELS`` entry runs once on a shape crossing its tile edges; the public
``gemm`` gets hypothesis-drawn shapes, transposes, alpha/beta, precisions and strides.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from kernels import gemm_tc as T
from tests.reference import mma as R
from tests.reference.gemm import gemm_ref
from tests.sizes import MAX_GEMM_DIM

ON_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

dims = st.integers(1, MAX_GEMM_DIM + 16)      # sim: up to 40, past the 32x32 tile and a K-tile
alphas = st.sampled_from([1.0, -0.5, 2.25])
betas = st.sampled_from([0.0, 1.0, -1.5])


def _device(host: np.ndarray, strided: bool, rng):
    """Device copy of ``host``; when ``strided``, a column slice of a wider device array."""
    if not strided:
        return cuda.to_device(np.ascontiguousarray(host))
    rows, cols = host.shape
    wide = rng.standard_normal((rows, cols + 3)).astype(np.float32)
    wide[:, :cols] = host
    return cuda.to_device(wide)[:, :cols]


def _run(launch, precision, ta, tb, M, N, K, alpha, beta, strided=(False, False, False), seed=0,
         slices=1, what=""):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    C = np.full((M, N), np.nan, np.float32) if beta == 0 else rng.standard_normal((M, N)).astype(np.float32)
    dA, dB, dC = _device(A, strided[0], rng), _device(B, strided[1], rng), _device(C, strided[2], rng)
    launch(ta, tb, alpha, dA, dB, beta, dC)
    got = dC.copy_to_host().astype(np.float64)
    tag = f"{what} {precision} ta={ta} tb={tb} M={M} N={N} K={K} a={alpha} b={beta}"
    assert not np.isnan(got).any(), f"{tag}: NaN in C (beta == 0 must not read C)"
    opA, opB = (A.T if ta else A), (B.T if tb else B)
    C0 = np.zeros_like(C) if beta == 0 else C
    want = gemm_ref(False, False, alpha, opA, opB, beta, C0)
    bound = R.gemm_error_bound(np.abs(opA), np.abs(opB), np.abs(C0), alpha, beta, precision, slices)
    err = np.abs(got - want)
    assert (err <= bound).all(), (f"{tag}: {int((err > bound).sum())} elements over the error bound; "
                                  f"worst {np.max(err / bound):.3g} x bound")
    Ar, Br = R.round_inputs(opA, precision), R.round_inputs(opB, precision)
    want_r = gemm_ref(False, False, alpha, Ar, Br, beta, C0)
    acc = R.accumulation_bound(np.abs(Ar), np.abs(Br), np.abs(C0), alpha, beta, precision, slices)
    err_r = np.abs(got - want_r)
    assert (err_r <= acc).all(), (f"{tag}: inputs not rounded as {precision} prescribes: worst "
                                  f"{np.max(err_r / acc):.3g} x the accumulation bound")
    fp32_tol = 2.0 ** -23 * (K + 2) * (np.abs(alpha) * (np.abs(opA) @ np.abs(opB)) + np.abs(beta * C0))
    assert (err > fp32_tol).any() or not (want_r != want).any(), f"{tag}: looks like an FP32 GEMM"


@given(M=dims, N=dims, K=dims, ta=st.booleans(), tb=st.booleans(), alpha=alphas, beta=betas,
       precision=st.sampled_from(T.PRECISIONS),
       strided=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 2**16))
def test_gemm_tc_public(M, N, K, ta, tb, alpha, beta, precision, strided, seed):
    def launch(*args):
        T.gemm(*args, precision=precision)
    _run(launch, precision, ta, tb, M, N, K, alpha, beta, strided, seed, what="gemm")


def _edge_shape(name: str) -> tuple[int, int, int]:
    """A shape with an interior block (the fast path: whole tiles, flat-offset loads) and ragged
    ones, and K = two whole K-tiles and a ragged third. The simulator runs every thread in Python,
    so the 128x128 kernels get one full block row and a ragged block column only."""
    _, _, (bm, bn) = T._LAUNCH[name]
    bk = int(name.rsplit("_", 1)[1])
    if not ON_SIM:
        return 2 * bm + 5, 2 * bn + 7, 3 * bk + 3
    return (bm if bm == 128 else bm + 5), bn + 7, 2 * bk + 3


_SPLIT = [n for n in T.KERNELS if "_v2k_" in n]
_DIRECT = [n for n in T.KERNELS if "_v2k_" not in n]


@pytest.mark.parametrize("name", _DIRECT)
def test_every_kernel_on_ragged_tiles(name):
    precision = name.split("_")[3]
    i = _DIRECT.index(name)
    ta, tb = bool(i & 1), bool(i & 2)               # every transpose pair over the list
    M, N, K = _edge_shape(name)
    strided = (i % 3 == 1, i % 3 == 2, i % 2 == 1)   # row-strided views: the flat offsets' pitch

    def launch(*args):
        T.gemm_with(name, *args)
    _run(launch, precision, ta, tb, M, N, K, 1.25, (0.0, -0.75)[i % 2], strided, seed=i, what=name)


@pytest.mark.parametrize("name", _SPLIT)
@pytest.mark.parametrize("slices", [1, 3])
def test_split_k(name, slices):
    precision = name.split("_")[3]
    bk = int(name.rsplit("_", 1)[1])
    M, N, K = 64, 70, 4 * bk + 5                     # 2 whole K-tiles in the first slices, the
                                                     # last ragged; an interior block (fast path)

    def launch(*args):
        T.gemm_splitk(*args, slices, precision)
    _run(launch, precision, True, False, M, N, K, -1.5, 0.5 if slices == 3 else 0.0, (True, False, False),
         seed=slices, slices=slices, what=name)


def test_more_slices_than_k_tiles():
    """Slices past the end of K contribute zero partials."""
    def launch(*args):
        T.gemm_splitk(*args, 5, "tf32")
    _run(launch, "tf32", False, True, 20, 24, 19, 1.0, 1.0, slices=5, what="split x5 of 2 K-tiles")


def test_bad_arguments():
    a = cuda.to_device(np.zeros((4, 3), np.float32))
    b = cuda.to_device(np.zeros((3, 5), np.float32))
    c = cuda.to_device(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="precision must be one of tf32, fp16, bf16"):
        T.gemm(False, False, 1.0, a, b, 0.0, c, precision="fp8")
    with pytest.raises(ValueError, match="shapes do not agree"):
        T.gemm(True, False, 1.0, a, b, 0.0, c)
    with pytest.raises(ValueError, match="float32"):
        T.gemm(False, False, 1.0, cuda.to_device(np.zeros((4, 3))), b, 0.0, c)


def test_plan():
    """Big square problems take the 128x128 tile, weight-gradient-like ones (few C tiles, long K)
    split K, tiny ones the 32x32 tile; names carry the precision."""
    assert T.plan(4096, 4096, 4096, "tf32") == ("gemm_tc_v2_tf32_128_128_16", 1)
    assert T.plan(4096, 4096, 4096, "bf16") == ("gemm_tc_v2_bf16_128_128_16", 1)
    name, slices = T.plan(96, 363, 186624, "tf32")          # AlexNet conv1 dW at batch 64
    assert name == "gemm_tc_v2k_tf32_64_64_16" and 2 <= slices <= 64
    assert T.plan(20, 30, 40, "fp16") == ("gemm_tc_v2_fp16_32_32_32", 1)
    assert T.describe_plan(96, 363, 186624).endswith("+ splitk_reduce_v1")


@pytest.mark.skipif(ON_SIM, reason="GPU timing-free larger shapes: the simulator runs every thread in Python")
@given(M=st.integers(1, 700), N=st.integers(1, 700), K=st.integers(1, 700), ta=st.booleans(),
       tb=st.booleans(), precision=st.sampled_from(T.PRECISIONS), seed=st.integers(0, 2**16))
@settings(max_examples=30)
def test_gemm_tc_larger_on_gpu(M, N, K, ta, tb, precision, seed):
    def launch(*args):
        T.gemm(*args, precision=precision)
    _run(launch, precision, ta, tb, M, N, K, 1.0, 0.5, seed=seed, what="gemm (gpu)")
