"""Datum encode/decode, LMDB reader/writer, MNIST idx conversion, image lists, mean image,
DataTransformer (no Net needed)."""
from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest

from netdef.errors import DataError
from proto import caffe_pb2
from runner.data.datum import array_to_datum, datum_to_array, encoded_datum, parse_datum
from runner.data.db import DBReader, DBWriter
from runner.data.mnist import convert_mnist, read_idx_images, read_idx_labels
from runner.data.transformer import DataTransformer


def write_lmdb(path, arrays, labels):
    with DBWriter(path) as w:
        for i, (a, lab) in enumerate(zip(arrays, labels)):
            w.put(b"%08d" % i, array_to_datum(a, lab).SerializeToString())


def test_datum_round_trip_uint8_and_float():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    d = parse_datum(array_to_datum(a, 7).SerializeToString())
    assert (d.channels, d.height, d.width, d.label) == (2, 3, 4, 7)
    np.testing.assert_array_equal(datum_to_array(d), a)
    f = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    d = parse_datum(array_to_datum(f, 3).SerializeToString())
    assert not d.data and len(d.float_data) == 24
    np.testing.assert_array_equal(datum_to_array(d), f)


def test_datum_size_mismatch_names_record():
    d = caffe_pb2.Datum(channels=1, height=28, width=28, data=b"\0" * 100)
    with pytest.raises(DataError, match="rec 5.*100 bytes.*784"):
        datum_to_array(d, "rec 5")
    with pytest.raises(DataError, match="not a Caffe Datum"):
        parse_datum(b"\xff\xff\xff\xff\xff", "x")


def test_encoded_datum_decodes_to_bgr():
    from PIL import Image
    rgb = np.zeros((5, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    rgb[..., 2] = 10   # blue
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    a = datum_to_array(encoded_datum(buf.getvalue(), 1))
    assert a.shape == (3, 5, 6)
    assert (a[0] == 10).all() and (a[2] == 200).all()   # channel 0 = blue (OpenCV order)
    gray = datum_to_array(encoded_datum(buf.getvalue(), 1), force_gray=True)
    assert gray.shape == (1, 5, 6)


def test_lmdb_key_order_wraps_and_seeks(tmp_path):
    arrays = [np.full((1, 2, 2), i, np.uint8) for i in range(5)]
    write_lmdb(tmp_path / "db", arrays, range(5))
    assert not (tmp_path / "db.tmp").exists()
    with DBReader(tmp_path / "db") as r:
        assert len(r) == 5
        labels = [parse_datum(r.next()[1]).label for _ in range(7)]
        assert labels == [0, 1, 2, 3, 4, 0, 1]
        r.seek(13)
        assert r.position == 3 and parse_datum(r.next()[1]).label == 3


def test_writer_refuses_existing_and_cleans_up_on_error(tmp_path):
    write_lmdb(tmp_path / "db", [np.zeros((1, 1, 1), np.uint8)], [0])
    with pytest.raises(DataError, match="already exists"):
        DBWriter(tmp_path / "db")
    with pytest.raises(RuntimeError):
        with DBWriter(tmp_path / "db2") as w:
            w.put(b"a", b"b")
            raise RuntimeError("boom")
    assert not (tmp_path / "db2").exists() and not (tmp_path / "db2.tmp").exists()


def test_missing_and_corrupt_lmdb(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        DBReader(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "data.mdb").write_bytes(b"garbage" * 100)
    with pytest.raises(DataError, match="bad"):
        DBReader(bad)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DataError, match="not an LMDB directory"):
        DBReader(tmp_path / "file")


def test_leveldb_when_plyvel_present(tmp_path):
    pytest.importorskip("plyvel")
    with DBWriter(tmp_path / "ldb", backend="leveldb") as w:
        for i in range(3):
            w.put(b"%08d" % i, array_to_datum(np.full((1, 1, 1), i, np.uint8), i).SerializeToString())
    with DBReader(tmp_path / "ldb", backend=0) as r:
        assert [parse_datum(r.next()[1]).label for _ in range(4)] == [0, 1, 2, 0]


def _idx_files(tmp_path, n=6):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labs = rng.integers(0, 10, n, dtype=np.uint8)
    ip, lp = tmp_path / "img.gz", tmp_path / "lab"
    with gzip.open(ip, "wb") as f:
        f.write(struct.pack(">iiii", 2051, n, 28, 28) + imgs.tobytes())
    lp.write_bytes(struct.pack(">ii", 2049, n) + labs.tobytes())
    return ip, lp, imgs, labs


def test_convert_mnist_matches_caffe_layout(tmp_path):
    ip, lp, imgs, labs = _idx_files(tmp_path)
    assert convert_mnist(ip, lp, tmp_path / "out") == 6
    with DBReader(tmp_path / "out") as r:
        for i in range(6):
            k, v = r.next()
            d = parse_datum(v)
            assert k == b"%08d" % i
            assert (d.channels, d.height, d.width, d.label) == (1, 28, 28, labs[i])
            assert d.data == imgs[i].tobytes()


def test_idx_bad_magic_and_truncation(tmp_path):
    ip, lp, _, _ = _idx_files(tmp_path)
    with pytest.raises(DataError, match="bad magic number 2049"):
        read_idx_images(lp)
    t = tmp_path / "trunc"
    t.write_bytes(struct.pack(">iiii", 2051, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        read_idx_images(t)
    with pytest.raises(DataError, match="not found"):
        read_idx_labels(tmp_path / "missing")
    (tmp_path / "x").mkdir()
    ip2, _, _, _ = _idx_files(tmp_path / "x", n=5)
    with pytest.raises(DataError, match="5 images but .* 6 labels"):
        convert_mnist(ip2, lp, tmp_path / "o2")


def _tparam(**kw):
    p = caffe_pb2.TransformationParameter()
    for k, v in kw.items():
        if k == "mean_value":
            p.mean_value.extend(v)
        else:
            setattr(p, k, v)
    return p


def test_transformer_scale_mean_crop_mirror():
    x = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    t = DataTransformer(_tparam(scale=0.5, mean_value=[1.0, 2.0], crop_size=2), "TEST")
    y = t.transform(x, np.random.default_rng(0))
    ref = (x.astype(np.float32) - np.array([1, 2], np.float32)[:, None, None]) * 0.5
    np.testing.assert_array_equal(y, ref[:, 1:3, 1:3])   # centre crop (4-2)//2, (5-2)//2
    t = DataTransformer(_tparam(mirror=True, crop_size=3), "TRAIN")
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        y = t.transform(x, rng)
        assert y.shape == (2, 3, 3)
        found = False
        for h in range(2):
            for w in range(3):
                win = x[:, h:h + 3, w:w + 3].astype(np.float32)
                if np.array_equal(y, win):
                    seen.add((h, w, 0))
                    found = True
                elif np.array_equal(y, win[:, :, ::-1]):
                    seen.add((h, w, 1))
                    found = True
        assert found
    assert len(seen) > 4 and {m for *_, m in seen} == {0, 1}


def test_transformer_bad_params():
    with pytest.raises(DataError, match="at the same time"):
        DataTransformer(_tparam(mean_file="m.binaryproto", mean_value=[1.0]), "TRAIN", "data")
    t = DataTransformer(_tparam(mean_value=[1.0, 2.0]), "TRAIN", "data")
    with pytest.raises(DataError, match="2 mean_value entries for 3 channels"):
        t.transform(np.zeros((3, 2, 2), np.uint8), np.random.default_rng(0))
    t = DataTransformer(_tparam(crop_size=9), "TRAIN", "data")
    with pytest.raises(DataError, match="crop_size 9 is larger"):
        t.output_shape(1, 4, 4)


def test_lmdb_reader_matches_py_lmdb(tmp_path):
    """runner.data.lmdb_reader against py-lmdb itself (the oracle): a tree of several levels,
    inline and overflow values (> a page), keys in byte order, seeks, the wrap-around."""
    lmdb = pytest.importorskip("lmdb")
    rng = np.random.default_rng(3)
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for _ in range(3000):
            key = b"%09d_%s" % (rng.integers(0, 10**9), b"k" * int(rng.integers(0, 30)))
            txn.put(key, rng.bytes(int(rng.choice([0, 7, 900, 5000, 20000]))))
    env.close()
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        ref = [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    env.close()
    r = DBReader(tmp_path / "db")
    assert len(r) == len(ref)
    assert [r.next() for _ in range(len(ref))] == ref
    assert r.next() == ref[0]                               # wraps around
    for k in (0, 1, 499, 2999, 3000, 4321):
        r.seek(k)
        assert r.next() == ref[k % len(ref)], k
    r.close()
