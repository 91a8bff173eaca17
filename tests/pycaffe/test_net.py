"""caffe.Net's pycaffe surface on a tiny two-layer perceptron, on cpu and (simulator) gpu:
both constructors, the structure accessors, Blob's accessors and reshape(*dims), forward and
backward with blobs/diffs/start/end, forward_all / forward_backward_all with padding,
set_input_arrays, weights in binary and HDF5, share_with, set_random_seed. Oracle: numpy's
recomputation of relu(x W1' + b1) W2' + b2 and its gradients; h5py for the HDF5 layout."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import caffe

TINY = """name: "tiny"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" include { stage: "hidden" }
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" include { stage: "hidden" } }
layer { name: "out" type: "InnerProduct" bottom: "ip1" top: "out" include { stage: "hidden" }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "lin" type: "InnerProduct" bottom: "data" top: "out" exclude { stage: "hidden" }
        inner_product_param { num_output: 2 } }
"""
MODES = ["cpu", "gpu"]


@pytest.fixture
def tiny(tmp_path) -> str:
    path = tmp_path / "tiny.prototxt"
    path.write_text(TINY)
    return str(path)


def _set(mode: str) -> None:
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()


def _numpy(net, x):
    w1, b1 = (b.data.astype(np.float64) for b in net.params["ip1"])
    w2, b2 = (b.data.astype(np.float64) for b in net.params["out"])
    h = np.maximum(x @ w1.T + b1, 0)
    return h, h @ w2.T + b2, w1, w2


@pytest.mark.parametrize("mode", MODES)
def test_structure_forward_backward(mode, tiny):
    _set(mode)
    net = caffe.Net(tiny, caffe.TEST, stages=["hidden"])
    assert net._layer_names == ["data", "ip1", "relu", "out"] and list(net.layer_dict) == net._layer_names
    assert [lr.type for lr in net.layers] == ["Input", "InnerProduct", "ReLU", "InnerProduct"]
    assert net.inputs == ["data"] and net.outputs == ["out"] and net._inputs == [0] and net._outputs == [2]
    assert net._blob_names == ["data", "ip1", "out"] and list(net.blobs) == net._blob_names
    assert net.top_names["relu"] == ["ip1"] and net.bottom_names["out"] == ["ip1"]
    assert list(net.params) == ["ip1", "out"] and net.params["ip1"][0].data.shape == (4, 3)
    assert net.blob_loss_weights == {"data": 0.0, "ip1": 0.0, "out": 0.0}
    data = net.blobs["data"]
    assert (data.num, data.channels, data.height, data.width, data.count) == (2, 3, 1, 1, 6)
    # reshape(*dims) + net.reshape(), as scripts resize the input before a forward
    data.reshape(5, 3)
    net.reshape()
    assert net.blobs["out"].shape == (5, 2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    data.data[...] = x
    out = net.forward(blobs=["ip1"])
    h, y, w1, w2 = _numpy(net, x)
    assert set(out) == {"out", "ip1"}
    np.testing.assert_allclose(out["out"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["ip1"], h, rtol=1e-5, atol=1e-5)
    # end=: the tops of that layer; start=: from there on, on the blobs as they are
    assert set(net.forward(end="ip1")) == {"ip1"}
    net.blobs["ip1"].data[...] = 0
    np.testing.assert_allclose(net.forward(start="out")["out"],
                               np.broadcast_to(net.params["out"][1].data, (5, 2)), rtol=1e-6)
    net.forward(data=x)
    g = rng.standard_normal((5, 2)).astype(np.float32)
    diffs = net.backward(out=g, diffs=["ip1"])
    dh = (g @ w2) * (h > 0)
    assert set(diffs) == {"data", "ip1"}
    np.testing.assert_allclose(diffs["data"], dh @ w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.params["out"][0].diff, g.T @ h, rtol=1e-4, atol=1e-5)
    assert set(net.backward(out=g, end="out")) == {"ip1"}
    with pytest.raises(ValueError, match="outputs"):
        net.backward(ip1=np.zeros((5, 4)))


@pytest.mark.parametrize("mode", MODES)
def test_forward_all_and_forward_backward_all_pad_the_last_batch(mode, tiny):
    _set(mode)
    net = caffe.Net(tiny, caffe.TEST, stages=["hidden"])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)     # batch 2: 2 + 2 + 1 padded
    out = net.forward_all(data=x, blobs=["ip1"])
    h, y, w1, w2 = _numpy(net, x)
    assert out["out"].shape == (5, 2) and out["ip1"].shape == (5, 4)
    np.testing.assert_allclose(out["out"], y, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((5, 2)).astype(np.float32)
    blobs, diffs = net.forward_backward_all(data=x, out=g)
    np.testing.assert_allclose(blobs["out"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(diffs["data"], ((g @ w2) * (h > 0)) @ w1, rtol=1e-4, atol=1e-5)
    assert net.blobs["data"].num == 2


def test_constructors_stages_and_weights(tiny, tmp_path):
    caffe.set_random_seed(11)
    a = caffe.Net(tiny, caffe.TEST, stages=["hidden"])
    a.params["ip1"][0].data[...] = np.arange(12).reshape(4, 3)
    a.save(str(tmp_path / "w.caffemodel"))
    for b in (caffe.Net(tiny, str(tmp_path / "w.caffemodel"), caffe.TEST),          # legacy form
              caffe.Net(tiny, caffe.TEST, weights=str(tmp_path / "w.caffemodel")),
              caffe.Net(tiny, phase=caffe.TEST, weights=str(tmp_path / "w.caffemodel"))):
        assert b._layer_names == ["data", "lin"]          # stage "hidden" not set: the other net
    b = caffe.Net(tiny, caffe.TEST, 0, ["hidden"], str(tmp_path / "w.caffemodel"))
    for name in ("ip1", "out"):
        for x, y in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(x.data, y.data)
    with pytest.raises(TypeError, match="phase"):
        caffe.Net(tiny)
    with pytest.raises(TypeError, match="multiple values"):
        caffe.Net(tiny, caffe.TEST, phase=caffe.TEST)
    # HDF5 weights: Caffe's layout (/data/<layer>/<i>), read back by load_hdf5 / copy_from
    a.save_hdf5(str(tmp_path / "w.h5"))
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert sorted(f["data"]) == ["data", "ip1", "out", "relu"]
        np.testing.assert_array_equal(f["data/ip1/0"][()], np.arange(12).reshape(4, 3))
        np.testing.assert_array_equal(f["data/out/1"][()], a.params["out"][1].data)
    c = caffe.Net(tiny, caffe.TEST, stages=["hidden"])
    c.load_hdf5(str(tmp_path / "w.h5"))
    np.testing.assert_array_equal(c.params["out"][0].data, a.params["out"][0].data)
    # share_with: the same buffers, no copy
    d = caffe.Net(tiny, caffe.TEST, stages=["hidden"])
    d.share_with(a)
    a.params["out"][0].data[...] = 7
    np.testing.assert_array_equal(d.params["out"][0].data, 7)


def test_set_random_seed_makes_nets_reproducible(tiny):
    def weights():
        return caffe.Net(tiny, caffe.TEST, stages=["hidden"]).params["ip1"][0].data.copy()
    caffe.set_random_seed(5)
    first, second = weights(), weights()
    caffe.set_random_seed(5)
    again = weights()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)         # the stream moves on, as Caffe's does
    caffe.set_random_seed(6)
    assert not np.array_equal(first, weights())


def test_set_input_arrays_feeds_a_memory_data_layer(tmp_path):
    path = tmp_path / "mem.prototxt"
    path.write_text('layer { name: "mem" type: "MemoryData" top: "data" top: "label" '
                    'memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }\n'
                    'layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }')
    net = caffe.Net(str(path), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    labels = np.array([3, 1, 4, 1], dtype=np.float32)
    net.set_input_arrays(data, labels)
    out = net.forward()
    np.testing.assert_array_equal(out["flat"], data[:2].reshape(2, 4))
    np.testing.assert_array_equal(out["label"], [3, 1])
    np.testing.assert_array_equal(net.forward()["label"], [4, 1])
    with pytest.raises(Exception, match="multiple of the batch size"):
        net.set_input_arrays(data[:3], labels[:3])


def test_set_device_checks_the_device():
    caffe.set_device(0)                      # the default device: always fine
    with pytest.raises(ValueError, match="does not exist"):
        caffe.set_device(64)
