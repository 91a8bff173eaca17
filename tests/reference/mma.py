"""Numpy model of the PTX ISA's warp-level MMA fragment layouts and of the input roundings, for
testing kernels/_mma.py (never imports it).

Layout tables transcribed from the PTX ISA, "Matrix Fragments for mma.m16n8k8" (.tf32) and
"Matrix Fragments for mma.m16n8k16 with floating point type" (.f16/.bf16), with
``groupID = laneid >> 2`` and ``threadID_in_group = laneid % 4``; each function returns the
(row, col) of fragment element ``i`` held by ``lane``. ``ldmatrix`` after the ISA's
"ldmatrix" section: lanes 8q..8q+7 address the rows of matrix q; each row (8 b16 = four 32-bit
words) is spread over four consecutive lanes.

Roundings are computed arithmetically (frexp/ldexp), not with bit tricks, so they check the
bit-level emulation independently: TF32 keeps 11 significant bits (10 explicit), round to nearest
with ties away from zero (``cvt.rna``); BF16 keeps 8 (ties to even, ``cvt.rn``); FP16 is numpy's
IEEE half conversion.
"""
from __future__ import annotations

import numpy as np

WARP = 32


def _ids(lane: int) -> tuple[int, int]:
    return lane >> 2, lane % 4


def a_tf32_m16n8k8(lane: int, i: int) -> tuple[int, int]:
    """A (16x8, .row) element a_i of ``lane``: row groupID for a0, a2 else +8; col
    threadID_in_group for a0, a1 else +4."""
    g, t = _ids(lane)
    row = g if i in (0, 2) else g + 8
    col = t if i in (0, 1) else t + 4
    return row, col


def b_tf32_m16n8k8(lane: int, i: int) -> tuple[int, int]:
    """B (8x8, .col) element b_i: row threadID_in_group for b0, +4 for b1; col groupID."""
    g, t = _ids(lane)
    return (t if i == 0 else t + 4), g


def a_f16_m16n8k16(lane: int, i: int) -> tuple[int, int]:
    """A (16x16) element a_i, i = 0..7 (two per .f16x2 register, low half first): row groupID for
    i in {0, 1, 4, 5} else +8; col threadID_in_group*2 + (i & 1), +8 for i >= 4."""
    g, t = _ids(lane)
    row = g if i in (0, 1, 4, 5) else g + 8
    col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
    return row, col


def b_f16_m16n8k16(lane: int, i: int) -> tuple[int, int]:
    """B (16x8) element b_i, i = 0..3: row threadID_in_group*2 + (i & 1), +8 for i >= 2; col
    groupID."""
    g, t = _ids(lane)
    return t * 2 + (i & 1) + (8 if i >= 2 else 0), g


def c_f32(lane: int, i: int) -> tuple[int, int]:
    """C/D (16x8, .f32) element c_i: row groupID for c0, c1 else +8; col threadID_in_group*2 +
    (i & 1)."""
    g, t = _ids(lane)
    return (g if i < 2 else g + 8), t * 2 + (i & 1)


def ldmatrix_x4_source(lane: int, q: int) -> tuple[int, int]:
    """Register q of ``lane`` after ldmatrix .x4: (the lane whose row address is read, word within
    that 16-byte row)."""
    return 8 * q + lane // 4, lane % 4


# ------------------------------------------------------------------------------------ roundings

def _round_sig(x: np.ndarray, bits: int, min_exp: int, ties_even: bool) -> np.ndarray:
    """Round float32 ``x`` to ``bits`` significant bits with a quantum no finer than 2**min_exp
    (the format's subnormal spacing), in float64 arithmetic."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    _, e = np.frexp(x[fin])                       # |x| = m * 2**e, 0.5 <= m < 1
    quantum = np.ldexp(1.0, np.maximum(e - bits, min_exp))
    q = np.abs(x[fin]) / quantum
    r = np.rint(q) if ties_even else np.floor(q + 0.5)
    out[fin] = np.sign(x[fin]) * r * quantum
    with np.errstate(over="ignore"):
        return out.astype(np.float32)             # a value past FP32's range becomes inf


def tf32_ref(x) -> np.ndarray:
    """FP32 -> TF32 (as FP32 values), ``cvt.rna``: 11 significant bits, ties away from zero."""
    return _round_sig(x, 11, -136, ties_even=False)


def bf16_ref(x) -> np.ndarray:
    """FP32 -> BF16 (as FP32 values), round to nearest even: 8 significant bits."""
    return _round_sig(x, 8, -133, ties_even=True)


def f16_ref(x) -> np.ndarray:
    """FP32 -> FP16 (as FP32 values), IEEE round to nearest even (numpy)."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def round_inputs(x, precision: str) -> np.ndarray:
    """``x`` rounded to the tensor-core input format of ``precision`` (tf32, fp16, bf16)."""
    return {"tf32": tf32_ref, "fp16": f16_ref, "bf16": bf16_ref}[precision](x)


def _half_bits(v: np.ndarray, precision: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    if precision == "fp16":
        return f16_ref(v).astype(np.float16).view(np.uint16).astype(np.uint32)
    return (bf16_ref(v).view(np.uint32) >> np.uint32(16)).astype(np.uint32)


# ------------------------------------------------------------------------------------ fragments

def fragments(A: np.ndarray, B: np.ndarray, C: np.ndarray, precision: str):
    """Per-lane operand words of one warp-level mma, from the layout tables: returns
    (a (32, 4) uint32, b (32, 2) uint32, c (32, 4) float32). ``precision`` "tf32": A (16, 8),
    B (8, 8), words = TF32-rounded FP32 bit patterns; "fp16"/"bf16": A (16, 16), B (16, 8), each
    word packs elements 2w (low half) and 2w+1 of the fragment."""
    a = np.zeros((WARP, 4), np.uint32)
    b = np.zeros((WARP, 2), np.uint32)
    c = np.zeros((WARP, 4), np.float32)
    for lane in range(WARP):
        for i in range(4):
            c[lane, i] = C[c_f32(lane, i)]
        if precision == "tf32":
            for i in range(4):
                a[lane, i] = tf32_ref(A[a_tf32_m16n8k8(lane, i)]).view(np.uint32)
            for i in range(2):
                b[lane, i] = tf32_ref(B[b_tf32_m16n8k8(lane, i)]).view(np.uint32)
        else:
            av = np.array([A[a_f16_m16n8k16(lane, i)] for i in range(8)], np.float32)
            bv = np.array([B[b_f16_m16n8k16(lane, i)] for i in range(4)], np.float32)
            ah, bh = _half_bits(av, precision), _half_bits(bv, precision)
            a[lane] = ah[0::2] | (ah[1::2] << np.uint32(16))
            b[lane] = bh[0::2] | (bh[1::2] << np.uint32(16))
    return a, b, c


def gather_d(d: np.ndarray) -> np.ndarray:
    """The 16x8 matrix D from the lanes' accumulator fragments ``d`` (32, 4)."""
    D = np.full((16, 8), np.nan, np.float32)
    for lane in range(WARP):
        for i in range(4):
            D[c_f32(lane, i)] = d[lane, i]
    return D


def mma_ref(A: np.ndarray, B: np.ndarray, C: np.ndarray, precision: str) -> np.ndarray:
    """float64 D = round(A) @ round(B) + C, inputs rounded to the precision's format."""
    return (round_inputs(A, precision).astype(np.float64) @ round_inputs(B, precision).astype(np.float64)
            + np.asarray(C, np.float64))


def input_unit_roundoff(precision: str) -> float:
    """u of the input format: 2**-11 for TF32 and FP16 (10 explicit mantissa bits), 2**-8 for
    BF16 (7)."""
    return {"tf32": 2.0 ** -11, "fp16": 2.0 ** -11, "bf16": 2.0 ** -8}[precision]


def input_underflow(precision: str) -> float:
    """eta: half the format's subnormal spacing, the absolute error of rounding a tiny value."""
    return {"tf32": 2.0 ** -137, "fp16": 2.0 ** -25, "bf16": 2.0 ** -134}[precision]


def _accumulation_n(K: int, precision: str, slices: int) -> int:
    k = 8 if precision == "tf32" else 16
    return (k + 1) * (-(-K // k) + slices) + slices + 2


def _gamma(m: int) -> float:
    u32 = 2.0 ** -23
    return m * u32 / (1 - m * u32)


def gemm_error_bound(absA: np.ndarray, absB: np.ndarray, absC: np.ndarray, alpha: float, beta: float,
                     precision: str, slices: int = 1) -> np.ndarray:
    """Elementwise bound on |computed - exact| of ``alpha * A @ B + beta * C`` (A (M, K), B (K, N)
    given as absolute values) when the inputs are rounded to the precision's format (unit
    roundoff u, underflow eta) and every FP32 operation of the accumulation may truncate
    (u32 = 2**-23): ``|alpha| [(2u + u^2 + gamma_n) (|A||B|) + eta (1 + u) (|A| 1 + 1 |B|) + K eta^2]
    + gamma_2 |beta| |C|`` with gamma_n = n u32 / (1 - n u32), n = (k+1) (ceil(K/k) + S) + S + 2,
    k = 8 (TF32) or 16 (FP16/BF16) the mma's depth, S the split-K slices (the derivation is in
    kernels/gemm_tc.py's docstring)."""
    absA = np.asarray(absA, np.float64)
    absB = np.asarray(absB, np.float64)
    K = absA.shape[1]
    u = input_unit_roundoff(precision)
    eta = input_underflow(precision)
    n = _accumulation_n(K, precision, slices)
    prod = absA @ absB
    sums = absA.sum(axis=1, keepdims=True) + absB.sum(axis=0, keepdims=True)
    under = eta * (1 + u) * sums + K * eta * eta
    return (abs(alpha) * ((2 * u + u * u + _gamma(n)) * prod + under)
            + _gamma(2) * abs(beta) * np.asarray(absC, np.float64))


def accumulation_bound(absAr: np.ndarray, absBr: np.ndarray, absC: np.ndarray, alpha: float, beta: float,
                       precision: str, slices: int = 1) -> np.ndarray:
    """The FP32-accumulation part alone: a bound on |computed - alpha round(A) @ round(B) - beta C|
    given the already rounded inputs (|round(A)|, |round(B)|): ``|alpha| gamma_n |A'||B'| +
    gamma_2 |beta| |C|``. Much tighter than the input rounding: checks the rounding mode itself."""
    absAr = np.asarray(absAr, np.float64)
    n = _accumulation_n(absAr.shape[1], precision, slices)
    return (abs(alpha) * _gamma(n) * (absAr @ np.asarray(absBr, np.float64))
            + _gamma(2) * abs(beta) * np.asarray(absC, np.float64))
