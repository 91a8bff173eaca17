"""pycaffe's ``caffe.Classifier``: a TEST-phase Net with image preprocessing and 10-crop
prediction.

``Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
raw_scale=None, channel_swap=None)``; ``predict(inputs, oversample=True)`` takes a list of
H x W x K images (e.g. from ``caffe.io.load_image``), resizes each to ``image_dims`` (default: the
input blob's H x W), then either averages the predictions over the 10 crops of
``caffe.io.oversample`` or takes the centre crop, preprocesses with the Transformer (transpose to
C x H x W, channel swap, raw scale, mean, input scale) and runs ``forward_all``. Returns
N x (number of classes) of the net's first output.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from caffe import io
from caffe.pycaffe import Net
from proto import caffe_pb2


def input_transformer(net: Net, mean: np.ndarray | None, input_scale: float | None,
                      raw_scale: float | None, channel_swap: Sequence[int] | None) -> io.Transformer:
    """pycaffe's preprocessing of ``net``'s first input, as Classifier and Detector set it up:
    HxWxC -> CxHxW, then the mean, input scale, raw scale and channel swap that are given."""
    in_ = net.inputs[0]
    t = io.Transformer({in_: net.blobs[in_].shape})
    t.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        t.set_mean(in_, mean)
    if input_scale is not None:
        t.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        t.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        t.set_channel_swap(in_, channel_swap)
    return t


class Classifier(Net):
    """See the module docstring."""

    def __init__(self, model_file: str, pretrained_file: str, image_dims: Sequence[int] | None = None,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None):
        Net.__init__(self, model_file, pretrained_file, caffe_pb2.TEST)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or not len(image_dims) else image_dims

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """Class scores (the first output) for each image; see the module docstring."""
        h, w = int(self.image_dims[0]), int(self.image_dims[1])
        images = np.zeros((len(inputs), h, w, inputs[0].shape[2]), dtype=np.float32)
        for i, image in enumerate(inputs):
            images[i] = io.resize_image(image, (h, w))
        if oversample:
            images = io.oversample(images, self.crop_dims)
        else:
            ch, cw = (int(d) for d in self.crop_dims)
            y, x = int(h / 2.0 - ch / 2.0), int(w / 2.0 - cw / 2.0)
            images = images[:, y:y + ch, x:x + cw, :]
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(images), images.shape[3], images.shape[1], images.shape[2]),
                            dtype=np.float32)
        for i, image in enumerate(images):
            caffe_in[i] = self.transformer.preprocess(in_, image)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
