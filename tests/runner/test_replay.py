"""Launch replay (runner/backend/replay.py): a cuda Solver that records its steady-state launches once and
replays them must give the same losses and weights, bit for bit, as the eager path
(NBCAFFE_REPLAY=0), with fresh input every iteration, dropout and an eager loss layer in between,
a learning rate that changes (the update segment is re-recorded), a batch-size change (segments
re-recorded) and a layer whose forward copies to the host (found unsafe, left eager)."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from kernels._launch import SIMULATOR
from proto import caffe_pb2 as pb
from runner.backend.replay import NetReplay, Recorder, _buffers_key, replay_enabled
from runner.solver.solver import Solver

NET = """
name: "mini"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: {n} dim: 2 dim: 7 dim: 7 }} }} }}
layer {{ name: "label" type: "Input" top: "label" input_param {{ shape {{ dim: {n} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 4 kernel_size: 3 group: 2 weight_filler {{ type: "gaussian" std: 0.3 }}
  bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param {{ local_size: 3 }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" {pool_tops}
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param {{ num_output: 6 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""


def _solver(monkeypatch, replay: bool, n: int = 2, pool_mask_top: bool = False,
            policy: str = "fixed", stepsize: int = 2, solver_type: str = "SGD") -> Solver:
    monkeypatch.setenv("NBCAFFE_REPLAY", "1" if replay else "0")
    sp = pb.SolverParameter()
    tops = 'top: "mask1"' if pool_mask_top else ""
    text_format.Parse(NET.format(n=n, pool_tops=tops), sp.net_param)
    if pool_mask_top:
        text_format.Parse('name: "silence" type: "Silence" bottom: "mask1"', sp.net_param.layer.add())
    sp.base_lr, sp.momentum, sp.weight_decay = 0.1, 0.9, 0.01
    sp.lr_policy, sp.gamma, sp.stepsize = policy, 0.5, stepsize
    sp.max_iter, sp.display, sp.snapshot, sp.random_seed = 100, 0, 0, 7
    sp.type = solver_type
    return Solver(sp, device="cuda", log=lambda *a, **k: None)


def _train(solver: Solver, steps: int, n: int = 2, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    losses = []
    net = solver.net
    for _ in range(steps):
        shape = (n, 2, 7, 7)
        if net.blobs["data"].shape != shape:
            net.blobs["data"].reshape(shape)
            net.blobs["label"].reshape((n,))
        net.blobs["data"].data[...] = rng.standard_normal(shape).astype(np.float32)
        net.blobs["label"].data[...] = rng.integers(0, 3, n).astype(np.float32)
        solver.step(1)
        losses.append(solver.smoothed_loss)
    return losses


def _weights(solver: Solver) -> list[np.ndarray]:
    return [np.array(b.data) for blobs in solver.net.params.values() for b in blobs]


def _assert_same(a: Solver, b: Solver, la: list[float], lb: list[float]) -> None:
    assert la == lb
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)


def test_replay_matches_eager_bit_for_bit(monkeypatch):
    """Conv (grouped), ReLU in place, LRN, pooling, inner products, dropout (eager) and the loss
    (eager) between replayed stretches: three iterations (eager, record, replay) agree exactly;
    the learning rate halves every iteration (step policy, stepsize 1), so the replayed update
    runs with its rate arguments re-bound."""
    rep = _solver(monkeypatch, replay=True, policy="step", stepsize=1)
    eager = _solver(monkeypatch, replay=False, policy="step", stepsize=1)
    assert not eager.executor.replays
    la, lb = _train(rep, 3), _train(eager, 3)
    _assert_same(rep, eager, la, lb)
    assert rep.executor.notes == []
    # the third iteration replays: clear, forward conv1..ip1 and ip2, backward ip2 and ip1..conv1,
    # and the update
    assert rep.executor.replayed == 6
    assert {k[0] for k in rep.executor._segments} == {"clear", "forward", "backward", "update"}


def test_adam_update_replays_with_its_corrected_rate_rebound(monkeypatch):
    """Adam's kernel takes this step's bias-corrected rate (the only value that changes with the
    step count) as one float: the update segment replays with it re-bound, bit for bit."""
    rep = _solver(monkeypatch, replay=True, solver_type="Adam")
    eager = _solver(monkeypatch, replay=False, solver_type="Adam")
    la, lb = _train(rep, 3), _train(eager, 3)
    _assert_same(rep, eager, la, lb)
    seg = rep.executor._segments[("update", 0, 0)]
    assert seg.slots is not None and rep.executor._rates_rebindable
    assert rep.executor.replayed == 6            # the update among them (as for SGD above)


def test_cuda_graphs_match_eager_bit_for_bit(monkeypatch):
    """NBCAFFE_CUDA_GRAPHS=1: on a GPU the clear, forward and backward segments run as captured
    CUDA graphs (the update, whose rates are re-bound, stays a plain replay) and every iteration
    still agrees exactly with the eager path; in the simulator (no graphs) each segment says once
    why it is not a graph and replays as before."""
    monkeypatch.setenv("NBCAFFE_CUDA_GRAPHS", "1")
    rep = _solver(monkeypatch, replay=True, policy="step", stepsize=1)
    eager = _solver(monkeypatch, replay=False, policy="step", stepsize=1)
    assert rep.executor.graphs == (not SIMULATOR)      # the switch (the simulator has no graphs)
    rep.executor.graphs = True                         # there: exercise the capture-failure path
    la, lb = _train(rep, 3), _train(eager, 3)        # eager, record, replay (captured)
    _assert_same(rep, eager, la, lb)
    graphs = [k for k, seg in rep.executor._segments.items() if seg.graph is not None]
    if SIMULATOR:
        assert not graphs and rep.executor.notes
        assert all("no CUDA graphs" in n for n in rep.executor.notes)
    else:
        assert rep.executor.notes == []
        assert {k[0] for k in graphs} == {"clear", "forward", "backward"}


POOL_NET = """
name: "pool"
force_backward: true
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }} }} }}
layer {{ name: "label" type: "Input" top: "label" input_param {{ shape {{ dim: 2 dim: 2 dim: 2 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "data" top: "relu" }}
layer {{ name: "pool" type: "Pooling" bottom: "relu" top: "pool" {mask}
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
{silence}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "pool" bottom: "label" top: "loss" }}
"""


def _pool_net(mask: bool):
    from runner.net import Net
    text = POOL_NET.format(mask='top: "mask"' if mask else "",
                           silence='layer { name: "s" type: "Silence" bottom: "mask" }' if mask else "")
    p = pb.NetParameter()
    text_format.Parse(text, p)
    return Net(p, phase="TRAIN", device="cuda")


@pytest.mark.parametrize("mask", [False, True])
def test_net_replay_rerecords_on_batch_change_and_keeps_unsafe_eager(mask):
    """Fresh inputs every pass, a batch-size change (stretches re-recorded) and, with a pooling
    mask top (a device-to-host copy in forward), a stretch noted unsafe and kept eager."""
    eager, rep_net = _pool_net(mask), _pool_net(mask)
    rep = NetReplay(rep_net)
    rng = np.random.default_rng(3)
    for n in (2, 2, 2, 3, 3, 3):
        x = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
        y = rng.integers(0, 3, (n, 2, 2)).astype(np.float32)
        for net in (eager, rep_net):
            if net.blobs["data"].shape[0] != n:
                net.blobs["data"].reshape((n, 3, 4, 4))
                net.blobs["label"].reshape((n, 2, 2))
            net.blobs["data"].data[...] = x
            net.blobs["label"].data[...] = y
        assert rep.forward_backward() == eager.forward_backward()
        np.testing.assert_array_equal(rep_net.blobs["data"].diff, eager.blobs["data"].diff)
        np.testing.assert_array_equal(rep_net.blobs["pool"].data, eager.blobs["pool"].data)
    if mask:
        assert any("forward of relu..pool" in n and "device-to-host" in n for n in rep.notes)
        assert rep.replayed == 2          # the backward of pool..relu, once per batch size
    else:
        assert rep.notes == [] and rep.replayed == 4


def _update_net():
    net = _pool_net(False)
    from runner.blob import Blob
    from runner.net import Param
    blob = Blob(net.backend, (5,), "w")
    net.learnable_params.append(Param(blob, 1.0, 1.0, "w"))
    blob.data[...] = 1.0
    return net, blob


def test_update_segment_rebinds_a_changing_rate():
    """NetReplay.update: eager, then recorded, then re-issued with the rate argument re-bound in
    place -- a changing learning rate (an ``inv`` or ``step`` policy) keeps replaying."""
    net, blob = _update_net()
    rep = NetReplay(net)
    calls = []

    def work(alpha):
        def run():
            calls.append(alpha)
            net.backend.scal(alpha, blob.dev_data)     # y = alpha * y: alpha is one float argument
        return run
    alphas = (2.0, 2.0, 3.0, 0.5, 1.5)
    for alpha in alphas:
        rep.update([work(alpha)], [alpha], ())
    assert calls == [2.0, 2.0] and rep.replayed == 3    # eager, record, then re-bound replays
    np.testing.assert_array_equal(blob.data, np.full(5, np.prod(np.float32(alphas)), np.float32))


def test_update_segment_with_an_ambiguous_rate_replays_only_while_it_repeats():
    """When the rate equals another float argument of the launch (here axpby's beta), its slot
    cannot be told apart: the rates then join the validity key."""
    net, blob = _update_net()
    x = net.backend.to_device(np.ones(5, np.float32))
    rep = NetReplay(net)
    calls = []

    def work(a):
        def run():
            calls.append(a)
            net.backend.axpby(a, x, a, blob.dev_data)   # y = a*x + a*y
        return run
    for a in (2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0):
        rep.update([work(a)], [a], ())
    # eager, record (ambiguous: falls back), then keyed on the rate: eager, record, replay, replay;
    # new rate: eager, record, replay
    assert calls == [2.0, 2.0, 2.0, 2.0, 3.0, 3.0] and rep.replayed == 1
    y = np.float32(1.0)
    for a in (2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0):
        y = np.float32(np.float32(a) * np.float32(1.0) + np.float32(a) * y)
    np.testing.assert_allclose(blob.data, np.full(5, y, np.float32), rtol=1e-6)


def test_recorder_replays_launches_in_order(monkeypatch):
    """The recorded ops of a stretch re-issue the same kernels on the same buffers, in order: new
    values written into x (same buffer) come out as 2 * relu(x) in y, which starts from garbage."""
    monkeypatch.setenv("NBCAFFE_REPLAY", "1")
    from runner.backend import get_backend
    be = get_backend("cuda")
    x = be.to_device(np.arange(6, dtype=np.float32) - 3)
    y = be.zeros((6,))
    with Recorder() as rec:
        be.relu_fwd(x, y)
        be.scal(2.0, y)
    assert rec.unsafe is None and len(rec.ops) == 2
    np.testing.assert_array_equal(be.to_host(y), [0, 0, 0, 0, 2, 4])
    be.to_device(np.array([5, -1, 2, -7, 0.5, 3], np.float32), out=x)
    be.to_device(np.full(6, np.nan, np.float32), out=y)
    for op in rec.ops:
        op()                      # relu (y = relu(x)), then y *= 2: the order matters
    np.testing.assert_array_equal(be.to_host(y), [10, 0, 4, 0, 1, 6])
    with Recorder() as rec:
        be.to_host(y)
    assert rec.unsafe is not None and "device-to-host" in rec.unsafe


@pytest.mark.parametrize("flag", ["0", "off"])
def test_replay_can_be_turned_off(monkeypatch, flag):
    """NBCAFFE_REPLAY=0/off: the cuda backend hands out the eager executor."""
    monkeypatch.setenv("NBCAFFE_REPLAY", flag)
    assert not replay_enabled()
    net = _pool_net(False)
    assert not net.backend.executor(net).replays
    assert net.backend.executor(net, replay=True).replays


def test_buffers_key_follows_reallocation_and_holds_the_buffers():
    """A segment's validity key changes when a blob reallocates (grows past its capacity), not when
    it shrinks into its capacity, and it holds the buffers so their ids cannot be reused."""
    from runner.backend import get_backend
    from runner.blob import Blob
    b = Blob(get_backend("cuda"), (2, 3), "b")
    old = b._data
    k1 = _buffers_key([b])
    assert k1[0][1] is old                  # the buffer object itself: held while k1 lives
    b.reshape((4, 3))                       # grows: new buffers
    assert b._data is not old and _buffers_key([b]) != k1
    k2 = _buffers_key([b])
    b.reshape((2, 3))                       # fits the capacity: same buffers, other shape
    assert _buffers_key([b]) != k2
    b.reshape((4, 3))
    assert _buffers_key([b]) == k2


def test_time_reports_the_replayed_forward_backward():
    """``nbcaffe time`` on cuda adds the replayed forward-backward time to Caffe's block."""
    from runner.commands.time import time_net
    lines = []
    res = time_net(_pool_net(False), 1, log=lambda msg, *a: lines.append(msg))
    assert res["fb_replay_ms"] > 0
    assert any(m.startswith("Average Forward-Backward with replayed launches") for m in lines)


def test_recorder_ignores_other_threads():
    """A launch from another thread while a stretch is recorded is not part of the stretch."""
    import threading

    from runner.backend import get_backend
    be = get_backend("cuda")
    x = be.to_device(np.ones(4, np.float32))
    with Recorder() as rec:
        t = threading.Thread(target=lambda: be.scal(2.0, x))
        t.start()
        t.join()
        be.scal(3.0, x)
    assert rec.unsafe is None and len(rec.ops) == 1
    np.testing.assert_array_equal(be.to_host(x), np.full(4, 6.0, np.float32))


def test_solver_replay_flag_overrides_the_environment(monkeypatch):
    """Solver(replay=False) (``nbcaffe train --no-replay``) turns replay off whatever the
    environment says; replay=None follows NBCAFFE_REPLAY."""
    monkeypatch.setenv("NBCAFFE_REPLAY", "1")
    sp = pb.SolverParameter()
    text_format.Parse(NET.format(n=1, pool_tops=""), sp.net_param)
    sp.base_lr, sp.lr_policy, sp.max_iter = 0.1, "fixed", 1
    assert not Solver(sp, device="cuda", log=lambda *a, **k: None, replay=False).executor.replays
    assert Solver(sp, device="cuda", log=lambda *a, **k: None).executor.replays
    from runner.cli import build_parser
    args = build_parser().parse_args(["train", "--solver", "s.prototxt", "--no-replay"])
    assert args.no_replay
