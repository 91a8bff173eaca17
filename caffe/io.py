"""pycaffe's ``caffe.io``: images in, blobs out.

- ``load_image(filename, color=True)``: float32 H x W x 3 RGB in [0, 1] (``color=False``: H x W x 1
  gray, from colour by 0.2125 R + 0.7154 G + 0.0721 B as scikit-image's rgb2gray, which pycaffe
  used); gray files are repeated to 3 channels when ``color``; an alpha channel is dropped;
  8-bit values are divided by 255, 16-bit by 65535.
- ``resize_image(im, new_dims, interp_order=1)``: H x W x K float32 resized to ``new_dims``
  (bilinear with pixel centres at +0.5 and edge pixels repeated, as OpenCV's INTER_LINEAR;
  ``interp_order=0``: nearest neighbour); any number of channels.
- ``oversample(images, crop_dims)``: the 4 corner crops and the centre crop of each image and their
  mirror images (10 per image), as pycaffe's Classifier averages over.
- ``Transformer``: per input blob, preprocess = resize to the blob's H x W, ``transpose``,
  ``channel_swap``, ``* raw_scale``, ``- mean``, ``* input_scale``; deprocess inverts it.
- ``blobproto_to_array`` / ``array_to_blobproto``, ``arraylist_to_blobprotovector_str`` /
  ``blobprotovector_str_to_arraylist``, ``array_to_datum`` / ``datum_to_array``: numpy <->
  Caffe's BlobProto, BlobProtoVector and Datum messages.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from proto import caffe_pb2

# scikit-image's rgb2gray weights (ITU-R BT.709 luma), which pycaffe's load_image applied
_GRAY = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)


# ---------------------------------------------------------------------------- blobs and datums

def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """A BlobProto's data (or diff) as a float array of its shape (legacy blobs: N x C x H x W)."""
    from netdef.weights import blob_shape
    values = np.array(blob.diff if return_diff else blob.data)
    return values.reshape(blob_shape(blob))


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """An array (and optionally its diff) as a BlobProto with ``shape.dim``."""
    from netdef.weights import array_to_blob
    blob = array_to_blob(arr)
    if diff is not None:
        blob.diff.extend(np.asarray(diff, dtype=np.float64).ravel())
    return blob


def arraylist_to_blobprotovector_str(arraylist: Sequence[np.ndarray]) -> bytes:
    """Serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(s: bytes) -> list[np.ndarray]:
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(s)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A C x H x W array as a Datum: uint8 arrays as ``data`` bytes, others as ``float_data``;
    ``label`` set when given."""
    from runner.data.datum import array_to_datum as to_datum
    if np.ndim(arr) != 3:
        raise ValueError(f"Incorrect array shape: array_to_datum wants C x H x W, got {np.shape(arr)}")
    datum = to_datum(arr, 0 if label is None else label)
    if label is None:
        datum.ClearField("label")
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """A Datum's image as C x H x W: uint8 for byte data (encoded images decoded, BGR as Caffe
    stores them), float64 for ``float_data``."""
    from runner.data.datum import datum_to_array as to_array
    a = to_array(datum, "datum")
    return a if a.dtype == np.uint8 else a.astype(np.float64)


# ---------------------------------------------------------------------------- images

def load_image(filename: str, color: bool = True) -> np.ndarray:
    """Read an image file as float32 H x W x 3 RGB in [0, 1] (``color=False``: H x W x 1)."""
    from PIL import Image
    with Image.open(filename) as im:
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode == "CMYK" or im.mode.startswith("YCbCr"):
            im = im.convert("RGB")
        a = np.asarray(im)
    if a.dtype == np.uint8:
        img = a.astype(np.float32) / np.float32(255)
    elif a.dtype.kind in "ui":
        img = (a.astype(np.float64) / (65535 if a.dtype.itemsize <= 2 or a.max() <= 65535
                                       else np.iinfo(a.dtype).max)).astype(np.float32)
    else:
        img = a.astype(np.float32)
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[:, :, :-1]                       # drop alpha
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if color:
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
    else:
        if img.ndim == 3:
            img = (img.astype(np.float64) @ _GRAY).astype(np.float32)
        img = img[:, :, None]
    return np.ascontiguousarray(img, dtype=np.float32)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis: source index pairs and the weight of the second."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo)


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize an H x W x K image to ``new_dims`` (height, width); float32 result."""
    im = np.asarray(im)
    if im.ndim != 3:
        raise ValueError(f"resize_image wants an H x W x K image, got shape {im.shape}")
    h, w = int(new_dims[0]), int(new_dims[1])
    if interp_order not in (0, 1):
        raise ValueError(f"resize_image supports interp_order 0 (nearest) and 1 (bilinear), "
                         f"not {interp_order}")
    a = im.astype(np.float64)
    if interp_order == 0:
        rows = np.minimum(((np.arange(h) + 0.5) * im.shape[0] / h).astype(np.int64), im.shape[0] - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * im.shape[1] / w).astype(np.int64), im.shape[1] - 1)
        return a[rows][:, cols].astype(np.float32)
    r0, r1, fr = _axis_weights(im.shape[0], h)
    c0, c1, fc = _axis_weights(im.shape[1], w)
    fr, fc = fr[:, None, None], fc[None, :, None]
    top = a[r0][:, c0] * (1 - fc) + a[r0][:, c1] * fc
    bottom = a[r1][:, c0] * (1 - fc) + a[r1][:, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def oversample(images: Sequence[np.ndarray], crop_dims: Sequence[int]) -> np.ndarray:
    """For each H x W x K image: the crops at the four corners and the centre, then the same five
    mirrored left-right: (10 * len(images)) x crop_h x crop_w x K float32."""
    ch, cw = int(crop_dims[0]), int(crop_dims[1])
    h, w = images[0].shape[:2]
    starts = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw),
              (int(h / 2.0 - ch / 2.0), int(w / 2.0 - cw / 2.0))]
    crops = np.empty((10 * len(images), ch, cw, images[0].shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for y, x in starts:
            crops[ix] = im[y:y + ch, x:x + cw, :]
            ix += 1
        crops[ix:ix + 5] = crops[ix - 5:ix, :, ::-1, :]
        ix += 5
    return crops


# ---------------------------------------------------------------------------- Transformer

class Transformer:
    """Preprocessing of images for a net's input blobs (pycaffe's caffe.io.Transformer).

    ``inputs`` maps input blob names to their shapes (N x C x H x W). For each input, settings
    made with the ``set_*`` methods are applied by ``preprocess`` in this order: resize to H x W,
    ``transpose`` (e.g. (2, 0, 1): H x W x C -> C x H x W), ``channel_swap`` (e.g. (2, 1, 0): RGB
    -> BGR), ``* raw_scale``, ``- mean``, ``* input_scale``. ``deprocess`` undoes them in reverse.
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]):
        self.inputs = dict(inputs)
        self.transpose: dict[str, Sequence[int]] = {}
        self.channel_swap: dict[str, Sequence[int]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def __check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise Exception(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """An image (H' x W' x K, e.g. from load_image) -> the input blob's C x H x W layout."""
        self.__check_input(in_)
        x = np.asarray(data).astype(np.float32, copy=False)
        in_dims = tuple(self.inputs[in_][2:])
        if tuple(x.shape[:2]) != in_dims:
            x = resize_image(x, in_dims)
        if in_ in self.transpose:
            x = x.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            x = x[list(self.channel_swap[in_]), :, :]
        # each step rounds to float32, as pycaffe's in-place float32 arithmetic does
        if in_ in self.raw_scale:
            x = (x * self.raw_scale[in_]).astype(np.float32)
        if in_ in self.mean:
            x = (x - self.mean[in_]).astype(np.float32)
        if in_ in self.input_scale:
            x = (x * self.input_scale[in_]).astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """Invert ``preprocess`` (without the resize): C x H x W -> H x W x K."""
        self.__check_input(in_)
        x = np.array(data).squeeze()
        dt = x.dtype
        if in_ in self.input_scale:
            x = (x / self.input_scale[in_]).astype(dt)
        if in_ in self.mean:
            x = (x + self.mean[in_]).astype(dt)
        if in_ in self.raw_scale:
            x = (x / self.raw_scale[in_]).astype(dt)
        if in_ in self.channel_swap:
            x = x[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            x = x.transpose(np.argsort(self.transpose[in_]))
        return x

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order applied to the image (e.g. (2, 0, 1) for H x W x C -> C x H x W)."""
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception("Transpose order needs to have the same number of dimensions as the "
                            "input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order taken after the transpose (e.g. (2, 1, 0) for RGB -> BGR)."""
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception("Channel swap needs to have the same number of dimensions as the "
                            "input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Scale applied before the mean is subtracted (e.g. 255 for images loaded in [0, 1])."""
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Mean to subtract: one value per channel (shape (C,)) or a C x H x W image."""
        self.__check_input(in_)
        mean = np.asarray(mean)
        shape = mean.shape
        if mean.ndim == 1:
            if shape[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(shape) == 2:
                shape = (1,) + shape
            if len(shape) != 3:
                raise ValueError("Mean shape invalid")
            if tuple(shape) != tuple(self.inputs[in_][1:]):
                raise ValueError("Mean shape incompatible with input shape.")
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Scale applied after the mean is subtracted."""
        self.__check_input(in_)
        self.input_scale[in_] = scale

