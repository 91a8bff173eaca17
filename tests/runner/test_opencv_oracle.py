"""OpenCV's Caffe importer as an independent forward oracle.

For each deploy net in ../shared/caffe-models: random weights (N(0, 1/fan_in), biases N(0, 0.1))
are written by ``Net.save``; ``cv2.dnn.readNetFromCaffe`` loads the prototxt and that caffemodel;
both run the same batch and every blob OpenCV exposes (each non-Split layer's output, taken from
the last layer writing the blob) must agree to 1e-4 relative to the blob's largest magnitude.
All deploy nets here use LRN's default k = 1 (OpenCV ignores k); k != 1 is checked against the
formula in tests/layers/test_lrn_layer.py.
"""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from runner import Net  # noqa: E402

NETS = {  # name: batch
    "lenet": 2, "cifar10_quick": 2, "cifar10_full": 2, "mnist_siamese": 2,
    "bvlc_alexnet": 1, "bvlc_reference_caffenet": 1, "bvlc_googlenet": 1,
}


def _randomize(net: Net, rng: np.random.Generator) -> None:
    for layer in net.layers:
        for j, blob in enumerate(layer.blobs):
            if layer.type == "BatchNorm":
                continue
            if j == 0 and len(blob.shape) > 1:
                fan_in = blob.count // blob.shape[0]
                blob.data = rng.standard_normal(blob.shape) * np.sqrt(1.0 / fan_in)
            else:
                blob.data = rng.standard_normal(blob.shape) * 0.1


@pytest.mark.parametrize("name", list(NETS))
def test_forward_matches_opencv(name, caffe_models, tmp_path):
    proto = caffe_models / f"{name}_deploy.prototxt"
    batch = NETS[name]
    probe = Net(str(proto))
    in_name = probe.inputs[0]
    shape = (batch,) + probe.blobs[in_name].shape[1:]
    del probe
    net = Net(str(proto), input_shapes={in_name: shape}, seed=0)
    rng = np.random.default_rng(1)
    _randomize(net, rng)
    weights = tmp_path / f"{name}.caffemodel"
    net.save(weights)

    x = rng.standard_normal(shape).astype(np.float32)
    ours = net.forward(**{in_name: x})

    cv_net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    cv_net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cv_net.enableFusion(False)
    cv_net.setInput(x, in_name)
    # the last layer writing each blob (in-place layers overwrite their bottom)
    writer: dict[str, str] = {}
    for layer in net.layers:
        if layer.type in ("Split", "Input"):
            continue
        for t in net.top_names[layer.name]:
            writer[t] = layer.name
    cv_names = set(cv_net.getLayerNames())
    blobs = [b for b, layer in writer.items() if layer in cv_names]
    assert net.outputs[0] in blobs
    cv_outs = cv_net.forward([writer[b] for b in blobs])
    checked = 0
    for b, cv_out in zip(blobs, cv_outs):
        mine = net.blobs[b].host_data()
        theirs = np.asarray(cv_out).reshape(mine.shape)
        scale = max(float(np.abs(theirs).max()), 1e-6)
        err = float(np.abs(mine - theirs).max()) / scale
        assert err <= 1e-4, (f"{name}: blob {b!r} (layer {writer[b]!r}) differs from OpenCV: "
                             f"max |diff| / max = {err:.3g}")
        checked += 1
    assert checked >= 3
    print(f"{name}: {checked} blobs match OpenCV")
    np.testing.assert_allclose(ours[net.outputs[0]], net.blobs[net.outputs[0]].host_data())
