"""caffe.io round trips and image functions. Oracles: OpenCV (imread, resize), the protobuf
messages' own fields, numpy recomputations of pycaffe's documented preprocessing order."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2


def test_blobproto_round_trips():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    d = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(a, d)
    assert isinstance(blob, caffe_pb2.BlobProto)
    assert list(blob.shape.dim) == [2, 3, 4, 5] and len(blob.data) == a.size == len(blob.diff)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), a)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), d)
    # any number of axes, through the serialized message
    v = rng.standard_normal(7).astype(np.float32)
    again = caffe_pb2.BlobProto.FromString(caffe.io.array_to_blobproto(v).SerializeToString())
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(again), v)
    # a legacy 4-D blob (num/channels/height/width, as old mean files are)
    legacy = caffe_pb2.BlobProto(num=1, channels=3, height=2, width=2, data=list(range(12)))
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(legacy).ravel(), np.arange(12))


def test_blobprotovector_round_trip():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((1, 2, 2, 2), np.float32) * 0.5]
    s = caffe.io.arraylist_to_blobprotovector_str(arrays)
    vec = caffe_pb2.BlobProtoVector.FromString(s)
    assert len(vec.blobs) == 2 and list(vec.blobs[1].shape.dim) == [1, 2, 2, 2]
    back = caffe.io.blobprotovector_str_to_arraylist(s)
    for x, y in zip(arrays, back):
        np.testing.assert_array_equal(x, y)


def test_datum_round_trips():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    d = caffe.io.array_to_datum(img, 7)
    assert (d.channels, d.height, d.width, d.label) == (3, 4, 5, 7) and d.data == img.tobytes()
    back = caffe.io.datum_to_array(caffe_pb2.Datum.FromString(d.SerializeToString()))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, img)
    f = rng.standard_normal((2, 3, 3)).astype(np.float32)
    d = caffe.io.array_to_datum(f)
    assert not d.HasField("label") and len(d.float_data) == f.size and not d.data
    np.testing.assert_array_equal(caffe.io.datum_to_array(d), f.astype(np.float64))
    with pytest.raises(ValueError, match="shape"):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_load_image_matches_opencv(tmp_path):
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    path = str(tmp_path / "c.png")
    cv2.imwrite(path, bgr)
    rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    im = caffe.io.load_image(path)
    assert im.dtype == np.float32 and im.shape == (9, 7, 3)
    np.testing.assert_allclose(im, rgb, atol=1e-7)
    gray = caffe.io.load_image(path, color=False)
    assert gray.shape == (9, 7, 1)
    expect = (rgb.astype(np.float64) @ [0.2125, 0.7154, 0.0721])[:, :, None]
    np.testing.assert_allclose(gray, expect, atol=1e-6)
    # a gray file becomes 3 equal channels; alpha is dropped; 16-bit divides by 65535
    g = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    im = caffe.io.load_image(str(tmp_path / "g.png"))
    assert im.shape == (5, 6, 3)
    np.testing.assert_allclose(im[:, :, 1], g / 255.0, atol=1e-7)
    assert caffe.io.load_image(str(tmp_path / "g.png"), color=False).shape == (5, 6, 1)
    bgra = np.dstack([bgr, np.full((9, 7), 9, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "a.png")), rgb, atol=1e-7)
    g16 = rng.integers(0, 65536, (4, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "g16.png"), color=False)[:, :, 0],
                               g16 / 65535.0, atol=1e-6)


@pytest.mark.parametrize("src,dst", [((9, 7), (20, 13)), ((21, 17), (8, 5)), ((6, 6), (6, 6))])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_image_matches_opencv_linear(src, dst, channels):
    rng = np.random.default_rng(3)
    im = rng.random(src + (channels,)).astype(np.float32) * 4 - 1
    out = caffe.io.resize_image(im, dst)
    assert out.shape == dst + (channels,) and out.dtype == np.float32
    ref = cv2.resize(im, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out, ref.reshape(out.shape), atol=2e-6)
    near = caffe.io.resize_image(im, dst, interp_order=0)   # sizes without rounding ties
    ref = cv2.resize(im, (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(near, ref.reshape(near.shape))


def test_oversample_takes_corners_centre_and_mirrors():
    rng = np.random.default_rng(4)
    ims = rng.random((2, 8, 10, 3)).astype(np.float32)
    crops = caffe.io.oversample(ims, (5, 6))
    assert crops.shape == (20, 5, 6, 3)
    for n, im in enumerate(ims):
        expect = [im[:5, :6], im[:5, 4:], im[3:, :6], im[3:, 4:], im[1:6, 2:8]]
        for k, e in enumerate(expect):
            np.testing.assert_array_equal(crops[10 * n + k], e)
            np.testing.assert_array_equal(crops[10 * n + 5 + k], e[:, ::-1])


def test_transformer_preprocess_order_and_deprocess():
    rng = np.random.default_rng(5)
    t = caffe.io.Transformer({"data": (1, 3, 4, 6)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    mean = np.array([104.0, 117.0, 123.0])
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.017)
    img = rng.random((4, 6, 3)).astype(np.float32)
    out = t.preprocess("data", img)
    expect = ((img.transpose(2, 0, 1)[::-1] * 255.0 - mean[:, None, None]) * 0.017)
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out), img, atol=1e-5)
    # another size is resized to the blob's H x W first (bilinear)
    big = rng.random((8, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(t.preprocess("data", big),
                               t.preprocess("data", caffe.io.resize_image(big, (4, 6))), atol=1e-5)
    # an elementwise mean image; bad settings are refused as pycaffe refuses them
    t.set_mean("data", np.full((3, 4, 6), 2.0))
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros((3, 5, 6)))
    with pytest.raises(Exception, match="Transpose"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(Exception, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(Exception, match="not one of the net inputs"):
        t.preprocess("label", img)
