"""kernels/solver_update.py against the element-loop references in tests/reference/solver.py
(Caffe's CPU operation order), several iterations back to back.

Tolerance: rtol 2e-6 and atol 1e-6 * max(1, max|expected|) on weights, diffs (the update values)
and every history buffer after each iteration: the GPU may fuse a multiply-add (an FMA rounds once
where Caffe's CPU rounds twice) and the simulator computes sqrt in double, a few ulp of the
operands per step; w - update can cancel, hence the magnitude-scaled atol.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from kernels import solver_update as S
from tests.helpers import assert_close
from tests.reference import solver as ref
from tests.sizes import MAX_ELEMENTS

RTOL, ATOL = 2e-6, 1e-6
ITERS = 3
# the references are Python loops over elements (~10 us each): cap the size (still 16 blocks of
# 256 threads on a GPU) and the number of examples so the GPU profile stays around 15 s
MAX_N = min(MAX_ELEMENTS, 4096)
EXAMPLES = min(settings.default.max_examples, 20)

# name -> (kernel wrapper, reference, number of history buffers, hyper-parameter strategy)
SOLVERS = {
    "SGD": (S.sgd_update, ref.sgd_ref, 1,
            st.fixed_dictionaries({"momentum": st.sampled_from([0.0, 0.9, 0.5])})),
    "Nesterov": (S.nesterov_update, ref.nesterov_ref, 1,
                 st.fixed_dictionaries({"momentum": st.sampled_from([0.0, 0.95])})),
    "AdaGrad": (S.adagrad_update, ref.adagrad_ref, 1,
                st.fixed_dictionaries({"delta": st.sampled_from([1e-8, 1e-3])})),
    "RMSProp": (S.rmsprop_update, ref.rmsprop_ref, 1,
                st.fixed_dictionaries({"rms_decay": st.sampled_from([0.98, 0.5]),
                                       "delta": st.sampled_from([1e-8, 1e-2])})),
    "AdaDelta": (S.adadelta_update, ref.adadelta_ref, 2,
                 st.fixed_dictionaries({"momentum": st.sampled_from([0.95, 0.5]),
                                        "delta": st.sampled_from([1e-6, 1e-2])})),
    "Adam": (S.adam_update, ref.adam_ref, 2,
             st.fixed_dictionaries({"beta1": st.sampled_from([0.9, 0.5]),
                                    "beta2": st.sampled_from([0.999, 0.9]),
                                    "eps_hat": st.sampled_from([1e-8, 1e-4])})),
}

regs = st.sampled_from([("L2", 0.0), ("L2", 5e-4), ("L1", 1e-3), ("L2", 0.1), ("L1", 0.05)])


def _close(actual, expected, name):
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    assert_close(actual, expected, RTOL, ATOL * scale, name=name)


def _run(name, n, hyper, seed, reg, diff_scale, lr, zero_grad_iter=None, weights=None):
    """ITERS steps of solver ``name`` on the device and in the reference; compare after each."""
    fn, reference, n_hist, _ = SOLVERS[name]
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(np.float32) if weights is None else weights.copy()
    hist = [np.zeros(n, np.float32) for _ in range(n_hist)]
    dw, dhist = cuda.to_device(w), [cuda.to_device(h) for h in hist]
    regularization, decay = reg
    for it in range(ITERS):
        g = rng.standard_normal(n).astype(np.float32)
        if it == zero_grad_iter:
            g[:] = 0
        dg = cuda.to_device(g)
        kw = dict(hyper, local_decay=decay, regularization=regularization, diff_scale=diff_scale)
        if name == "Adam":      # the kernel takes the step's corrected rate, Caffe's lr * correction
            fn(dw, dg, *dhist, ref.adam_rate_ref(lr, hyper["beta1"], hyper["beta2"], it + 1), **kw)
            reference(w, g, *hist, lr, t=it + 1, **kw)
        else:
            fn(dw, dg, *dhist, lr, **kw)
            reference(w, g, *hist, lr, **kw)
        where = f"{name} iter {it} {reg} {hyper}"
        _close(dw.copy_to_host(), w, f"{where}: weight")
        _close(dg.copy_to_host(), g, f"{where}: diff (update value)")
        for k, (dh, h) in enumerate(zip(dhist, hist)):
            _close(dh.copy_to_host(), h, f"{where}: history {k}")


@pytest.mark.parametrize("name", sorted(SOLVERS))
@settings(max_examples=EXAMPLES)
@given(data=st.data(), n=st.integers(1, MAX_N), seed=st.integers(0, 2**16), reg=regs,
       diff_scale=st.sampled_from([1.0, 0.5, 1.0 / 3.0]), lr=st.sampled_from([0.01, 0.1, 1.0]))
def test_update_matches_reference(name, data, n, seed, reg, diff_scale, lr):
    hyper = data.draw(SOLVERS[name][3], label="hyper")
    _run(name, n, hyper, seed, reg, diff_scale, lr)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_edge_values(name):
    """Zero gradients (an iteration with g == 0), weights that are negative, zero and positive
    under L1 (sign(0) = 0), and a large delta."""
    w = np.array([-2.0, -0.5, 0.0, 0.0, 0.25, 3.0, -1e-3], np.float32)
    hyper = {"SGD": {"momentum": 0.9}, "Nesterov": {"momentum": 0.9},
             "AdaGrad": {"delta": 1.0}, "RMSProp": {"rms_decay": 0.9, "delta": 1.0},
             "AdaDelta": {"momentum": 0.9, "delta": 1.0},
             "Adam": {"beta1": 0.9, "beta2": 0.999, "eps_hat": 1.0}}[name]
    _run(name, w.size, hyper, 7, ("L1", 0.01), 1.0, 0.1, zero_grad_iter=0, weights=w)
    _run(name, w.size, hyper, 8, ("L2", 0.01), 0.5, 0.1, zero_grad_iter=1, weights=w)


def test_l1_sign_of_zero_and_zero_gradient_sgd():
    """Hand-computed: SGD, lr 1, momentum 0, L1 decay 0.5, zero gradient: w -= 0.5*sign(w)."""
    w = cuda.to_device(np.array([-2.0, 0.0, 3.0], np.float32))
    g = cuda.to_device(np.zeros(3, np.float32))
    h = cuda.to_device(np.zeros(3, np.float32))
    S.sgd_update(w, g, h, 1.0, 0.0, local_decay=0.5, regularization="L1")
    np.testing.assert_array_equal(w.copy_to_host(), np.array([-1.5, 0.0, 2.5], np.float32))
    np.testing.assert_array_equal(g.copy_to_host(), np.array([-0.5, 0.0, 0.5], np.float32))
    np.testing.assert_array_equal(h.copy_to_host(), np.array([-0.5, 0.0, 0.5], np.float32))


def test_errors():
    a = cuda.to_device(np.zeros(3, np.float32))
    b = cuda.to_device(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        S.sgd_update(a, a, b, 0.1, 0.9)
    with pytest.raises(ValueError, match="Unknown regularization type"):
        S.sgd_update(a, a, a, 0.1, 0.9, local_decay=0.1, regularization="L3")


@pytest.mark.parametrize("name", ["Adam", "AdaDelta", "Nesterov"])
def test_resume_from_host_history_is_bit_exact(name):
    """Stop after 2 steps, copy weights and history to the host (what a .solverstate holds), start
    again from fresh device arrays: steps 3-4 match an uninterrupted run bit for bit."""
    fn, _, n_hist, _ = SOLVERS[name]
    hyper = {"Adam": {"beta1": 0.9, "beta2": 0.999, "eps_hat": 1e-8},
             "AdaDelta": {"momentum": 0.95, "delta": 1e-6},
             "Nesterov": {"momentum": 0.9}}[name]
    rng = np.random.default_rng(5)
    n = 33
    w0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]

    def step(w, hist, it):
        kw = dict(hyper, local_decay=5e-4)
        rate = (ref.adam_rate_ref(0.01, hyper["beta1"], hyper["beta2"], it + 1) if name == "Adam"
                else 0.01)
        fn(w, cuda.to_device(grads[it]), *hist, rate, **kw)

    w = cuda.to_device(w0)
    hist = [cuda.to_device(np.zeros(n, np.float32)) for _ in range(n_hist)]
    for it in range(4):
        step(w, hist, it)
    straight = [w.copy_to_host()] + [h.copy_to_host() for h in hist]

    w = cuda.to_device(w0)
    hist = [cuda.to_device(np.zeros(n, np.float32)) for _ in range(n_hist)]
    for it in range(2):
        step(w, hist, it)
    saved_w, saved_h = w.copy_to_host(), [h.copy_to_host() for h in hist]
    w, hist = cuda.to_device(saved_w), [cuda.to_device(h) for h in saved_h]
    for it in range(2, 4):
        step(w, hist, it)
    resumed = [w.copy_to_host()] + [h.copy_to_host() for h in hist]
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
