"""Whole nets on the cuda backend (Numba's simulator in CI): a tiny conv -> pool -> relu -> ip ->
softmax-loss net trains a few SGD steps identically (within float tolerance) on cpu and cuda, a
deploy net returns numpy from numpy input, and blob host mirrors sync both ways."""
from __future__ import annotations

import io

import numpy as np
import pytest
from google.protobuf import text_format

from proto import caffe_pb2 as pb
from runner import Net
from runner.solver.glog import GLog
from runner.solver.solver import Solver
from tests.helpers import assert_close, rel_frobenius

NET = """
name: "tiny_conv"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 1 dim: 5 dim: 5 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "xavier" }
                      bias_filler { type: "constant" value: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """
base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 lr_policy: "fixed" max_iter: 100 display: 0
random_seed: 11 snapshot_after_train: false type: "SGD"
"""


def _solver(device: str) -> Solver:
    p = pb.SolverParameter()
    text_format.Parse(SOLVER, p)
    text_format.Parse(NET, p.net_param)
    return Solver(p, device=device, log=GLog(stream=io.StringIO()))


def _batch(step: int):
    rng = np.random.default_rng(100 + step)
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    y = rng.integers(0, 3, 2).astype(np.float32)
    return x, y


def test_sgd_steps_match_cpu():
    """Two SGD steps (momentum, weight decay) on cpu and cuda: same losses, same weights, same
    momentum history (the cuda update runs kernels.solver_update)."""
    solvers = {d: _solver(d) for d in ("cpu", "cuda")}
    # same initial weights (both drew from the same seed on the host; make it explicit anyway)
    for lname, blobs in solvers["cpu"].net.params.items():
        for cb, gb in zip(blobs, solvers["cuda"].net.params[lname]):
            gb.data = cb.host_data()
    losses = {d: [] for d in solvers}
    for step in range(2):
        x, y = _batch(step)
        for d, s in solvers.items():
            s.net.blobs["data"].data = x
            s.net.blobs["label"].data = y
            s.step(1)
            losses[d].append(float(s.net.blobs["loss"].host_data()))
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-4)
    assert losses["cpu"][0] != losses["cpu"][1]        # it did train
    for lname, blobs in solvers["cpu"].net.params.items():
        for j, (cb, gb) in enumerate(zip(blobs, solvers["cuda"].net.params[lname])):
            err = rel_frobenius(gb.host_data(), cb.host_data())
            assert err < 1e-4, f"{lname}[{j}] weights differ: rel. Frobenius error {err:.3g}"
    for hc, hg in zip(solvers["cpu"].history, solvers["cuda"].history):
        assert rel_frobenius(solvers["cuda"].backend.to_host(hg), hc) < 1e-4


def test_deploy_forward_numpy_in_numpy_out():
    """Net(device="cuda").forward(data=numpy) returns numpy arrays equal to the cpu net's, for two
    batch sizes (the second smaller: reshape within capacity)."""
    deploy = NET.replace('top: "label"', "").replace("shape { dim: 2 } ", "").replace(
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }',
        'layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }')
    cnet = Net(deploy, phase="TEST", device="cpu", seed=3)
    gnet = Net(deploy, phase="TEST", device="cuda", seed=3)
    for lname, blobs in cnet.params.items():
        for cb, gb in zip(blobs, gnet.params[lname]):
            gb.data = cb.host_data()
    for n in (2, 1):
        x = np.random.default_rng(n).standard_normal((n, 1, 5, 5)).astype(np.float32)
        out = gnet.forward(data=x)
        assert set(out) == {"prob"}
        assert isinstance(out["prob"], np.ndarray) and out["prob"].shape == (n, 3)
        assert_close(out["prob"], cnet.forward(data=x)["prob"], 1e-4, 1e-6, name="prob")
        assert_close(out["prob"].sum(axis=1), np.ones(n), 1e-5, 1e-5, name="sum of probabilities")


def test_blob_host_mirror_sync_both_ways(monkeypatch):
    """Host writes reach the device before the next layer reads them; device results reach the
    host on the next .data/.diff access; read-only host views do not cause uploads. Between
    layers nothing goes through the host: in a steady-state forward_backward every transfer is a
    loss scalar (its value and its diff)."""
    net = Net(NET, phase="TRAIN", device="cuda", seed=4)
    be = net.backend
    assert be.name == "cuda" and be.host_mirror
    x, y = _batch(0)
    net.blobs["data"].data[...] = x                      # write through the host view
    net.blobs["label"].data = y                          # setter: straight to the device
    assert_close(be.to_host(net.blobs["data"].dev_data), x, 0, 0, name="uploaded data")
    loss = net.forward_backward()          # first touch: parameters are uploaded here
    assert np.isfinite(loss) and loss > 0
    sizes = []
    real_to_host, real_to_device = type(be).to_host, type(be).to_device

    def to_host(self, arr, out=None):
        sizes.append(("down", int(np.prod(arr.shape))))
        return real_to_host(self, arr, out)

    def to_device(self, host, out=None):
        sizes.append(("up", int(np.asarray(host).size)))
        return real_to_device(self, host, out)

    with monkeypatch.context() as m:
        m.setattr(type(be), "to_host", to_host)
        m.setattr(type(be), "to_device", to_device)
        net.clear_param_diffs()
        assert net.forward_backward() == pytest.approx(loss, rel=1e-6)
    assert sizes and all(n == 1 for _, n in sizes), f"host transfers in an iteration: {sizes}"
    conv_w = net.params["conv"][0]
    # a device result is visible on the host
    d1 = np.array(conv_w.diff)
    assert np.abs(d1).sum() > 0
    assert_close(d1, be.to_host(conv_w.dev_diff), 0, 0, name="diff mirror")
    # a host write to the diff reaches the device
    conv_w.diff[...] = 2.0
    be.scal(0.5, conv_w.dev_diff)
    assert_close(conv_w.host_diff(), np.ones(conv_w.shape), 0, 0, name="diff after device scal")
    # the weights written on the host are used by the next forward
    w = np.array(conv_w.data)
    conv_w.data = np.zeros_like(w)
    net.forward_loss()
    assert not np.abs(net.blobs["conv"].host_data() - 0.1).max() > 1e-6   # conv = bias only
    conv_w.data = w
    ro = net.blobs["conv"].host_data()
    assert not ro.flags.writeable

