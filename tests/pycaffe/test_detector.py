"""caffe.Detector.detect_windows on given windows: real MNIST digits pasted into an RGB canvas
(one of them at twice the size), a 3-channel LeNet (a fixed 1 x 1 convolution averaging the
channels in front of the Caffe-trained layers). Oracles: the MNIST labels, and LeNet run on crops
cut and resized by OpenCV."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import caffe
from caffe import layers as L
from caffe import params as P

SCALE = 0.00390625


def _rgb_lenet(path, batch: int) -> str:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 28, 28]))
    n.gray = L.Convolution(n.data, kernel_size=1, num_output=1, bias_term=False,
                           weight_filler=dict(type="constant", value=1.0 / 3))
    n.conv1 = L.Convolution(n.gray, kernel_size=5, num_output=20)
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50)
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500)
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10)
    n.prob = L.Softmax(n.ip2)
    path.write_text(str(n.to_proto()))
    return str(path)


def test_detect_windows_on_digits(tmp_path, lenet, mnist_test_arrays):
    deploy, weights = lenet
    images, labels = mnist_test_arrays
    canvas = np.zeros((100, 120), np.uint8)
    spots = [(0, 0), (0, 40), (40, 0), (70, 30)]
    windows = []
    for k, (y, x) in enumerate(spots):
        canvas[y:y + 28, x:x + 28] = images[k]
        windows.append((y, x, y + 28, x + 28))
    big = cv2.resize(images[4], (56, 56), interpolation=cv2.INTER_NEAREST)
    canvas[30:86, 60:116] = np.maximum(canvas[30:86, 60:116], big)
    windows.append((30, 60, 86, 116))
    png = str(tmp_path / "canvas.png")
    cv2.imwrite(png, cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))

    det = caffe.Detector(_rgb_lenet(tmp_path / "rgb_lenet.prototxt", 4), weights, raw_scale=255,
                         input_scale=SCALE)
    found = det.detect_windows([(png, windows)])
    assert [d["window"] for d in found] == windows and all(d["filename"] == png for d in found)
    probs = np.stack([d["prediction"] for d in found])
    assert probs.shape == (5, 10)
    assert list(probs.argmax(1)) == list(labels[:5])
    # the same windows cut and warped by OpenCV, classified by the plain 1-channel LeNet
    crops = np.stack([cv2.resize(canvas[y0:y1, x0:x1].astype(np.float32), (28, 28),
                                 interpolation=cv2.INTER_LINEAR)[None] / 255 * 255 * SCALE
                      for y0, x0, y1, x1 in windows]).astype(np.float32)
    ref = caffe.Net(deploy, caffe.TEST, weights=weights).forward_all(data=crops)["prob"]
    np.testing.assert_allclose(probs, ref, rtol=1e-3, atol=1e-5)

    with pytest.raises(NotImplementedError, match="detect_windows"):
        det.detect_selective_search([png])


def test_context_pad_fills_outside_the_image_with_the_mean(tmp_path, lenet):
    _, weights = lenet
    mean = np.array([10.0, 20.0, 30.0])
    det = caffe.Detector(_rgb_lenet(tmp_path / "rgb_lenet.prototxt", 2), weights, mean=mean,
                         raw_scale=255, context_pad=4)
    assert tuple(det.crop_dims) == (28, 28, 3)
    im = np.full((40, 40, 3), 0.5, np.float32)
    crop = det.crop(im, np.array([0, 0, 20, 20]))       # the context box leaves the image
    assert crop.shape == (28, 28, 3)
    np.testing.assert_allclose(crop[0, 0], mean / 255)          # mean, in image space
    np.testing.assert_allclose(crop[-1, -1], 0.5)               # inside: the image
