"""Caffe-trained LeNet weights (../shared/data/lenet-caffe: one V2 file, two legacy V1 files)
classify the real MNIST test set through the Net API on cpu, with lenet_deploy.prototxt and
Caffe's input scale 0.00390625. The expected accuracies are those SOURCES.md reports from an
independent numpy forward pass (99.14%, 99.05%, 98.93%)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from runner import Net

MODELS = [("ethereon_lenet_iter_10000.caffemodel", 0.9914, 0.990),
          ("everpeace_lenet_iter_10000.caffemodel", 0.9905, 0.990),
          ("everpeace_lenet_iter_5000.caffemodel", 0.9893, 0.989)]


def _idx(path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


@pytest.fixture(scope="module")
def mnist_test(shared_dir):
    d = shared_dir / "data" / "mnist"
    if not (d / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{d} has no MNIST test set")
    images = _idx(d / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = _idx(d / "t10k-labels-idx1-ubyte.gz", 8)
    return images.astype(np.float32) * np.float32(0.00390625), labels


@pytest.mark.slow
@pytest.mark.parametrize("fname,documented,minimum", MODELS)
def test_caffe_trained_lenet_accuracy(fname, documented, minimum, mnist_test, shared_dir, caffe_models):
    weights = shared_dir / "data" / "lenet-caffe" / fname
    if not weights.exists():
        pytest.skip(f"{weights} not present")
    images, labels = mnist_test
    net = Net(str(caffe_models / "lenet_deploy.prototxt"), weights=str(weights))
    correct = 0
    for i in range(0, len(images), 1000):
        prob = net.forward(data=images[i:i + 1000])["prob"]
        correct += int((prob.argmax(axis=1) == labels[i:i + 1000]).sum())
    acc = correct / len(images)
    assert acc >= minimum
    assert abs(acc - documented) <= 0.0005, f"{fname}: {acc:.4f}, SOURCES.md says {documented:.4f}"
