"""Caffe's DataTransformer: ``transform_param`` applied to one image or a batch.

For an image x (C x H x W, uint8 or float) the output is, as in Caffe,
``y[c, h, w] = (x[c, h_off + h, w_off + w'] - mean[c, h_off + h, w_off + w']) * scale`` where
``w' = crop_w - 1 - w`` when mirrored. Crop offsets are random in TRAIN and centred in TEST;
mirroring is random (probability 1/2) whenever ``mirror`` is set, in both phases, exactly like
Caffe's ``param_.mirror() && Rand(2)``. ``mean_file`` (a .binaryproto mean image, indexed at the
uncropped position) and ``mean_value`` (one per channel, or one for all) are mutually exclusive.
"""
from __future__ import annotations

import numpy as np

from netdef.errors import DataError


def read_mean_file(path: str) -> np.ndarray:
    """Mean image of a .binaryproto BlobProto as float32 C x H x W (num must be 1)."""
    from netdef.weights import read_binaryproto
    a = np.asarray(read_binaryproto(path), dtype=np.float32)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise DataError(f"{path}: mean blob has num={a.shape[0]}, expected 1")
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise DataError(f"{path}: mean blob has shape {a.shape}; expected 1 x C x H x W")
    return a


class DataTransformer:
    """Applies a TransformationParameter (scale, mean_file / mean_value, crop_size, mirror)."""

    def __init__(self, param, phase: str = "TRAIN", where: str = "", resolve=None):
        """``param``: caffe_pb2.TransformationParameter; ``phase``: 'TRAIN'|'TEST';
        ``where``: layer name for messages; ``resolve``: path resolver for mean_file."""
        self.where = where
        self.phase = phase
        self.scale = float(param.scale) if param.HasField("scale") else 1.0
        self.mirror = bool(param.mirror)
        self.crop = int(param.crop_size)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        self.mean_values = [float(v) for v in param.mean_value]
        self.mean_image = None
        if param.mean_file and self.mean_values:
            raise DataError(f"layer '{where}': cannot specify mean_file and mean_value at the same time")
        if param.mean_file:
            path = resolve(param.mean_file) if resolve else param.mean_file
            self.mean_image = read_mean_file(str(path))

    def output_shape(self, c: int, h: int, w: int) -> tuple[int, int, int]:
        """Shape of one transformed image of input shape C x H x W."""
        if self.crop:
            if self.crop > h or self.crop > w:
                raise DataError(f"layer '{self.where}': crop_size {self.crop} is larger than the "
                                f"image {h}x{w}")
            return c, self.crop, self.crop
        return c, h, w

    def _mean_for(self, c: int, h: int, w: int):
        if self.mean_image is not None:
            if self.mean_image.shape != (c, h, w):
                raise DataError(f"layer '{self.where}': mean_file image has shape "
                                f"{self.mean_image.shape} but the data is {(c, h, w)}")
            return self.mean_image
        if self.mean_values:
            if len(self.mean_values) == 1:
                return np.float32(self.mean_values[0])
            if len(self.mean_values) != c:
                raise DataError(f"layer '{self.where}': {len(self.mean_values)} mean_value entries "
                                f"for {c} channels (give 1 or one per channel)")
            return np.asarray(self.mean_values, dtype=np.float32)[:, None, None]
        return None

    def transform(self, img: np.ndarray, rng: np.random.Generator | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
        """One image C x H x W -> float32 C x crop x crop (or C x H x W), written into ``out``
        when given. ``rng`` draws crop offsets (TRAIN) and the mirror flag."""
        c, h, w = img.shape
        oc, oh, ow = self.output_shape(c, h, w)
        if self.crop:
            if self.phase == "TRAIN":
                h_off = int(rng.integers(h - self.crop + 1))
                w_off = int(rng.integers(w - self.crop + 1))
            else:
                h_off, w_off = (h - self.crop) // 2, (w - self.crop) // 2
        else:
            h_off = w_off = 0
        do_mirror = self.mirror and bool(rng.integers(2))
        x = img.astype(np.float32)
        mean = self._mean_for(c, h, w)
        if mean is not None:
            x = x - mean
        x = x[:, h_off:h_off + oh, w_off:w_off + ow]
        if do_mirror:
            x = x[:, :, ::-1]
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        if out is None:
            return np.ascontiguousarray(x, dtype=np.float32)
        out[...] = x
        return out
