"""Caffe ``Datum`` records: encode arrays into them, decode them into arrays.

A Datum holds one C x H x W image either as raw uint8 bytes (``data``), as floats
(``float_data``), or as an encoded JPEG/PNG file (``encoded=True``; decoded with Pillow into
Caffe's OpenCV channel order, BGR). Plus an integer ``label``.
"""
from __future__ import annotations

import io

import numpy as np

from netdef.errors import DataError
from proto import caffe_pb2


def parse_datum(value: bytes, where: str = "") -> caffe_pb2.Datum:
    """Parse one serialized Datum; a value that is not a Datum raises DataError naming ``where``."""
    d = caffe_pb2.Datum()
    try:
        d.ParseFromString(value)
    except Exception as e:  # protobuf's DecodeError
        raise DataError(f"{where}: record is not a Caffe Datum ({e})") from None
    return d


def decode_image(buf: bytes, color: bool | None = None, where: str = "") -> np.ndarray:
    """Decode JPEG/PNG bytes into a uint8 array C x H x W in Caffe's channel order (BGR for colour,
    1 channel for gray). ``color`` None keeps the file's own mode (gray stays gray)."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(buf))
        img.load()
    except Exception as e:       # Pillow's decoders raise many types on damaged bytes
        raise DataError(f"{where}: cannot decode the encoded image ({type(e).__name__}: "
                        f"{e})") from None
    if color is None:
        color = img.mode not in ("L", "1", "I;16", "I", "F")
    img = img.convert("RGB" if color else "L")
    return image_to_chw(img)


def image_to_chw(img) -> np.ndarray:
    """A Pillow image (RGB or L) -> uint8 C x H x W, colour as BGR like cv::imread."""
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        return a[None].copy()
    return np.ascontiguousarray(a[:, :, ::-1].transpose(2, 0, 1))


def datum_to_array(d: caffe_pb2.Datum, where: str = "", force_color: bool = False,
                   force_gray: bool = False) -> np.ndarray:
    """Datum -> array C x H x W: uint8 for raw/encoded data, float32 for ``float_data``.
    Raises DataError when the byte count disagrees with channels*height*width."""
    if d.encoded:
        color = True if force_color else (False if force_gray else None)
        return decode_image(d.data, color, where)
    c, h, w = d.channels, d.height, d.width
    n = c * h * w
    if d.data:
        if len(d.data) != n:
            raise DataError(f"{where}: Datum has {len(d.data)} bytes of data but channels x height x "
                            f"width = {c}x{h}x{w} = {n}")
        return np.frombuffer(d.data, dtype=np.uint8).reshape(c, h, w)
    if len(d.float_data) != n:
        raise DataError(f"{where}: Datum has {len(d.float_data)} float_data values but channels x "
                        f"height x width = {c}x{h}x{w} = {n}")
    return np.asarray(d.float_data, dtype=np.float32).reshape(c, h, w)


def array_to_datum(a: np.ndarray, label: int = 0) -> caffe_pb2.Datum:
    """Array C x H x W -> Datum: uint8 arrays go to ``data`` bytes, others to ``float_data``."""
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"array_to_datum wants C x H x W, got shape {a.shape}")
    d = caffe_pb2.Datum(channels=a.shape[0], height=a.shape[1], width=a.shape[2], label=int(label))
    if a.dtype == np.uint8:
        d.data = np.ascontiguousarray(a).tobytes()
    else:
        d.float_data.extend(np.asarray(a, dtype=np.float32).ravel().tolist())
    return d


def encoded_datum(buf: bytes, label: int = 0) -> caffe_pb2.Datum:
    """A Datum carrying an encoded image file (``encoded=True``), like convert_imageset --encoded."""
    return caffe_pb2.Datum(data=buf, label=int(label), encoded=True)
