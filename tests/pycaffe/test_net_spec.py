"""caffe.NetSpec: LeNet written in Python is a prototxt that caffe.Net, nbcaffe and OpenCV's Caffe
importer (the independent oracle) all load, and with the Caffe-trained weights OpenCV and
caffe.Net compute the same class probabilities for real digits. Plus pycaffe's net_spec rules
(ntop, in_place, loss_weight, repeated params as lists of dicts, include, enum names, auto
names)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from google.protobuf import text_format

import caffe
from caffe import layers as L
from caffe import params as P
from caffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]


def lenet_deploy(batch: int) -> caffe_pb2.NetParameter:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 1, 28, 28]))
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.prob = L.Softmax(n.ip2)
    return n.to_proto()


def test_netspec_lenet_loads_everywhere_and_matches_opencv(tmp_path, lenet, mnist_test_arrays):
    proto = lenet_deploy(16)
    text = str(proto)
    path = tmp_path / "lenet_netspec.prototxt"
    path.write_text(text)
    parsed = text_format.Parse(text, caffe_pb2.NetParameter())
    names = [lp.name for lp in parsed.layer]
    assert names == ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "prob"]
    relu = parsed.layer[6]
    assert list(relu.bottom) == list(relu.top) == ["ip1"]                 # in_place
    assert parsed.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert "pool: MAX" in text and [p.lr_mult for p in parsed.layer[1].param] == [1, 2]
    assert parsed.layer[1].convolution_param.kernel_size == [5]          # repeated, wrapped

    _, weights = lenet
    net = caffe.Net(str(path), caffe.TEST, weights=weights)
    images, _ = mnist_test_arrays
    x = images[:16, None].astype(np.float32) * np.float32(0.00390625)
    prob = net.forward(data=x)["prob"]
    ocv = cv2.dnn.readNetFromCaffe(str(path), weights)
    ocv.setInput(x)
    np.testing.assert_allclose(prob, ocv.forward().reshape(prob.shape), rtol=1e-4, atol=1e-5)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "runner", "inspect", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "431080" in done.stdout.replace(",", "")                     # LeNet's parameter count


def test_netspec_rules():
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="train_lmdb",
                             transform_param=dict(scale=1. / 255), ntop=2,
                             include=dict(phase=caffe.TRAIN))
    n.ip = L.InnerProduct(n.data, num_output=3, param=[dict(lr_mult=1, decay_mult=1),
                                                       dict(lr_mult=2, decay_mult=0)])
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=0.5, propagate_down=[True, False])
    n.silence = L.Silence(n.label, ntop=0)
    unnamed = L.ReLU(L.TanH(n.ip))
    n.act = unnamed
    net = n.to_proto()
    data, ip, loss, silence, tanh, act = net.layer
    assert data.name == "data" and list(data.top) == ["data", "label"]
    assert data.data_param.batch_size == 64 and data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.data_param.source == "train_lmdb"
    assert abs(data.transform_param.scale - 1 / 255) < 1e-9
    assert [r.phase for r in data.include] == [caffe.TRAIN]
    assert [(p.lr_mult, p.decay_mult) for p in ip.param] == [(1, 1), (2, 0)]
    assert list(loss.loss_weight) == [0.5] and list(loss.propagate_down) == [True, False]
    assert list(loss.bottom) == ["ip", "label"]
    assert silence.name == "silence" and not len(silence.top) and list(silence.bottom) == ["label"]
    assert tanh.name == "TanH1" and list(tanh.top) == ["TanH1"] and act.bottom[0] == "TanH1"
    assert act.name == "act" and list(act.top) == ["act"]
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    # a top's own to_proto holds just what it needs, with generated names
    only = caffe.to_proto(L.ReLU(L.Input(shape=dict(dim=[1, 2]))))
    assert [lp.name for lp in only.layer] == ["Input1", "ReLU1"]
    assert n["ip"] is n.ip
