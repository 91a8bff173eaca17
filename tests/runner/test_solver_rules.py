"""Learning-rate policies and update rules (no Net): hand-computed values, Caffe's formulas
written out independently, and the cpu backend's update ops vs the cuda backend's kernels."""
from __future__ import annotations

import math

import numpy as np
import pytest

from netdef.errors import SolverError
from proto import caffe_pb2 as pb
from runner.backend import get_backend
from runner.solver import updates
from runner.solver.glog import GLog, fmt
from runner.solver.lr_policy import LearningRate
from runner.solver.parse_log import (
    REGEX_LEARNING_RATE,
    REGEX_TEST_OUTPUT,
    REGEX_TRAIN_OUTPUT,
    extract_datetime,
)


def sp(**kw) -> pb.SolverParameter:
    p = pb.SolverParameter()
    for k, v in kw.items():
        if k == "stepvalue":
            p.stepvalue.extend(v)
        else:
            setattr(p, k, v)
    return p


def test_lr_policies_match_caffe_formulas():
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    assert LearningRate(sp(lr_policy="fixed", base_lr=0.01))(123) == f32(0.01)
    lr = LearningRate(sp(lr_policy="step", base_lr=0.1, gamma=0.5, stepsize=10))
    assert [lr(i) for i in (0, 9, 10, 25)] == [f32(0.1), f32(0.1), f32(0.05), f32(0.025)]
    assert lr.current_step == 2
    assert LearningRate(sp(lr_policy="exp", base_lr=1, gamma=0.9))(3) == f32(float(np.float32(0.9)) ** 3)
    # LeNet's inv: 0.01 * (1 + 1e-4 * iter)^-0.75
    lr = LearningRate(sp(lr_policy="inv", base_lr=0.01, gamma=0.0001, power=0.75))
    assert lr(100) == f32(0.01 * (1 + 0.0001 * 100) ** -0.75)
    assert abs(lr(10000) - 0.00594604) < 1e-8
    assert LearningRate(sp(lr_policy="poly", base_lr=1, power=2, max_iter=100))(50) == f32(0.25)
    s = LearningRate(sp(lr_policy="sigmoid", base_lr=1, gamma=-0.1, stepsize=20))
    assert s(20) == f32(0.5) and s(30) == f32(1 / (1 + math.exp(1)))


def test_multistep_advances_one_step_per_call_like_caffe():
    lines = []
    lr = LearningRate(sp(lr_policy="multistep", base_lr=1, gamma=0.1, stepvalue=[5, 6]), lines.append)
    assert lr(4) == 1.0
    # iteration 10 passes both step values, but Caffe's `if` advances once per call
    assert lr(10) == float(np.float32(0.1)) and lr.current_step == 1
    assert abs(lr(11) - 0.01) < 1e-9 and lr.current_step == 2
    assert lines == ["MultiStep Status: Iteration 10, step = 1", "MultiStep Status: Iteration 11, step = 2"]


def test_bad_solver_settings():
    with pytest.raises(SolverError, match="Unknown learning rate policy"):
        LearningRate(sp(lr_policy="cosine"))
    with pytest.raises(SolverError, match="Unknown solver type"):
        updates.solver_type(sp(type="LBFGS"))
    assert updates.solver_type(sp(type="adam")) == "Adam"
    assert updates.solver_type(sp(solver_type=pb.SolverParameter.NESTEROV)) == "Nesterov"
    with pytest.raises(SolverError, match="Momentum cannot be used with AdaGrad"):
        updates.check_params("AdaGrad", sp(momentum=0.9))


def _ref_step(kind, w, g, h, lr, p, it, decay, reg, iter_size):
    """Caffe's per-element update, in float64 scalars (an independent transcription)."""
    g = g / iter_size
    if decay:
        g = g + decay * (w if reg == "L2" else np.sign(w))
    h = [x.copy() for x in h]
    if kind == "SGD":
        h[0] = p.momentum * h[0] + lr * g
        u = h[0]
    elif kind == "Nesterov":
        old = h[0]
        h[0] = p.momentum * h[0] + lr * g
        u = (1 + p.momentum) * h[0] - p.momentum * old
    elif kind == "AdaGrad":
        h[0] = h[0] + g * g
        u = lr * g / (np.sqrt(h[0]) + p.delta)
    elif kind == "RMSProp":
        h[0] = p.rms_decay * h[0] + (1 - p.rms_decay) * g * g
        u = lr * g / (np.sqrt(h[0]) + p.delta)
    elif kind == "AdaDelta":
        h[0] = p.momentum * h[0] + (1 - p.momentum) * g * g
        u = g * np.sqrt((h[1] + p.delta) / (h[0] + p.delta))
        h[1] = p.momentum * h[1] + (1 - p.momentum) * u * u
        u = lr * u
    else:
        h[0] = p.momentum * h[0] + (1 - p.momentum) * g
        h[1] = p.momentum2 * h[1] + (1 - p.momentum2) * g * g
        t = it + 1
        u = lr * math.sqrt(1 - p.momentum2 ** t) / (1 - p.momentum ** t) * h[0] / (np.sqrt(h[1]) + p.delta)
    return w - u, h


PARAMS = {
    "SGD": dict(momentum=0.9), "Nesterov": dict(momentum=0.95), "AdaGrad": dict(delta=1e-6),
    "RMSProp": dict(rms_decay=0.98, delta=1e-6), "AdaDelta": dict(momentum=0.95, delta=1e-6),
    "Adam": dict(momentum=0.9, momentum2=0.999, delta=1e-8),
}


def _step(backend, kind, w, diff, hist, local_rate, p, it, local_decay, reg, diff_scale):
    """One update through the rule table and ``backend``'s op (what the Solver does)."""
    rule = updates.RULES[kind]
    getattr(backend, rule.op)(w, diff, *hist, rule.rate(local_rate, p, it + 1),
                              local_decay=local_decay, regularization=reg, diff_scale=diff_scale,
                              **rule.constants(p))


@pytest.mark.parametrize("kind", list(PARAMS))
@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_cpu_rules_match_reference(kind, reg):
    rng = np.random.default_rng(1)
    p = sp(**PARAMS[kind])
    n_h = updates.RULES[kind].history
    w = rng.standard_normal(17).astype(np.float32)
    h = [np.abs(rng.standard_normal(17)).astype(np.float32) * 0.1 for _ in range(n_h)]
    w64, h64 = w.astype(np.float64), [x.astype(np.float64) for x in h]
    cpu = get_backend("cpu")
    for it in range(3):
        g = rng.standard_normal(17).astype(np.float32)
        _step(cpu, kind, w, g.copy(), h, 0.05, p, it, 0.01, reg, 0.5)
        w64, h64 = _ref_step(kind, w64, g.astype(np.float64), h64, 0.05, p, it, 0.01, reg, 2)
    np.testing.assert_allclose(w, w64, rtol=2e-5, atol=2e-6)
    for a, b in zip(h, h64):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kind", list(PARAMS))
def test_cpu_rules_match_cuda_kernels(kind):
    """Same inputs through the cpu backend's numpy ops and the cuda backend's kernels."""
    rng = np.random.default_rng(2)
    p = sp(**PARAMS[kind])
    n_h = updates.RULES[kind].history
    w = rng.standard_normal(9).astype(np.float32)
    g = rng.standard_normal(9).astype(np.float32)
    h = [np.abs(rng.standard_normal(9)).astype(np.float32) for _ in range(n_h)]
    gpu = get_backend("cuda")
    dw, dg, dh = gpu.to_device(w), gpu.to_device(g), [gpu.to_device(x) for x in h]
    _step(gpu, kind, dw, dg, dh, 0.1, p, 4, 0.005, "L2", 0.5)
    _step(get_backend("cpu"), kind, w, g, h, 0.1, p, 4, 0.005, "L2", 0.5)
    np.testing.assert_allclose(gpu.to_host(dw), w, rtol=1e-6, atol=1e-7)
    for a, b in zip(dh, h):
        np.testing.assert_allclose(gpu.to_host(a), b, rtol=1e-6, atol=1e-7)


def test_adam_rate_matches_caffe_double_pow():
    # t = 1: lr * sqrt(1 - b2) / (1 - b1) with float32 betas promoted to double, a float32 result
    p = sp(**PARAMS["Adam"])
    b1, b2 = np.float32(0.9), np.float32(0.999)
    want = np.float32(np.float32(0.5) * np.float32(np.sqrt(1 - np.float64(b2)) / (1 - np.float64(b1))))
    assert updates.adam_rate(0.5, p, 1) == want
    assert updates.adam_rate(0.5, p, 10**6) == np.float32(0.5)


def test_glog_lines_parse_with_caffes_regexes(tmp_path):
    log = GLog(stream=open(tmp_path / "err", "w"), path=str(tmp_path / "log"))
    log("Iteration 100, lr = 0.00992565")
    log("    Train net output #0: loss = 0.213 (* 1 = 0.213 loss)")
    log("    Test net output #1: accuracy = 0.9712")
    log.close()
    lines = (tmp_path / "log").read_text().splitlines()
    assert len(lines) == 3
    import re
    assert re.match(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ test_solver_rules\.py:\d+\] ", lines[0])
    assert extract_datetime(lines[0], 2026).year == 2026
    assert REGEX_LEARNING_RATE.search(lines[0]).group(1) == "0.00992565"
    assert REGEX_TRAIN_OUTPUT.search(lines[1]).groups() == ("0", "loss", "0.213")
    assert REGEX_TEST_OUTPUT.search(lines[2]).groups() == ("1", "accuracy", "0.9712")
    assert [fmt(x) for x in (0.01, 1e-5, 2.302585, 100.0, 3)] == ["0.01", "1e-05", "2.30259", "100", "3"]
