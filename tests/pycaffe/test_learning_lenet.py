"""Caffe's "learning LeNet" notebook as a test: LeNet written with NetSpec over the MNIST LMDBs
(a 3,200-digit training subset, 500 test digits, built as ``nbcaffe data mnist`` builds them),
trained with caffe.get_solver for 200 steps while reading ``solver.net.blobs['loss'].data`` and
scoring ``solver.test_nets[0]`` by hand, as the notebook does. Oracle: the MNIST labels."""
from __future__ import annotations

import numpy as np
import pytest

import caffe
from caffe import layers as L
from caffe import params as P


def lenet(lmdb: str, batch_size: int):
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


SOLVER = """train_net: "lenet_auto_train.prototxt"
test_net: "lenet_auto_test.prototxt"
test_iter: 5
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: 10000
snapshot: 5000
snapshot_prefix: "lenet"
random_seed: 1
"""


@pytest.mark.slow
def test_learning_lenet_notebook(tmp_path, monkeypatch, mnist_lmdbs):
    train_lmdb, test_lmdb = mnist_lmdbs
    monkeypatch.chdir(tmp_path)
    with open("lenet_auto_train.prototxt", "w") as f:
        f.write(str(lenet(train_lmdb, 64)))
    with open("lenet_auto_test.prototxt", "w") as f:
        f.write(str(lenet(test_lmdb, 100)))
    with open("lenet_auto_solver.prototxt", "w") as f:
        f.write(SOLVER)

    caffe.set_mode_cpu()
    solver = caffe.get_solver("lenet_auto_solver.prototxt")
    assert isinstance(solver, caffe.SGDSolver)
    shapes = [(k, v.data.shape) for k, v in solver.net.blobs.items()]
    assert shapes[:3] == [("data", (64, 1, 28, 28)), ("label", (64,)), ("conv1", (64, 20, 24, 24))]
    assert [(k, v[0].data.shape) for k, v in solver.net.params.items()] == [
        ("conv1", (20, 1, 5, 5)), ("conv2", (50, 20, 5, 5)), ("fc1", (500, 800)), ("score", (10, 500))]
    solver.net.forward()
    solver.test_nets[0].forward()
    assert solver.test_nets[0].blobs["data"].data.shape == (100, 1, 28, 28)

    niter, test_interval = 200, 50
    train_loss = np.zeros(niter)
    test_acc = np.zeros(niter // test_interval)
    output = np.zeros((niter, 8, 10))
    for it in range(niter):
        solver.step(1)
        train_loss[it] = solver.net.blobs["loss"].data
        solver.test_nets[0].forward(start="conv1")
        output[it] = solver.test_nets[0].blobs["score"].data[:8]
        if (it + 1) % test_interval == 0:
            correct = 0
            for _ in range(5):
                solver.test_nets[0].forward()
                correct += int((solver.test_nets[0].blobs["score"].data.argmax(1)
                                == solver.test_nets[0].blobs["label"].data).sum())
            test_acc[it // test_interval] = correct / 500
    assert solver.iter == niter
    assert np.all(np.isfinite(train_loss)) and train_loss[:10].mean() > 1.5
    assert train_loss[-20:].mean() < 0.45, train_loss[-20:]
    assert test_acc[-1] >= 0.9 and test_acc[-1] >= test_acc[0], test_acc
    # the scores of the same 8 test digits sharpen as training goes on
    first, last = output[0], output[-1]
    assert np.abs(last).max() > np.abs(first).max()
