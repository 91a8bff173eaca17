"""pycaffe's ``caffe.Detector``: classify given windows of images (R-CNN style).

``Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
channel_swap=None, context_pad=None)``; ``detect_windows([(image_file, windows), ...])`` loads each
image (``caffe.io.load_image``, RGB in [0, 1]), crops every window ``(ymin, xmin, ymax, xmax)``
(pixels; the end row/column excluded, as pycaffe slices), warps it to the net's input size,
preprocesses it with the Transformer and runs ``forward_all``; it returns one
``{'window', 'prediction', 'filename'}`` dict per window, in order. With ``context_pad`` the
window is grown so that, once warped, ``context_pad`` input pixels of context surround it (as
R-CNN does), the part outside the image filled with the mean.

Window proposals by selective search (``detect_selective_search``) are not part of nbcaffe:
compute the windows with any proposal method and pass them to ``detect_windows``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffe import io
from caffe.classifier import input_transformer
from caffe.pycaffe import Net
from proto import caffe_pb2


class Detector(Net):
    """See the module docstring."""

    def __init__(self, model_file: str, pretrained_file: str, mean: np.ndarray | None = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None, context_pad: int | None = None):
        Net.__init__(self, model_file, pretrained_file, caffe_pb2.TEST)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Sequence[tuple[str, Sequence[Sequence[int]]]]
                       ) -> list[dict[str, Any]]:
        """Predictions for each window of each image; see the module docstring."""
        crops = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.crop(image, np.asarray(window)))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(crops), crops[0].shape[2]) + tuple(self.blobs[in_].shape[2:]),
                            dtype=np.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections = []
        i = 0
        for filename, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[i],
                                   "filename": filename})
                i += 1
        return detections

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        """Not available: selective search is outside nbcaffe (see the module docstring)."""
        raise NotImplementedError(
            "Detector.detect_selective_search: selective search window proposals are not part of "
            "nbcaffe (pycaffe called an external MATLAB package); compute windows with a proposal "
            "method of your choice and call detect_windows([(image_file, windows), ...])")

    def crop(self, im: np.ndarray, window: np.ndarray) -> np.ndarray:
        """The H x W x K crop of ``window`` (ymin, xmin, ymax, xmax), with context padding when
        configured (then already warped to the input size)."""
        y0, x0, y1, x1 = (int(v) for v in window[:4])
        crop = im[y0:y1, x0:x1]
        if not self.context_pad:
            return crop
        size = self.blobs[self.inputs[0]].width            # assumes a square input, as pycaffe
        scale = size / (1.0 * size - self.context_pad * 2)
        half_h, half_w = (y1 - y0 + 1) / 2.0, (x1 - x0 + 1) / 2.0
        cy, cx = y0 + half_h, x0 + half_w
        box = np.round(np.array([cy, cx, cy, cx]) + scale * np.array([-half_h, -half_w, half_h,
                                                                       half_w]))
        scale_h = size / (box[2] - box[0] + 1)
        scale_w = size / (box[3] - box[1] + 1)
        pad_y = int(round(max(0, -box[0]) * scale_h))     # rows of context outside the image
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w]).astype(int)
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        crop_h = min(int(round(clip_h * scale_h)), size - pad_y)
        crop_w = min(int(round(clip_w * scale_w)), size - pad_x)
        context = io.resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return out

    def configure_crop(self, context_pad: int | None) -> None:
        """Crop size (the input's H x W x K) and, with ``context_pad``, the mean to fill context
        outside the image, in image space (before transpose, channel swap and raw scale)."""
        in_ = self.inputs[0]
        inverse = np.argsort(self.transformer.transpose[in_])    # C x H x W -> image axes
        self.crop_dims = np.array(self.blobs[in_].shape[1:])[inverse]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.broadcast_to(mean, self.blobs[in_].shape[1:]).transpose(inverse).copy()
        swap = self.transformer.channel_swap.get(in_)
        if swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(swap)]
        raw = self.transformer.raw_scale.get(in_)
        if raw is not None:
            crop_mean = crop_mean / raw
        self.crop_mean = crop_mean.astype(np.float32)
