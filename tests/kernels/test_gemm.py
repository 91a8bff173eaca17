"""kernels/gemm.py against the float64 einsum reference (tests/reference/gemm.py).

Error measure: relative Frobenius norm ||C - C_ref||_F / ||C_ref||_F <= 1e-5 (float32 accumulation
over K <= MAX_GEMM_DIM terms is ~sqrt(K) * 6e-8). ``beta == 0`` is checked with C poisoned with NaN
(BLAS semantics: C is not read). Row-strided operands are column slices of wider arrays.
Every kernel in ``KERNELS`` runs on shapes crossing its tile edges (through ``launch``, the
planner's launcher); the public ``gemm``, v1, v9 and every split-K kernel get hypothesis-drawn
shapes (M, N, K from 1 to MAX_GEMM_DIM). The planner (``plan``) is checked against its table.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from kernels import gemm as G
from kernels._vec import aligned16
from tests.helpers import CAIArray, rel_frobenius
from tests.reference.gemm import gemm_ref
from tests.sizes import MAX_GEMM_DIM, ON_GPU

ON_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
REL_TOL = 1e-5

dims = st.integers(1, MAX_GEMM_DIM)
alphas = st.sampled_from([1.0, -0.5, 2.25, 0.0])
betas = st.sampled_from([0.0, 1.0, -1.5])


def _device(host: np.ndarray, strided: bool, rng):
    """Device copy of ``host``; when ``strided``, a column slice of a wider device array
    (leading dimension > number of columns) holding ``host`` in its first columns."""
    if not strided:
        return cuda.to_device(np.ascontiguousarray(host))
    rows, cols = host.shape
    wide = rng.standard_normal((rows, cols + 3)).astype(np.float32)
    wide[:, :cols] = host
    return cuda.to_device(wide)[:, :cols]


def _run(name, ta, tb, M, N, K, alpha, beta, strided, seed, slices=1):
    """Launch kernel ``name`` over ``slices`` K slices (``launch(Plan(name, slices))``), or the
    public gemm when ``name`` is None, and compare with the reference."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    C = np.full((M, N), np.nan, np.float32) if beta == 0 else rng.standard_normal((M, N)).astype(np.float32)
    dA = _device(A, strided[0], rng)
    dB = _device(B, strided[1], rng)
    dC = _device(C, strided[2], rng)
    if name is None:
        G.gemm(ta, tb, alpha, dA, dB, beta, dC)
    else:
        G.launch(G.Plan(name, slices), ta, tb, alpha, dA, dB, beta, dC)
    got = dC.copy_to_host()
    want = gemm_ref(ta, tb, alpha, A, B, beta, C)
    assert not np.isnan(got).any(), f"{name}: NaN in C (beta={beta} must not read C)"
    err = rel_frobenius(got, want)
    assert err <= REL_TOL, f"{name} ta={ta} tb={tb} M={M} N={N} K={K} a={alpha} b={beta}: rel err {err:.3g}"


@given(M=dims, N=dims, K=dims, ta=st.booleans(), tb=st.booleans(), alpha=alphas, beta=betas,
       strided=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 2**16))
def test_gemm_public(M, N, K, ta, tb, alpha, beta, strided, seed):
    _run(None, ta, tb, M, N, K, alpha, beta, strided, seed)


@pytest.mark.parametrize("name", ["gemm_v1"])
@given(M=dims, N=dims, K=dims, ta=st.booleans(), tb=st.booleans(), alpha=alphas, beta=betas,
       strided=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 2**16))
@settings(max_examples=4 if ON_SIM else settings().max_examples)
def test_gemm_simple_versions(name, M, N, K, ta, tb, alpha, beta, strided, seed):
    _run(name, ta, tb, M, N, K, alpha, beta, strided, seed)


# shapes crossing tile edges: in the simulator a few partial tiles (K spans 2-3 K-tiles of 8/16),
# on a GPU several full 128-tiles plus ragged edges
EDGE_SHAPES = [(257, 131, 300), (64, 200, 33)] if ON_GPU else [(19, 23, 21), (5, 3, 17)]


GEMM_KERNELS = sorted(n for n in G.KERNELS if n.startswith("gemm_"))   # splitk_reduce: test_split_k


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("name", GEMM_KERNELS)
def test_every_kernel(name, case):
    M, N, K = EDGE_SHAPES[case]
    idx = GEMM_KERNELS.index(name)
    ta, tb = [(False, False), (True, False), (False, True), (True, True)][(idx + 2 * case) % 4]
    if case == 0:   # beta = 0 with a NaN-poisoned C, contiguous operands
        _run(name, ta, tb, M, N, K, 1.5, 0.0, (False, False, False), idx)
    else:           # beta != 0, the other transposes, row-strided operands for the kernels
        # declared with a strided signature (those gemm() launches; compiling the others for
        # strided layouts too would only cost GPU compile time)
        strided = len(G.KERNELS[name][1]) > 1
        _run(name, not ta, not tb, M, N, K, -0.75, 1.25, (strided, strided, strided), idx)


def test_k_equals_one_and_vectors():
    """Degenerate shapes: an outer product (K = 1), a row times a matrix (M = 1), a matrix times a
    column (N = 1)."""
    for M, N, K in [(7, 5, 1), (1, 9, 6), (6, 1, 9), (1, 1, 1)]:
        _run(None, False, False, M, N, K, 1.0, 0.0, (False, False, False), M * 100 + N * 10 + K)




def test_cuda_array_interface_objects():
    """gemm accepts non-numba objects with __cuda_array_interface__ and writes into their memory."""
    rng = np.random.default_rng(7)
    A = rng.standard_normal((6, 4)).astype(np.float32)
    B = rng.standard_normal((4, 5)).astype(np.float32)
    C = CAIArray(np.zeros((6, 5), np.float32))
    G.gemm(False, False, 1.0, CAIArray(A), CAIArray(B), 0.0, C)
    assert rel_frobenius(C.to_host(), A.astype(np.float64) @ B) <= REL_TOL


def test_shape_and_dtype_errors():
    a = cuda.to_device(np.zeros((3, 4), np.float32))
    b = cuda.to_device(np.zeros((5, 2), np.float32))
    c = cuda.to_device(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="do not agree"):
        G.gemm(False, False, 1.0, a, b, 0.0, c)
    with pytest.raises(ValueError, match="float32"):
        G.gemm(False, False, 1.0, a, cuda.to_device(np.zeros((4, 2))), 0.0, c)
    with pytest.raises(TypeError, match="device array"):
        G.gemm(False, False, 1.0, np.zeros((3, 4), np.float32), b, 0.0, c)


def test_plan_names_a_kernel():
    for M, N, K in [(1, 1, 1), (20, 500, 75), (4096, 4096, 4096), (512, 64, 9), (96, 3136, 576)]:
        assert G.plan(M, N, K).kernel in G.KERNELS
    assert G.select_config(4096, 4096, 4096) == "128x128x8"
    assert G.select_config(8, 8, 8) == "32x32x8"
    assert G.plan(8, 8, 8) == G.Plan("gemm_v4_32_32_8")


def test_plan_follows_the_table():
    """plan(): the measured H200 winners (v7 at 2048^3 and on AlexNet conv1 fwd, also at other
    batch chunks of conv1 by the wide-N rule; v6 where it won, e.g. 4096^3 and conv3 fwd); the
    scalar twin for unaligned operands. Every kernel it names is declared with the strided
    signature gemm() may need, and it names only the table's kernels: the candidates (v9, the
    split kernels other than SPLIT_KERNEL) only run through ``launch``."""
    assert G.plan(4096, 4096, 4096) == G.Plan("gemm_v6_128_128_8")
    assert G.plan(2048, 2048, 2048) == G.Plan("gemm_v7_128_128_8")
    assert G.plan(2048, 2048, 2048, aligned=False) == G.Plan("gemm_v6_128_128_8")
    assert G.plan(96, 184525, 363) == G.Plan("gemm_v7_128_128_8")
    assert G.plan(96, 3025 * 32, 363) == G.Plan("gemm_v7_128_128_8")     # conv1, 32-image chunk
    assert G.plan(384, 29068, 2304) == G.Plan("gemm_v6_128_128_8")       # conv3 fwd: v6 won
    assert G.plan(96, 3025, 363).kernel.startswith("gemm_v6_")          # one wave only: no rule
    launched = G._launched()
    assert not {n for n in G.KERNELS if n.startswith(("gemm_v9", "gemm_v7k", "gemm_v6k_64_64_32"))} & launched
    shapes = [(M, N, K) for M in (1, 17, 96, 128, 384, 2048, 4096) for N in (1, 300, 3025, 29068, 184525)
              for K in (1, 363, 4096, 400000)] + list(G.MEASURED)
    for M, N, K in shapes:
        for aligned in (True, False):
            p = G.plan(M, N, K, aligned)
            assert p.kernel in launched, (M, N, K, p)
            assert len(G.KERNELS[p.kernel][1]) == 2, (M, N, K, p)          # strided signature too
    for name in G.KERNELS:
        assert name in launched or name in ("gemm_v1", "splitk_reduce_v1") or len(G.KERNELS[name][1]) == 1


def _record_launches(monkeypatch) -> list:
    """(kernel, slices) of every GEMM launch from now on (they still run)."""
    launched = []
    real = G._run

    def run(kernel, slices, *args):
        launched.append((kernel, slices))
        real(kernel, slices, *args)
    monkeypatch.setattr(G, "_run", run)
    return launched


def test_backend_gemm_runs_the_plan(monkeypatch):
    """The cuda backend's gemm is gemm(): it splits K where the planner says so."""
    from runner.backend.cuda import CudaBackend
    M, N, K = 5, 7, 96              # the plan is set by hand: a short K keeps the simulator quick
    monkeypatch.setitem(G.MEASURED, (M, N, K), G.Plan(G.SPLIT_KERNEL, 3))
    launched = _record_launches(monkeypatch)
    rng = np.random.default_rng(4)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((N, K)).astype(np.float32)
    C = cuda.to_device(np.zeros((M, N), np.float32))
    CudaBackend().gemm(False, True, 1.0, cuda.to_device(A), cuda.to_device(B), 0.0, C)
    assert launched == [(G.SPLIT_KERNEL, 3)]
    assert rel_frobenius(C.copy_to_host(), A.astype(np.float64) @ B.T) <= REL_TOL


INTERIOR = sorted(n for n in G.KERNELS if n.startswith(("gemm_v6_", "gemm_v7_", "gemm_v9_")))


def _config(name: str):
    """Tile configuration of a register-blocked kernel name."""
    return G.CONFIGS[name.split("_", 2)[2].replace("_", "x")]


@pytest.mark.parametrize("name", INTERIOR)
def test_interior_fast_path(name):
    """v6, v7 and v9 skip bounds tests for whole K-tiles of blocks without ragged edges: C exactly
    one block tile (interior) with K = 2 whole K-tiles + a ragged one, both transposes of each
    operand. v7/v9 (128-bit loads; four scalar loads in the simulator) need 16-byte row pitches:
    K = 2*BK + 4 and contiguous operands, checked by ``kernels._vec.aligned16`` (else launch would
    run the v6 twin)."""
    cfg = _config(name)
    idx = INTERIOR.index(name)
    ta, tb = [(False, False), (True, True), (True, False), (False, True)][idx % 4]
    wide = name.startswith(("gemm_v7_", "gemm_v9_"))
    K = 2 * cfg.BK + (4 if wide else 3)
    strided = idx % 2 == 1 and not wide
    if wide:
        a = cuda.to_device(np.zeros((K, cfg.BM) if ta else (cfg.BM, K), np.float32))
        assert aligned16(a)
    _run(name, ta, tb, cfg.BM, cfg.BN, K, 1.0, 0.5, (False, strided, False), idx)


# split-K: K cut into slices of whole 8-wide K tiles (the last ones short or empty), partials in a
# workspace, summed in order by splitk_reduce_v1; beta = 0 must not read C
@pytest.mark.parametrize("ta,tb,slices,beta,strided", [
    (False, True, 3, 1.0, (False, False, False)),    # a conv weight gradient: dW += dY @ col^T
    (True, False, 4, 0.0, (False, False, False)),
    (False, False, 2, -1.5, (True, True, True)),
    (True, True, 7, 0.0, (False, False, True)),      # more slices than K tiles: empty slices
])
def test_split_k(ta, tb, slices, beta, strided):
    M, N, K = (70, 9, 45) if ON_GPU else (5, 7, 37)
    _run(G.SPLIT_KERNEL, ta, tb, M, N, K, 0.5, beta, strided, slices, slices=slices)


SPLIT_KERNELS = sorted(n for n in G.KERNELS if G._is_split(n))


@pytest.mark.parametrize("name", SPLIT_KERNELS)
def test_split_kernels_interior_and_ragged(name):
    """Every split kernel, K cut into 2 slices: (1) one interior block tile with whole K-tiles in
    each slice plus a short one (v7k: 128-bit loads of whole tiles, K a multiple of 4 so the row
    pitches stay 16-byte aligned), (2) a tile and one more row/column with a ragged K (edge path,
    and for v7k on an unaligned pitch: its v6k twin runs, as launch documents)."""
    bm, bn = G._LAUNCH[name][2]
    bk = _config(name).BK
    idx = SPLIT_KERNELS.index(name)
    ta, tb = [(False, True), (True, False), (False, False), (True, True)][idx % 4]
    for M, N, K in ((bm, bn, 4 * bk + 4), (bm + 1, bn + 1, 2 * bk + 3)):
        rng = np.random.default_rng(11 + idx)
        A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        B = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        C = rng.standard_normal((M, N)).astype(np.float32)
        dC = cuda.to_device(C)
        G.launch(G.Plan(name, 2), ta, tb, 0.75, cuda.to_device(A), cuda.to_device(B), -0.5, dC)
        err = rel_frobenius(dC.copy_to_host(), gemm_ref(ta, tb, 0.75, A, B, -0.5, C))
        assert err <= REL_TOL, f"{name} ta={ta} tb={tb} M={M} N={N} K={K}: rel err {err:.3g}"


def test_launch_rejects_bad_plans():
    a = cuda.to_device(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="split-K"):
        G.launch(G.Plan("gemm_v6_64_64_8", 2), False, False, 1.0, a, a, 0.0, a)
    with pytest.raises(ValueError, match="not a plan"):
        G.launch(G.Plan("splitk_reduce_v1"), False, False, 1.0, a, a, 0.0, a)


def test_split_k_plan(monkeypatch):
    """plan() splits K only when M x N leaves the GPU idle and K is long; a measured plan wins
    (and its scalar twin replaces it on unaligned operands)."""
    assert G.splitk_slices(96, 363, 256 * 3025) > 1          # AlexNet conv1 weight gradient
    assert G.splitk_slices(4096, 4096, 4096) == 1
    assert G.splitk_slices(96, 363, 512) == 1
    # larger tiles: fewer tiles, so more slices for the same two waves (capped at SPLITK_MAX)
    assert (G.splitk_slices(128, 1200, 93312, "gemm_v7k_128_128_16")
            > G.splitk_slices(128, 1200, 93312, "gemm_v6k_64_64_8"))
    assert G.plan(96, 363, 387200) == G.Plan(G.SPLIT_KERNEL, G.splitk_slices(96, 363, 387200))
    assert str(G.plan(96, 363, 387200)).startswith(f"{G.SPLIT_KERNEL} x")
    assert str(G.plan(4096, 4096, 4096)) == "gemm_v6_128_128_8"
    monkeypatch.setitem(G.MEASURED, (96, 363, 387200), G.Plan("gemm_v7k_64_64_32", 12))
    assert G.plan(96, 363, 387200) == G.Plan("gemm_v7k_64_64_32", 12)
    assert G.plan(96, 363, 387200, aligned=False) == G.Plan("gemm_v6k_64_64_32", 12)
    assert "gemm_v7k_64_64_32" in G._launched() and "gemm_v6k_64_64_32" in G._launched()


def test_gemm_runs_a_measured_split_plan(monkeypatch):
    """gemm() launches the MEASURED plan for its shape (the result is the same GEMM)."""
    M, N, K = (6, 5, 40)
    monkeypatch.setitem(G.MEASURED, (M, N, K), G.Plan("gemm_v7k_64_64_32", 3))
    launched = _record_launches(monkeypatch)
    _run(None, False, True, M, N, K, 1.0, 1.0, (False, False, False), 5)
    assert launched == [("gemm_v7k_64_64_32", 3)]


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_v9_flat_offsets(ta, tb):
    """v9's interior path addresses its loads by flat offsets (row * pitch + column, advanced one
    K-tile at a time): two interior blocks along m or n (a block origin in the offsets), whole
    K-tiles and a ragged one, every transpose, operands that are column slices of wider arrays
    whose pitch keeps 16-byte alignment (so v9 itself runs, not its v6 fallback)."""
    name = "gemm_v9_128_128_8"
    cfg = G.CONFIGS["128x128x8"]
    M, N = (2 * cfg.BM, cfg.BN) if ta == tb else (cfg.BM, 2 * cfg.BN)
    K = 3 * cfg.BK + 4
    rng = np.random.default_rng(21)

    def padded(rows, cols):          # (rows, cols) view of a (rows, cols + 4) device array
        host = rng.standard_normal((rows, cols)).astype(np.float32)
        wide = np.zeros((rows, cols + 4), np.float32)
        wide[:, :cols] = host
        return host, cuda.to_device(wide)[:, :cols]

    A, dA = padded(*((K, M) if ta else (M, K)))
    B, dB = padded(*((N, K) if tb else (K, N)))
    assert aligned16(dA) and aligned16(dB)
    C = rng.standard_normal((M, N)).astype(np.float32)
    dC = cuda.to_device(C)
    G.launch(G.Plan(name), ta, tb, 0.5, dA, dB, -1.0, dC)
    err = rel_frobenius(dC.copy_to_host(), gemm_ref(ta, tb, 0.5, A, B, -1.0, C))
    assert err <= REL_TOL, f"{name} ta={ta} tb={tb}: rel err {err:.3g}"


@pytest.mark.parametrize("name", sorted(n for n in G.KERNELS if n.startswith("gemm_v9_")) + SPLIT_KERNELS)
@given(M=dims, N=dims, K=dims, ta=st.booleans(), tb=st.booleans(), alpha=alphas, beta=betas,
       slices=st.integers(1, 5), strided=st.tuples(st.booleans(), st.booleans(), st.booleans()),
       seed=st.integers(0, 2**16))
@settings(max_examples=3 if ON_SIM else settings().max_examples)
def test_v9_and_split_kernels_properties(name, M, N, K, ta, tb, alpha, beta, slices, strided, seed):
    """v9 and every split-K kernel (1-5 slices, empty slices included) through ``launch`` against
    the float64 reference: any M, N, K, both transposes, alpha/beta (beta
    = 0 with a NaN-poisoned C), row-strided views (whose odd pitch sends v9/v7k/v9k to their scalar
    twins, as documented; on a GPU only for kernels declared with the strided signature: another
    layout is another JIT compile)."""
    if not ON_SIM and len(G.KERNELS[name][1]) == 1:
        strided = (False, False, False)
    if name.startswith("gemm_v9_"):
        _run(name, ta, tb, M, N, K, alpha, beta, strided, seed)
        return
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    C = np.full((M, N), np.nan, np.float32) if beta == 0 else rng.standard_normal((M, N)).astype(np.float32)
    dC = _device(C, strided[2], rng)
    G.launch(G.Plan(name, slices), ta, tb, alpha, _device(A, strided[0], rng), _device(B, strided[1], rng),
             beta, dC)
    got = dC.copy_to_host()
    assert not np.isnan(got).any(), f"{name}: NaN in C (beta={beta} must not read C)"
    err = rel_frobenius(got, gemm_ref(ta, tb, alpha, A, B, beta, C))
    assert err <= REL_TOL, f"{name} ta={ta} tb={tb} M={M} N={N} K={K} slices={slices}: rel err {err:.3g}"
