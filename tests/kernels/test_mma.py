"""kernels/_mma.py: the tensor-core primitives against the numpy model of the PTX ISA's layout
tables (tests/reference/mma.py).

- conversions (TF32 ``cvt.rna``, FP16/BF16 ``cvt.rn`` pairs) bit for bit against arithmetic
  roundings, on the device (simulator: the emulation) and on the host twins, with ties,
  subnormals, overflow and signed zeros;
- one warp-level mma per precision: every lane gets its operand words from the ISA's tables, the
  kernel calls the mma, and the D matrix reassembled from the lanes' fragments by the same tables
  must equal round(A) @ round(B) + C within the error bound of kernels/gemm_tc.py (with K = 8 or
  16); two warps with different data run at once (the per-warp exchange of the simulator);
- ``ldmatrix_x4``: each lane's four registers are the words the ISA's table names, rows chosen
  in a scrambled order;
- simulator only: lanes that do not all reach an mma, and misaligned ldmatrix rows, fail with a
  clear message.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda, uint32

from kernels import _mma
from tests.reference import mma as R

ON_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
PRECISIONS = ("tf32", "fp16", "bf16")
LDM_WORDS = 256          # shared words of the ldmatrix test (64 rows of 4 words)


# ------------------------------------------------------------------------------------ conversions

@cuda.jit
def _convert_kernel(x, out):
    """out[i] = (tf32_round(x[i, 0]), pack_f16x2(x[i, 0], x[i, 1]), pack_bf16x2(x[i, 0], x[i, 1]))."""
    i = cuda.grid(1)
    if i < x.shape[0]:
        out[i, 0] = _mma.tf32_round(x[i, 0])
        out[i, 1] = _mma.pack_f16x2(x[i, 0], x[i, 1])
        out[i, 2] = _mma.pack_bf16x2(x[i, 0], x[i, 1])


def _special_values() -> np.ndarray:
    bits = np.array([
        0x3F801000, 0xBF801000,      # TF32 ties: away from zero (RNE would keep 0x3F800000)
        0x3F803000, 0x3F800FFF,      # odd tie; just below a tie
        0x3F808000, 0x3F818000,      # BF16 ties to even (down, up)
        0x7F7FFFFF, 0xFF7FFFFF,      # largest finite: TF32/BF16 round to inf
        0x00001000, 0x00000FFF,      # subnormals around a TF32 tie
        0x00000000, 0x80000000,      # signed zeros
        0x7F800000, 0xFF800000,      # infinities
        0x477FF000, 0x477FE000,      # FP16: 65520 rounds to inf, 65504 stays
        0x33000000, 0x33000001,      # FP16: 2^-25 (tie to 0), just above (smallest subnormal)
    ], dtype=np.uint32)
    return bits.view(np.float32)


def _check_conversions(x: np.ndarray, out: np.ndarray) -> None:
    lo, hi = x[:, 0], x[:, 1]
    want_tf32 = R.tf32_ref(lo).view(np.uint32)
    np.testing.assert_array_equal(out[:, 0], want_tf32, err_msg="tf32_round")
    want_f16 = (R.f16_ref(lo).astype(np.float16).view(np.uint16).astype(np.uint32)
                | (R.f16_ref(hi).astype(np.float16).view(np.uint16).astype(np.uint32) << np.uint32(16)))
    np.testing.assert_array_equal(out[:, 1], want_f16, err_msg="pack_f16x2")
    want_bf16 = ((R.bf16_ref(lo).view(np.uint32) >> np.uint32(16))
                 | (R.bf16_ref(hi).view(np.uint32) & np.uint32(0xFFFF0000)))
    np.testing.assert_array_equal(out[:, 2], want_bf16, err_msg="pack_bf16x2")


@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 1e-30, 1e30, 1e-6, 7e4]))
def test_conversions_device(seed, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((40, 2)) * scale).astype(np.float32)
    sp = _special_values()
    x = np.concatenate([x, np.stack([sp, sp[::-1]], axis=1)])
    out = np.zeros((x.shape[0], 3), np.uint32)
    d_out = cuda.to_device(out)
    _convert_kernel[1, 64](cuda.to_device(x), d_out)
    _check_conversions(x, d_out.copy_to_host())


def test_conversions_host_twins():
    """The host functions the simulator uses agree with the arithmetic references too (also on a
    GPU machine, where the device test exercises the real instructions)."""
    rng = np.random.default_rng(7)
    wide = rng.standard_normal((300, 2)) * 10.0 ** rng.integers(-40, 38, (300, 1))
    x = np.concatenate([wide.astype(np.float32), np.stack([_special_values()] * 2, axis=1)])
    out = np.array([[_mma.tf32_round_host(a), _mma.pack_f16x2_host(a, b), _mma.pack_bf16x2_host(a, b)]
                    for a, b in x], dtype=np.uint32)
    _check_conversions(x, out)


# ------------------------------------------------------------------------------------ mma

def _mma_kernel(op):
    @cuda.jit
    def kernel(a, b, c, d):
        """One mma per warp: lane t of the block supplies row t of a (words), b, c; d gets its D."""
        t = cuda.threadIdx.x
        d[t, 0], d[t, 1], d[t, 2], d[t, 3] = op(a[t, 0], a[t, 1], a[t, 2], a[t, 3], b[t, 0], b[t, 1],
                                                c[t, 0], c[t, 1], c[t, 2], c[t, 3])
    return kernel


_MMA_KERNELS = {"tf32": _mma_kernel(_mma.mma_tf32), "fp16": _mma_kernel(_mma.mma_f16),
                "bf16": _mma_kernel(_mma.mma_bf16)}


@pytest.mark.parametrize("precision", PRECISIONS)
@given(seed=st.integers(0, 2**16))
@settings(max_examples=3 if ON_SIM else 20)
def test_warp_mma_matches_layout_tables(precision, seed):
    rng = np.random.default_rng(seed)
    kdim = 8 if precision == "tf32" else 16
    warps = 2
    mats, frags = [], []
    for _ in range(warps):
        A = rng.standard_normal((16, kdim)).astype(np.float32)
        B = rng.standard_normal((kdim, 8)).astype(np.float32)
        C = rng.standard_normal((16, 8)).astype(np.float32)
        mats.append((A, B, C))
        frags.append(R.fragments(A, B, C, precision))
    a = np.concatenate([f[0] for f in frags])
    b = np.concatenate([f[1] for f in frags])
    c = np.concatenate([f[2] for f in frags])
    d = cuda.to_device(np.full((32 * warps, 4), np.nan, np.float32))
    _MMA_KERNELS[precision][1, 32 * warps](cuda.to_device(a), cuda.to_device(b), cuda.to_device(c), d)
    got = d.copy_to_host()
    for w, (A, B, C) in enumerate(mats):
        D = R.gather_d(got[32 * w:32 * (w + 1)])
        want = R.mma_ref(A, B, C, precision)
        bound = R.gemm_error_bound(np.abs(A), np.abs(B), np.abs(C), 1.0, 1.0, precision)
        err = np.abs(D.astype(np.float64) - want)
        assert (err <= bound).all(), (f"{precision} warp {w}: {int((err > bound).sum())} elements over the "
                                      f"bound; worst err {err.max():.3g} bound {bound.min():.3g}")
        # a layout mistake moves whole products: far above the bound (the test can fail)
        wrong = R.mma_ref(A, B[::-1], C, precision)
        assert (np.abs(wrong - want) > bound).any()


# ------------------------------------------------------------------------------------ ldmatrix

@cuda.jit
def _ldmatrix_kernel(words, rows, out):
    """Shared copy of ``words``; lane t passes row index rows[t]; out[t] = its four registers."""
    s = cuda.shared.array(LDM_WORDS, uint32)
    t = cuda.threadIdx.x
    for i in range(t, LDM_WORDS, 32):
        s[i] = words[i]
    cuda.syncthreads()  # the shared copy is complete before the warp reads it
    out[t, 0], out[t, 1], out[t, 2], out[t, 3] = _mma.ldmatrix_x4(s, rows[t])


@given(seed=st.integers(0, 2**16))
@settings(max_examples=2 if ON_SIM else 20)
def test_ldmatrix_x4_matches_table(seed):
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**32, LDM_WORDS, dtype=np.uint64).astype(np.uint32)
    rows = (rng.permutation(LDM_WORDS // 4)[:32] * 4).astype(np.int32)
    out = cuda.to_device(np.zeros((32, 4), np.uint32))
    _ldmatrix_kernel[1, 32](cuda.to_device(words), cuda.to_device(rows), out)
    got = out.copy_to_host()
    want = np.zeros((32, 4), np.uint32)
    for lane in range(32):
        for q in range(4):
            src, word = R.ldmatrix_x4_source(lane, q)
            want[lane, q] = words[rows[src] + word]
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------ misuse (simulator)

@cuda.jit
def _half_warp_mma(d):
    """Only lanes 0-15 reach the mma: undefined on hardware, an error in the emulation."""
    t = cuda.threadIdx.x
    if t < 16:
        d[t, 0], d[t, 1], d[t, 2], d[t, 3] = _mma.mma_tf32(uint32(0), uint32(0), uint32(0), uint32(0),
                                                           uint32(0), uint32(0), d[t, 0], d[t, 1],
                                                           d[t, 2], d[t, 3])


@pytest.mark.skipif(not ON_SIM, reason="emulation diagnostics (undefined behaviour on a GPU)")
def test_emulation_reports_divergent_lanes(monkeypatch):
    monkeypatch.setattr(_mma, "WARP_TIMEOUT_S", 0.5)
    with pytest.raises(RuntimeError, match="not every lane of the warp"):
        _half_warp_mma[1, 32](cuda.to_device(np.zeros((32, 4), np.float32)))


@pytest.mark.skipif(not ON_SIM, reason="emulation diagnostics (undefined behaviour on a GPU)")
def test_emulation_reports_misaligned_ldmatrix_row():
    rows = (np.arange(32) * 4).astype(np.int32)
    rows[5] = 6
    out = cuda.to_device(np.zeros((32, 4), np.uint32))
    with pytest.raises(RuntimeError, match="16-byte aligned row"):
        _ldmatrix_kernel[1, 32](cuda.to_device(np.zeros(LDM_WORDS, np.uint32)), cuda.to_device(rows), out)
