"""Whole-net tests with inline prototxt (Caffe's test_net.cpp style): forward/backward against a
hand-computed reference, shared parameters, in-place layers, force_backward, loss_weight,
propagate_down, Caffe's rule for which layers run backward, save/copy_from, share_weights,
forward(start, end), batch reshape, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

from netdef.errors import NetDefinitionError, ShapeError, WeightsError
from runner import Net
from tests.helpers import assert_close

TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.5 }
                        bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n).astype(np.float32)


def _numpy_tiny(net, x, y, loss_weight=1.0):
    """Reference forward/backward of TINY in float64."""
    w1, b1 = (p.data.astype(np.float64) for p in net.params["ip1"])
    w2, b2 = (p.data.astype(np.float64) for p in net.params["ip2"])
    h = np.maximum(x @ w1.T + b1, 0)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = len(x)
    loss = -np.log(p[np.arange(n), y.astype(int)]).mean()
    dz = p.copy()
    dz[np.arange(n), y.astype(int)] -= 1
    dz *= loss_weight / n
    dw2, db2 = dz.T @ h, dz.sum(0)
    dh = dz @ w2 * (h > 0)
    return loss * loss_weight, dict(w1=dh.T @ x, b1=dh.sum(0), w2=dw2, b2=db2, x=dh @ w1)


def test_forward_backward_matches_numpy():
    net = Net(TINY, phase="TRAIN", seed=1)
    x, y = _batch()
    loss = net.forward_backward(data=x, label=y)
    ref_loss, g = _numpy_tiny(net, x, y)
    assert abs(loss - ref_loss) < 1e-5
    assert_close(net.params["ip1"][0].diff, g["w1"], 1e-4, 1e-6)
    assert_close(net.params["ip1"][1].diff, g["b1"], 1e-4, 1e-6)
    assert_close(net.params["ip2"][0].diff, g["w2"], 1e-4, 1e-6)
    assert_close(net.params["ip2"][1].diff, g["b2"], 1e-4, 1e-6)
    # data needs no backward without force_backward
    assert not net.layer_need_backward("data")
    assert not net.blobs["data"].diff.any()
    # parameter diffs accumulate until cleared (iter_size)
    net.forward_backward(data=x, label=y)
    assert_close(net.params["ip2"][0].diff, 2 * g["w2"], 1e-4, 1e-6)
    net.clear_param_diffs()
    assert not net.params["ip2"][0].diff.any()


def test_loss_weight_scales_loss_and_gradients():
    net = Net(TINY.replace('top: "loss" }', 'top: "loss" loss_weight: 2.5 }'), phase="TRAIN", seed=1)
    x, y = _batch()
    loss = net.forward_backward(data=x, label=y)
    ref_loss, g = _numpy_tiny(net, x, y, loss_weight=2.5)
    assert abs(loss - ref_loss) < 1e-5
    assert_close(net.params["ip1"][0].diff, g["w1"], 1e-4, 1e-6)


def test_force_backward_reaches_data_but_not_label():
    net = Net(TINY.replace('name: "tiny"', 'name: "tiny" force_backward: true'), phase="TRAIN", seed=1)
    x, y = _batch()
    net.forward_backward(data=x, label=y)
    _, g = _numpy_tiny(net, x, y)
    assert_close(net.blobs["data"].diff, g["x"], 1e-4, 1e-6)
    diffs = net.backward()
    assert set(diffs) == {"data", "label"} and not diffs["label"].any()


def test_batch_size_change_reshapes_the_net():
    net = Net(TINY, seed=1)
    for n in (7, 2, 4):
        x, y = _batch(n)
        out = net.forward(data=x, label=y)
        assert net.blobs["ip2"].shape == (n, 3)
        ref_loss, _ = _numpy_tiny(net, x, y)
        assert abs(float(out["loss"]) - ref_loss) < 1e-5


def test_forward_start_end_and_extra_blobs():
    net = Net(TINY, seed=1)
    x, y = _batch()
    out = net.forward(end="ip1", data=x, label=y)
    assert set(out) == {"ip1"}
    # the in-place ReLU after ip1 has not run: ip1 holds the pre-activation (as pycaffe)
    assert_close(out["ip1"], x @ net.params["ip1"][0].data.T + net.params["ip1"][1].data, 1e-5, 1e-6)
    pre = net.forward(end="ip1", data=x, label=y)["ip1"]
    out2 = net.forward(start="ip2", blobs=["ip2"])
    assert set(out2) == {"loss", "ip2"}
    assert_close(out2["ip2"], pre @ net.params["ip2"][0].data.T + net.params["ip2"][1].data, 1e-5, 1e-6)


SHARED = """
name: "shared" force_backward: true
layer { name: "data" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ipa" type: "InnerProduct" bottom: "a" top: "ya"
  param { name: "w" } param { name: "bias" lr_mult: 2 }
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "ipb" type: "InnerProduct" bottom: "b" top: "yb"
  param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ya" bottom: "yb" top: "loss" }
"""


def test_shared_params_share_data_and_accumulate_diffs():
    net = Net(SHARED, phase="TRAIN", seed=2)
    wa, ba = net.params["ipa"]
    wb, bb = net.params["ipb"]
    assert wa.shares_data_with(wb) and ba.shares_data_with(bb)
    assert len(net.learnable_params) == 2
    assert [p.lr_mult for p in net.learnable_params] == [1.0, 2.0]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    loss = net.forward_backward(a=a, b=b)
    w = wa.data.astype(np.float64)
    d = (a - b) @ w.T                      # ya - yb (biases cancel)
    assert abs(loss - (d ** 2).sum() / 4) < 1e-5
    # dL/dw = d^T a / 2 - d^T b / 2: the owner's diff holds both layers' contributions
    assert_close(wa.diff, d.T @ a / 2 - d.T @ b / 2, 1e-4, 1e-6)
    assert_close(ba.diff, np.zeros(4), 0, 1e-6)
    assert_close(net.blobs["a"].diff, d @ w / 2, 1e-4, 1e-6)


def test_gradient_of_whole_net_by_finite_differences():
    """Central differences on the whole shared-parameter net in float64."""
    net = Net(SHARED, phase="TRAIN", seed=3, dtype=np.float64)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    net.forward_backward(a=a, b=b)
    w = net.params["ipa"][0]
    grad = np.array(w.diff)
    base = np.array(w.data)
    for idx in np.ndindex(*base.shape):
        for sgn, store in ((1, "p"), (-1, "m")):
            v = base.copy()
            v[idx] += sgn * 1e-4
            w.data = v
            if store == "p":
                fp = net.forward_loss(a=a, b=b)
            else:
                fm = net.forward_loss(a=a, b=b)
        w.data = base
        assert abs((fp - fm) / 2e-4 - grad[idx]) < 1e-6 * max(1, abs(grad[idx]))


def test_propagate_down_and_backward_rules():
    proto = """
    name: "pd"
    layer { name: "data" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "frozen" type: "InnerProduct" bottom: "x" top: "h"
      param { lr_mult: 0 } param { lr_mult: 0 }
      inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "ip" type: "InnerProduct" bottom: "h" top: "y" propagate_down: false
      inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "side" type: "ReLU" bottom: "h" top: "unused" }
    layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
    """
    net = Net(proto, phase="TRAIN", seed=0)
    assert not net.layer_need_backward("frozen")     # lr_mult 0 and nothing below needs it
    assert net.layer_need_backward("ip")             # its params learn
    assert not net.layer_need_backward("side")       # does not contribute to a loss
    rng = np.random.default_rng(0)
    net.forward_backward(x=rng.standard_normal((2, 3)), t=rng.standard_normal((2, 3)))
    assert net.params["ip"][0].diff.any()
    assert not net.blobs["h"].diff.any()             # propagate_down: false
    assert not net.params["frozen"][0].diff.any()


def test_in_place_chain_backward():
    proto = """
    name: "inplace" force_backward: true
    layer { name: "data" type: "Input" top: "x" top: "t" input_param { shape { dim: 3 dim: 4 } } }
    layer { name: "scale" type: "Scale" bottom: "x" top: "s"
            scale_param { filler { type: "constant" value: 2 } } }
    layer { name: "relu" type: "ReLU" bottom: "s" top: "s" }
    layer { name: "tanh" type: "TanH" bottom: "s" top: "s" }
    layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }
    """
    net = Net(proto, phase="TRAIN", seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = net.forward_backward(x=x, t=t)
    y = np.tanh(np.maximum(2 * x, 0))
    assert abs(loss - ((y - t) ** 2).sum() / 6) < 1e-12
    dx = (y - t) / 3 * (1 - y ** 2) * (x > 0) * 2
    assert_close(net.blobs["x"].diff, dx, 1e-10, 1e-12)
    assert_close(net.params["scale"][0].diff, ((y - t) / 3 * (1 - y ** 2) * (x > 0) * x).sum(0), 1e-10, 1e-12)


def test_save_copy_from_and_share_weights(tmp_path):
    a = Net(TINY, phase="TRAIN", seed=1)
    path = tmp_path / "tiny.caffemodel"
    a.save(path)
    assert path.exists() and not (tmp_path / "tiny.caffemodel.tmp").exists()
    b = Net(TINY, seed=99, weights=str(path))
    for name in ("ip1", "ip2"):
        for pa, pb_ in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(pa.data, pb_.data)
    c = Net(TINY, seed=5)
    c.share_weights(a)
    assert c.params["ip1"][0].shares_data_with(a.params["ip1"][0])
    a.params["ip1"][0].data[...] = 0.25
    assert (c.params["ip1"][0].data == 0.25).all()
    # a shape mismatch names the layer and both shapes
    bad = Net(TINY.replace("num_output: 6", "num_output: 7"), seed=0)
    with pytest.raises(WeightsError, match=r"ip1.*shape mismatch"):
        bad.copy_from(str(path))


def test_errors_name_the_culprit():
    with pytest.raises(NetDefinitionError, match=r"layer 'odd'.*unknown layer type 'NoSuchLayer'.*ReLU"):
        Net(TINY + 'layer { name: "odd" type: "NoSuchLayer" bottom: "ip2" top: "z" }')
    net = Net(TINY)
    with pytest.raises(ShapeError, match=r"'data'.*\(4, 6\)"):
        net.forward(data=np.zeros((4, 6), np.float32), label=np.zeros(4, np.float32))
    with pytest.raises(ShapeError, match="no blob 'nope'"):
        net.forward(nope=np.zeros(3))
    with pytest.raises(NetDefinitionError, match="no layer 'zzz'"):
        net.forward(end="zzz")
    x, _ = _batch()
    with pytest.raises(NetDefinitionError, match="label 9"):
        net.forward(data=x, label=np.full(4, 9, np.float32))


def test_registry_rejects_duplicates():
    from runner.layers.base import Layer
    from runner.registry import known_types, register
    assert {"Convolution", "ReLU", "SoftmaxWithLoss", "Split"} <= set(known_types())
    with pytest.raises(ValueError, match="registered twice"):
        @register("ReLU")
        class Again(Layer):
            pass


def test_batch_norm_statistics_are_never_learned():
    proto = """
    name: "bn"
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
    layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
    """
    net = Net(proto, phase="TRAIN")
    assert [p.lr_mult for p in net.learnable_params] == [0.0, 0.0, 0.0, 1.0, 1.0]
    bad = proto.replace('bottom: "x" top: "x" }\n    layer { name: "sc"',
                        'bottom: "x" top: "x" param { lr_mult: 1 } }\n    layer { name: "sc"')
    with pytest.raises(NetDefinitionError, match="batch normalization statistics"):
        Net(bad, phase="TRAIN")


def test_split_and_flatten_survive_batch_growth():
    """Split tops share the bottom's data but own their diffs: both must grow with the batch."""
    proto = """
    name: "grow" force_backward: true
    layer { name: "data" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "flat" type: "Flatten" bottom: "x" top: "f" }
    layer { name: "a" type: "TanH" bottom: "f" top: "a" }
    layer { name: "b" type: "Sigmoid" bottom: "f" top: "b" }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
    layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }
    """
    net = Net(proto, phase="TRAIN", dtype=np.float64)
    rng = np.random.default_rng(0)
    for n in (2, 5, 3):
        x, t = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
        loss = net.forward_backward(x=x, t=t)
        s = np.tanh(x) + 1 / (1 + np.exp(-x))
        assert abs(loss - ((s - t) ** 2).sum() / (2 * n)) < 1e-12
        sig = 1 / (1 + np.exp(-x))
        dx = (s - t) / n * ((1 - np.tanh(x) ** 2) + sig * (1 - sig))
        assert_close(net.blobs["x"].diff, dx, 1e-10, 1e-12)
