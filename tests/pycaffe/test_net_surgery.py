"""Caffe's net surgery example: designer filters (edit ``params[...].data[...]``, compare the
convolution with OpenCV's filter2D), and LeNet cast into a fully convolutional net (its inner
products' weights copied flat into convolutions, saved, reloaded) that classifies every 28 x 28
window of a larger canvas as the original classifier does. Oracles: OpenCV, MNIST labels."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import caffe
from caffe import layers as L
from caffe import params as P
from tests.pycaffe.conftest import GPU_HEAVY

SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)


def _conv_net(tmp_path, h: int, w: int) -> str:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, h, w]))
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=2, pad=1)
    path = tmp_path / "conv.prototxt"
    path.write_text(str(n.to_proto()))
    return str(path)


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_designer_filters_save_and_reload(mode, tmp_path):
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()
    rng = np.random.default_rng(0)
    img = rng.random((6, 7)).astype(np.float32)
    path = _conv_net(tmp_path, 6, 7)
    net = caffe.Net(path, caffe.TEST)
    assert net.params["conv"][0].data.shape == (2, 1, 3, 3)
    net.params["conv"][0].data[0, 0] = SOBEL
    net.params["conv"][0].data[1, 0] = SOBEL.T
    net.params["conv"][1].data[...] = [0.5, -1.0]
    net.blobs["data"].data[0, 0] = img
    out = net.forward()["conv"][0]
    for k, (f, b) in enumerate(((SOBEL, 0.5), (SOBEL.T, -1.0))):
        ref = cv2.filter2D(img, -1, f, borderType=cv2.BORDER_CONSTANT) + b  # correlation, zero pad
        np.testing.assert_allclose(out[k], ref, rtol=1e-5, atol=1e-5)
    net.save(str(tmp_path / "sobel.caffemodel"))
    again = caffe.Net(path, caffe.TEST, weights=str(tmp_path / "sobel.caffemodel"))
    np.testing.assert_array_equal(again.params["conv"][0].data, net.params["conv"][0].data)
    np.testing.assert_array_equal(again.params["conv"][1].data, [0.5, -1.0])


def _lenet_full_conv(h: int, w: int) -> str:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, h, w]))
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50)
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n["ip1-conv"] = L.Convolution(n.pool2, kernel_size=4, num_output=500)
    n.relu1 = L.ReLU(n["ip1-conv"], in_place=True)
    n["ip2-conv"] = L.Convolution(n.relu1, kernel_size=1, num_output=10)
    n.prob = L.Softmax(n["ip2-conv"])
    return str(n.to_proto())


@pytest.mark.parametrize("mode", GPU_HEAVY)
def test_lenet_cast_to_fully_convolutional(mode, tmp_path, lenet, mnist_test_arrays):
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()
    deploy, weights = lenet
    net = caffe.Net(deploy, caffe.TEST, weights=weights)
    fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in ("ip1", "ip2")}
    (tmp_path / "full_conv.prototxt").write_text(_lenet_full_conv(36, 40))
    full = caffe.Net(str(tmp_path / "full_conv.prototxt"), caffe.TEST, weights=weights)
    conv_params = {pr: (full.params[pr][0].data, full.params[pr][1].data)
                   for pr in ("ip1-conv", "ip2-conv")}
    assert conv_params["ip1-conv"][0].shape == (500, 50, 4, 4)
    for pr, pr_conv in zip(("ip1", "ip2"), ("ip1-conv", "ip2-conv")):
        conv_params[pr_conv][0].flat = fc_params[pr][0].flat
        conv_params[pr_conv][1][...] = fc_params[pr][1]
    full.save(str(tmp_path / "lenet_full_conv.caffemodel"))
    full = caffe.Net(str(tmp_path / "full_conv.prototxt"), caffe.TEST,
                     weights=str(tmp_path / "lenet_full_conv.caffemodel"))
    # four digits in a 36 x 40 canvas; window (i, j) of the 3 x 4 output map sees rows 4i..4i+27,
    # columns 4j..4j+27 of the input
    images, labels = mnist_test_arrays
    scale = np.float32(0.00390625)
    for k in range(4):
        i, j = k % 3, (k * 2 + 1) % 4
        canvas = np.zeros((36, 40), np.float32)
        canvas[4 * i:4 * i + 28, 4 * j:4 * j + 28] = images[k] * scale
        full.blobs["data"].data[0, 0] = canvas
        prob = full.forward()["prob"][0]
        assert prob.shape == (10, 3, 4)
        assert prob[:, i, j].argmax() == labels[k]
        crops = np.stack([canvas[4 * a:4 * a + 28, 4 * b:4 * b + 28][None]
                          for a in range(3) for b in range(4)])
        ref = net.forward_all(data=crops)["prob"].reshape(3, 4, 10).transpose(2, 0, 1)
        np.testing.assert_allclose(prob, ref, rtol=1e-4, atol=1e-6)
