"""``precision`` (tf32/fp16/bf16 tensor-core GEMMs on the cuda backend; runner.backend).

- A tiny conv net (Convolution, Pooling, Convolution, InnerProduct, ReLU, InnerProduct,
  SoftmaxWithLoss) runs forward and backward in tf32 mode on the cuda backend. Every GEMM layer's
  output, weight gradient and bottom gradient is checked against a float64 recomputation from that
  layer's own inputs, with kernels/gemm_tc.py's error bound (tests/reference/mma.py) -- the bias
  add, col2im's sums and the ReLU mask add their FP32 roundings. The first convolution must also
  miss the exact result by more than an FP32 GEMM could (the tensor-core path is really taken).
  (FP16/BF16 GEMMs are covered in tests/kernels/test_gemm_tc.py; the net adds only the wiring.)
- The Solver and CLI plumbing: train/test nets get the precision, launch replay is bit-identical
  to eager; the cpu backend and unknown precisions are refused with one-line errors.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from netdef.errors import CaffeError
from runner.backend import get_backend
from runner.cli import main
from runner.net import Net
from runner.solver.glog import GLog
from runner.solver.solver import Solver
from tests.reference import mma as R
from tests.reference.conv import col2im_ref, conv_backward_ref, conv_forward_ref, im2col_ref
from tests.runner.test_solver import make_db, write

U32 = 2.0 ** -23

NET = """
name: "tinyconv"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 2 dim: 6 dim: 6 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 2 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv2" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                        bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
CONVS = {"conv1": ((3, 3), (1, 1)), "conv2": ((2, 2), (0, 0))}     # kernel, pad (stride 1)


def _bound(absA, absB, precision, absC=None):
    """gemm_error_bound of op(A) @ op(B) (+ the FP32 rounding of adding C, e.g. a bias)."""
    b = R.gemm_error_bound(absA, absB, np.zeros((absA.shape[0], absB.shape[1])), 1.0, 0.0, precision)
    if absC is not None:
        b = b + U32 * (absA @ absB + absC)
    return b


def _check(name, got, want, bound):
    err = np.abs(np.asarray(got, np.float64) - want)
    assert (err <= bound).all(), (f"{name}: {int((err > bound).sum())}/{err.size} over the bound, "
                                  f"worst {np.max(err / np.maximum(bound, 1e-300)):.3g} x")


@pytest.mark.slow
def test_tiny_conv_net_within_the_bound():
    precision = "tf32"
    low = Net(NET, phase="TRAIN", device="cuda", seed=3, precision=precision)
    assert low.backend.precision == precision
    low.blobs["data"].data = np.random.default_rng(5).standard_normal((2, 2, 6, 6)).astype(np.float32)
    low.blobs["label"].data = np.array([0, 2], np.float32)
    low.clear_param_diffs()
    loss = low.forward_backward()
    assert np.isfinite(loss)
    blobs, params = low.blobs, low.params
    for name, (kernel, pad) in CONVS.items():
        bottom = low.bottom_names[name][0]
        x = np.array(blobs[bottom].data, np.float64)
        w, b = (np.array(p.data, np.float64) for p in params[name])
        dy = np.array(blobs[name].diff, np.float64)
        N = x.shape[0]
        cout = w.shape[0]
        col = im2col_ref(x, 0, N, kernel, pad, (1, 1), (1, 1))           # (K, N*S)
        w2 = w.reshape(cout, -1)
        S = col.shape[1] // N
        # forward: y = W col + b
        y = conv_forward_ref(x, w, b, pad, (1, 1), (1, 1), 1)
        yb = _bound(np.abs(w2), np.abs(col), precision, np.abs(np.repeat(b, col.shape[1]).reshape(cout, -1)))
        got = np.array(blobs[name].data).transpose(1, 0, 2, 3).reshape(cout, -1)
        want = y.transpose(1, 0, 2, 3).reshape(cout, -1)
        _check(f"{precision} {name} forward", got, want, yb)
        if name == "conv1":     # an FP32 GEMM would be within (K + 2) u32 |W||col| everywhere
            fp32 = (col.shape[0] + 3) * U32 * (np.abs(w2) @ np.abs(col) + np.abs(b)[:, None])
            assert (np.abs(got - want) > fp32).any(), "conv1 is exact to FP32: no tensor-core rounding"
        # weight gradient: dW = dY col^T (K = N*S)
        dycn = dy.transpose(1, 0, 2, 3).reshape(cout, N * S)
        _, dw, _ = conv_backward_ref(x, w, dy, pad, (1, 1), (1, 1), 1)
        _check(f"{precision} {name} dW", np.array(params[name][0].diff).reshape(cout, -1),
               dw.reshape(cout, -1), _bound(np.abs(dycn), np.abs(col.T), precision))
        if name == "conv2":     # bottom gradient: col2im(W^T dY), col2im adding up to kh*kw taps
            dx, _, _ = conv_backward_ref(x, w, dy, pad, (1, 1), (1, 1), 1)
            taps = kernel[0] * kernel[1]
            dcol_b = _bound(np.abs(w2.T), np.abs(dycn), precision)
            mag = np.abs(w2.T) @ np.abs(dycn)
            dxb = col2im_ref(dcol_b + taps * U32 * mag, x.shape, 0, N, kernel, pad, (1, 1), (1, 1))
            _check(f"{precision} {name} dx", blobs[bottom].diff, dx, dxb)
    for name in ("ip1", "ip2"):
        bottom = low.bottom_names[name][0]
        x = np.array(blobs[bottom].data, np.float64).reshape(2, -1)
        w = np.array(params[name][0].data, np.float64)                    # (N, K)
        b = np.array(params[name][1].data, np.float64) if len(params[name]) > 1 else np.zeros(w.shape[0])
        dy = np.array(blobs[name].diff, np.float64)
        if name == "ip1":                                                 # ReLU ran in place on ip1:
            dy = dy * (np.array(blobs[name].data) > 0)                    # its diff is the ReLU's dx
        top = np.array(blobs[name].data, np.float64)
        y = x @ w.T + b
        if name == "ip1":
            y, top = np.maximum(y, 0), np.maximum(top, 0)
        _check(f"{precision} {name} forward", top, y, _bound(np.abs(x), np.abs(w.T), precision,
                                                           np.abs(np.broadcast_to(b, y.shape))))
        _check(f"{precision} {name} dW", params[name][0].diff, dy.T @ x,
               _bound(np.abs(dy.T), np.abs(x), precision))
        if name == "ip2":       # ip1's diff: ip2's bottom gradient dy W, then the in-place ReLU's mask
            mask = np.array(blobs["ip1"].data) > 0
            _check(f"{precision} ip2 dx", blobs["ip1"].diff, (dy @ w) * mask,
                   _bound(np.abs(dy), np.abs(w), precision) * mask)


def test_backend_precision_choices():
    tf32 = get_backend("cuda", precision="tf32")
    assert tf32.precision == "tf32" and tf32 is not get_backend("cuda")
    assert get_backend("cuda").precision == "fp32" and get_backend(tf32) is tf32
    with pytest.raises(CaffeError, match="use the cuda backend"):
        get_backend("cpu", precision="tf32")
    with pytest.raises(CaffeError, match="unknown precision 'fp8'; known: fp32, tf32, fp16, bf16"):
        get_backend("cuda", precision="fp8")
    with pytest.raises(CaffeError, match="asked of a cuda backend running tf32"):
        get_backend(tf32, precision="fp16")


@pytest.mark.slow
def test_solver_replay_and_cli_plumbing(tmp_path, monkeypatch, capsys):
    """Train and test nets share the tf32 backend; the launch replay (runner/backend/replay.py, on by
    default on cuda) re-issues the tensor-core launches exactly: 3 iterations with and without it
    give the same weights bit for bit; the CLI refuses tf32 on the cpu backend in one line."""
    make_db(tmp_path / "tiny_lmdb", n=8)
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, batch=2, max_iter=3, snapshot=0, test_interval=100,
                 more="test_initialization: false snapshot_after_train: false")
    weights = []
    for replay in (True, False):
        s = Solver(path, device="cuda", log=GLog(stream=io.StringIO()), precision="tf32", replay=replay)
        try:
            assert s.net.backend.precision == "tf32" and all(t.backend is s.net.backend for t in s.test_nets)
            assert s.executor.replays == replay
            s.solve()
            weights.append([np.array(p.blob.data) for p in s.params])
        finally:
            s.close()
    assert np.isfinite(weights[0][0]).all()
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    assert main(["train", "-solver", path, "--device", "cpu", "--precision", "tf32"]) == 1
    err = capsys.readouterr().err
    assert "nbcaffe: error: precision tf32 runs on the tensor cores: use the cuda backend" in err
    assert "Traceback" not in err
