"""Fixtures for the pycaffe tests (tests/pycaffe/): the tests import ``caffe`` and, as oracles,
numpy, OpenCV, h5py and lmdb, nothing else of nbcaffe; fixtures may use runner to prepare data
(the MNIST LMDBs are built by the function ``nbcaffe data mnist`` uses).

Nets made by a test run on the mode the test sets; every test ends in cpu mode, unseeded.
``GPU_HEAVY`` lists the modes for tests on LeNet-sized nets: cpu, plus gpu on a real GPU (in the
simulator only the tiny-net tests run with ``set_mode_gpu()``).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

N_DIGITS = 200          # MNIST test digits classified (written out as PNG files)
GPU_HEAVY = ["cpu", "gpu"] if os.environ.get("NBCAFFE_DEVICE") == "gpu" else ["cpu"]
LENET_WEIGHTS = "ethereon_lenet_iter_10000.caffemodel"   # Caffe-trained, current format, 99.14%


@pytest.fixture(autouse=True)
def _cpu_mode_after():
    yield
    import caffe
    import caffe._mode
    caffe.set_mode_cpu()
    caffe._mode._seeds = None


def _idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


@pytest.fixture(scope="session")
def mnist_dir(shared_dir: Path) -> Path:
    d = shared_dir / "data" / "mnist"
    if not (d / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{d} has no MNIST files")
    return d


@pytest.fixture(scope="session")
def mnist_test_arrays(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first N_DIGITS MNIST test images (uint8 N x 28 x 28) and labels."""
    images = _idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:N_DIGITS]
    labels = _idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", 8)[:N_DIGITS]
    return images, labels


@pytest.fixture(scope="session")
def mnist_pngs(mnist_test_arrays, tmp_path_factory) -> list[tuple[str, int]]:
    """The digits as gray PNG files (written by OpenCV), with their labels."""
    import cv2
    images, labels = mnist_test_arrays
    d = tmp_path_factory.mktemp("mnist_png")
    out = []
    for i, (im, label) in enumerate(zip(images, labels)):
        path = str(d / f"{i:05d}_{label}.png")
        assert cv2.imwrite(path, im)
        out.append((path, int(label)))
    return out


@pytest.fixture(scope="session")
def lenet(shared_dir: Path, caffe_models: Path) -> tuple[str, str]:
    """(lenet_deploy.prototxt, Caffe-trained LeNet weights)."""
    weights = shared_dir / "data" / "lenet-caffe" / LENET_WEIGHTS
    if not weights.is_file():
        pytest.skip(f"{weights} not present")
    return str(caffe_models / "lenet_deploy.prototxt"), str(weights)


@pytest.fixture(scope="session")
def mnist_lmdbs(mnist_dir: Path, tmp_path_factory) -> tuple[str, str]:
    """(train LMDB of the first 3,200 training digits, test LMDB of the first 500 test digits),
    built as ``nbcaffe data mnist`` builds them."""
    from runner.data.mnist import convert_mnist
    d = tmp_path_factory.mktemp("mnist_lmdb")
    convert_mnist(mnist_dir / "train-images-idx3-ubyte.gz", mnist_dir / "train-labels-idx1-ubyte.gz",
                  d / "mnist_train_lmdb", limit=3200)
    convert_mnist(mnist_dir / "t10k-images-idx3-ubyte.gz", mnist_dir / "t10k-labels-idx1-ubyte.gz",
                  d / "mnist_test_lmdb", limit=500)
    return str(d / "mnist_train_lmdb"), str(d / "mnist_test_lmdb")
