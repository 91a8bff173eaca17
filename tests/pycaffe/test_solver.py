"""pycaffe's solvers on a tiny regression net (cpu, and gpu in the simulator): add_callback's
on_start / on_gradients_ready points, SGD's update checked against Caffe's documented rule,
the solver classes forcing their rule (Adam's first step), get_solver, snapshot / restore /
solve(resume). Oracle: numpy recomputations of the gradient and of the update rules."""
from __future__ import annotations

import numpy as np
import pytest

import caffe

NET = """name: "reg"
layer { name: "in" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
"""


def _solver_file(tmp_path, **kw) -> str:
    settings = {"net": '"net.prototxt"', "base_lr": 0.1, "lr_policy": '"fixed"', "max_iter": 10,
                "display": 0, "weight_decay": 0.01, "snapshot_prefix": '"snap/reg"',
                "random_seed": 3, "type": '"SGD"', **kw}
    (tmp_path / "net.prototxt").write_text(NET)
    path = tmp_path / "solver.prototxt"
    path.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    return str(path)


def _feed(net, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.blobs["y"].data[...] = y
    return x, y


def _grads(net, x, y):
    w, b = (p.data.astype(np.float64) for p in net.params["ip"])
    g = (x @ w.T + b - y) / len(x)
    return g.T @ x, g.sum(0)


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_callbacks_and_sgd_update(mode, tmp_path, monkeypatch):
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver(_solver_file(tmp_path))
    x, y = _feed(solver.net)
    events = []

    def on_start():
        events.append("start")
        assert all(not p.diff.any() for p in solver.net.params["ip"])    # diffs cleared
        events.append([p.data.copy() for p in solver.net.params["ip"]])

    def on_gradients_ready():
        events.append("grad")
        w_before = events[-2]
        dw, db = _grads(solver.net, x, y)
        np.testing.assert_allclose(solver.net.params["ip"][0].diff, dw, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(solver.net.params["ip"][1].diff, db, rtol=1e-4, atol=1e-6)
        for p, before in zip(solver.net.params["ip"], w_before):
            np.testing.assert_array_equal(p.data, before)                 # not updated yet
        events.append((dw, db))

    solver.add_callback(on_start, on_gradients_ready)
    solver.step(2)
    # per iteration: "start", the weights, "grad", the gradients
    assert solver.iter == 2 and events[0::4] == ["start", "start"] and events[2::4] == ["grad", "grad"]
    # SGD, no momentum: w -= lr * (dw + weight_decay * w), from the weights at iteration 1
    (w1, b1), (dw, db) = events[5], events[7]
    np.testing.assert_allclose(solver.net.params["ip"][0].data, w1 - 0.1 * (dw + 0.01 * w1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver.net.params["ip"][1].data, b1 - 0.1 * (db + 0.01 * b1),
                               rtol=1e-5, atol=1e-6)
    assert np.isfinite(float(solver.net.blobs["loss"].data))


def test_solver_classes_force_their_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _solver_file(tmp_path, momentum=0.9, momentum2=0.999, delta=1e-8, weight_decay=0)
    solver = caffe.AdamSolver(path)                       # the file says SGD
    assert isinstance(solver, caffe.SGDSolver) and solver.param.type == "Adam"
    x, y = _feed(solver.net)
    w = solver.net.params["ip"][0].data.astype(np.float64)
    dw, _ = _grads(solver.net, x, y)
    solver.step(1)
    # Adam, t = 1: m = (1 - b1) g, v = (1 - b2) g^2, w -= lr sqrt(1 - b2) / (1 - b1) m / (sqrt(v) + eps)
    m, v = 0.1 * dw, 0.001 * dw ** 2
    expect = w - 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(solver.net.params["ip"][0].data, expect, rtol=1e-4, atol=1e-6)
    assert type(caffe.get_solver(_solver_file(tmp_path, type='"Nesterov"', momentum=0.9))) \
        is caffe.NesterovSolver
    assert type(caffe.get_solver(_solver_file(tmp_path))) is caffe.SGDSolver
    for cls, name in ((caffe.AdaGradSolver, "AdaGrad"), (caffe.RMSPropSolver, "RMSProp"),
                      (caffe.AdaDeltaSolver, "AdaDelta")):
        assert cls(_solver_file(tmp_path)).param.type == name


def test_snapshot_restore_and_solve_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _solver_file(tmp_path, momentum=0.9, max_iter=5)
    a = caffe.get_solver(path)
    _feed(a.net)
    a.step(3)
    a.snapshot()
    assert (tmp_path / "snap" / "reg_iter_3.caffemodel").is_file()
    b = caffe.get_solver(path)
    _feed(b.net)
    b.restore("snap/reg_iter_3.solverstate")
    assert b.iter == 3
    np.testing.assert_array_equal(b.net.params["ip"][0].data, a.net.params["ip"][0].data)
    a.step(2)
    b.step(2)                                               # momentum history restored too
    np.testing.assert_allclose(b.net.params["ip"][0].data, a.net.params["ip"][0].data, rtol=1e-6)
    c = caffe.get_solver(path)
    _feed(c.net)
    c.solve("snap/reg_iter_3.solverstate")
    assert c.iter == 5
    np.testing.assert_allclose(c.net.params["ip"][0].data, a.net.params["ip"][0].data, rtol=1e-6)
    # test nets share the training net's weights; share_weights does the same for any net
    other = caffe.Net("net.prototxt", caffe.TEST)
    c.share_weights(other)
    np.testing.assert_array_equal(other.params["ip"][0].data, c.net.params["ip"][0].data)


def test_multiprocess_api_without_a_gpu_says_what_is_missing(tmp_path):
    """pycaffe's multi-GPU calls: solver count/rank are kept; a solver of rank 1 of 2 is not the
    root and waits for caffe.NCCL; NCCL in CPU mode is refused with a line saying what to do."""
    import caffe
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0
    caffe.set_multiprocess(True)
    caffe.set_solver_count(2)
    caffe.set_solver_rank(1)
    try:
        assert (caffe.solver_count(), caffe.solver_rank()) == (2, 1)
        caffe.set_mode_cpu()
        solver = caffe.SGDSolver(_solver_file(tmp_path))
        assert not solver._solver.world.is_root and solver._solver.test_nets == []
        with pytest.raises(Exception, match="caffe.NCCL needs GPU mode"):
            caffe.NCCL(solver, b"\0" * 128)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
