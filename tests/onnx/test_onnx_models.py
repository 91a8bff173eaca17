"""Caffe's reference nets exported to ONNX and run by ONNX Runtime, against nbcaffe's forward.

- every deploy net in ../shared/caffe-models with random weights: every blob the model holds
  (outputs and intermediate blobs) within 1e-5 of nbcaffe's, at batch 1 and 7 through the same
  dynamic-batch model;
- the TEST phase of train/test nets (data layers become inputs, loss and metric layers dropped),
  BatchNorm and shared weights included;
- LeNet with the Caffe-trained weights (../shared/data/lenet-caffe) on the first 1,000 real MNIST
  test images: the same probabilities (1e-5) and the same predictions, so the same accuracy.
"""
from __future__ import annotations

import gzip

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

from runner import Net  # noqa: E402
from runner.commands.export_onnx import export_net_for  # noqa: E402
from tests.onnx.oracle import compare_net, randomize, rel_err, run  # noqa: E402

DEPLOY = ["lenet", "cifar10_quick", "cifar10_full", "mnist_siamese", "bvlc_alexnet",
          "bvlc_reference_caffenet", "bvlc_googlenet"]
BIG = {"bvlc_alexnet", "bvlc_reference_caffenet", "bvlc_googlenet"}
SLOW = {"bvlc_alexnet", "bvlc_reference_caffenet"}   # 60M parameters: ~9 s each on 2 idle cores


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in DEPLOY])
def test_deploy_net_matches_nbcaffe(name, caffe_models, tmp_path):
    proto = caffe_models / f"{name}_deploy.prototxt"
    probe = Net(str(proto))
    in_name = probe.inputs[0]
    shape = (1,) + probe.blobs[in_name].shape[1:]
    del probe
    net = Net(str(proto), input_shapes={in_name: shape})
    randomize(net, np.random.default_rng(1))
    model = compare_net(net, tmp_path, all_blobs=name not in BIG)
    # the model keeps Caffe's interface: the input and output blob names, a symbolic batch axis
    assert [i.name for i in model.graph.input] == [in_name]
    assert [o.name for o in model.graph.output] == net.outputs
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.opset_import[0].version == 19


TEST_PHASE = {  # prototxt: (stages, input shapes, outputs the export must have)
    "lenet_train_test": ((), ["data=2,1,28,28", "label=2"], ["ip2"]),
    "cifar10_full_sigmoid_train_test_bn": ((), ["data=2,3,32,32", "label=2"], ["ip1"]),
    "mnist_siamese_train_test": ((), ["pair_data=2,2,28,28", "sim=2"], ["feat", "feat_p"]),
    "mnist_autoencoder": (("test-on-test",), ["data=2,1,28,28"], ["flatdata", "decode1neuron"]),
}


@pytest.mark.parametrize("name", list(TEST_PHASE))
def test_test_phase_net_matches_nbcaffe(name, caffe_models, tmp_path):
    stages, shapes, outputs = TEST_PHASE[name]
    net = export_net_for(str(caffe_models / f"{name}.prototxt"), "TEST", stages, 0, shapes)
    randomize(net, np.random.default_rng(2))
    model = compare_net(net, tmp_path)
    assert set(outputs) <= {o.name for o in model.graph.output}
    dropped = dict(p.key and (p.key, p.value) for p in model.metadata_props)
    assert dropped.get("caffe_dropped_layers")
    # the labels are read only by dropped layers: not an input of the model
    assert all(i.name != "label" for i in model.graph.input)
    if name == "mnist_siamese_train_test":
        # a blob shared by param { name: ... } (the two towers) is one initializer
        params = [i for i in model.graph.initializer if i.name.endswith((".weight", ".bias"))]
        assert len(params) == len(net.learnable_params) == 10


def _idx(path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def test_caffe_trained_lenet_on_mnist(shared_dir, caffe_models, tmp_path):
    weights = shared_dir / "data" / "lenet-caffe" / "ethereon_lenet_iter_10000.caffemodel"
    mnist = shared_dir / "data" / "mnist"
    if not weights.exists() or not (mnist / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Caffe-trained LeNet or the MNIST test set not present")
    n = 1000
    images = (_idx(mnist / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:n]
              .astype(np.float32) * np.float32(0.00390625))
    labels = _idx(mnist / "t10k-labels-idx1-ubyte.gz", 8)[:n]
    net = Net(str(caffe_models / "lenet_deploy.prototxt"), weights=str(weights))
    path = tmp_path / "lenet.onnx"
    net.to_onnx(path)
    model = onnx.load(str(path))
    ours = net.forward(data=images)["prob"]
    theirs = np.concatenate([run(model, {"data": images[i:i + 7]})["prob"] for i in range(0, n, 7)])
    single = np.concatenate([run(model, {"data": images[i:i + 1]})["prob"] for i in range(5)])
    assert rel_err(theirs, ours) <= 1e-5
    assert rel_err(single, ours[:5]) <= 1e-5
    pred_onnx, pred_ours = theirs.argmax(axis=1), ours.argmax(axis=1)
    assert (pred_onnx == pred_ours).all()
    acc = float((pred_onnx == labels).mean())
    assert acc == float((pred_ours == labels).mean()) and acc >= 0.98
