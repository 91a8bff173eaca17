"""Caffe's classification example, with LeNet: real MNIST test digits written out as PNG files,
read back with caffe.io.load_image, preprocessed by caffe.io.Transformer (or caffe.Classifier)
and classified by the Caffe-trained weights. Oracle: the MNIST labels (the weights score 99.14%
on the whole test set by an independent numpy forward, ../shared/data/SOURCES.md)."""
from __future__ import annotations

import numpy as np
import pytest

import caffe
from tests.pycaffe.conftest import GPU_HEAVY

SCALE = 0.00390625    # LeNet's training input scale (1/256): images in [0, 1] * 255 * SCALE


def _mode(mode: str) -> None:
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()


@pytest.mark.parametrize("mode", GPU_HEAVY)
def test_transformer_flow_classifies_real_digits(mode, lenet, mnist_pngs):
    _mode(mode)
    deploy, weights = lenet
    net = caffe.Net(deploy, caffe.TEST, weights=weights)
    assert net.blobs["data"].data.shape == (64, 1, 28, 28)
    t = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    t.set_transpose("data", (2, 0, 1))
    t.set_raw_scale("data", 255)
    t.set_input_scale("data", SCALE)
    net.blobs["data"].reshape(50, 1, 28, 28)
    correct = 0
    for start in range(0, len(mnist_pngs), 50):
        batch = mnist_pngs[start:start + 50]
        for i, (path, _) in enumerate(batch):
            net.blobs["data"].data[i] = t.preprocess("data", caffe.io.load_image(path, color=False))
        out = net.forward()
        assert out["prob"].shape == (50, 10)
        np.testing.assert_allclose(out["prob"].sum(1), 1, rtol=1e-5)
        correct += int((out["prob"].argmax(1) == [label for _, label in batch]).sum())
    assert correct / len(mnist_pngs) >= 0.99


@pytest.mark.parametrize("mode", GPU_HEAVY)
def test_classifier_predicts_real_digits(mode, lenet, mnist_pngs):
    _mode(mode)
    deploy, weights = lenet
    clf = caffe.Classifier(deploy, weights, image_dims=(28, 28), raw_scale=255, input_scale=SCALE)
    assert isinstance(clf, caffe.Net)
    images = [caffe.io.load_image(p, color=False) for p, _ in mnist_pngs]
    labels = np.array([label for _, label in mnist_pngs])
    scores = clf.predict(images, oversample=False)     # 200 images: 4 batches, the last padded
    assert scores.shape == (len(images), 10)
    assert (scores.argmax(1) == labels).mean() >= 0.99
    # oversample on 28 x 28 crops of 28 x 28 images: the 5 crops are the image, the 5 mirrored
    # ones its mirror image, so the prediction is the mean of the two, computed here by forward
    few = images[:8]
    both = clf.predict(few)
    x = np.stack([im.transpose(2, 0, 1) * 255 * SCALE for im in few]).astype(np.float32)
    plain = clf.forward_all(data=x)["prob"]
    mirrored = clf.forward_all(data=x[:, :, :, ::-1].copy())["prob"]
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-4, atol=1e-6)
