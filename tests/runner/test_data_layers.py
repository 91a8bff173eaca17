"""Data, ImageData, HDF5Data and MemoryData layers inside a Net (cpu), the prefetcher, the
probe of data shapes, mean files, convert-imageset and compute-mean."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from netdef.errors import DataError
from netdef.prototxt import read_net
from netdef.weights import write_binaryproto
from runner.data.datum import array_to_datum
from runner.data.db import DBReader, DBWriter
from runner.data.prefetch import Prefetcher
from runner.net import Net


def make_db(path, n=10, shape=(3, 5, 6)):
    arrays = []
    with DBWriter(path) as w:
        for i in range(n):
            a = ((np.arange(np.prod(shape)).reshape(shape) + 7 * i) % 256).astype(np.uint8)
            arrays.append(a)
            w.put(b"%08d" % i, array_to_datum(a, i).SerializeToString())
    return arrays


def net_of(text, phase="TRAIN", seed=3):
    return Net(read_net(text), phase, device="cpu", seed=seed)


def close(net):
    for layer in net.layers:
        if hasattr(layer, "close"):
            layer.close()


def test_data_layer_reads_in_key_order_with_wraparound(tmp_path):
    arrays = make_db(tmp_path / "db")
    net = net_of(f'''name: "n" layer {{ name: "d" type: "Data" top: "data" top: "label"
        transform_param {{ scale: 0.5 mean_value: 1 mean_value: 2 mean_value: 3 }}
        data_param {{ source: "{tmp_path / 'db'}" batch_size: 4 backend: LMDB }} }}''')
    assert net.blobs["data"].shape == (4, 3, 5, 6) and net.blobs["label"].shape == (4,)
    mean = np.array([1, 2, 3], np.float32)[:, None, None]
    seen = []
    for _ in range(3):
        out = net.forward()
        seen += out["label"].astype(int).tolist()
        for img, lab in zip(out["data"], out["label"].astype(int)):
            np.testing.assert_array_equal(img, (arrays[lab].astype(np.float32) - mean) * np.float32(0.5))
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    d = net.layer_dict["d"]
    d.seek(1)
    assert net.forward()["label"].tolist() == [4, 5, 6, 7]
    close(net)
    assert d.prefetcher is None


def test_crop_mirror_mean_file_and_determinism(tmp_path):
    make_db(tmp_path / "db")
    mean = np.full((1, 3, 5, 6), 10.0, np.float32)
    write_binaryproto(tmp_path / "mean.binaryproto", mean, legacy_4d=True)
    text = f'''name: "n" layer {{ name: "d" type: "Data" top: "data" top: "label"
        transform_param {{ crop_size: 3 mirror: true mean_file: "{tmp_path / 'mean.binaryproto'}" }}
        data_param {{ source: "{tmp_path / 'db'}" batch_size: 5 backend: LMDB }} }}'''
    a, b = net_of(text, seed=11), net_of(text, seed=11)
    assert a.blobs["data"].shape == (5, 3, 3, 3)
    outs_a = [a.forward()["data"] for _ in range(3)]
    outs_b = [b.forward()["data"] for _ in range(3)]
    for x, y in zip(outs_a, outs_b):
        np.testing.assert_array_equal(x, y)     # same seed, same crops and mirrors
    assert outs_a[0].min() >= -10
    close(a)
    close(b)
    bad = np.zeros((1, 3, 4, 4), np.float32)
    write_binaryproto(tmp_path / "bad.binaryproto", bad, legacy_4d=True)
    with pytest.raises(DataError, match="mean_file image has shape"):
        net_of(text.replace("mean.binaryproto", "bad.binaryproto"))


def test_missing_and_corrupt_sources_name_the_layer(tmp_path):
    with pytest.raises(DataError, match="layer 'd'.*does not exist"):
        net_of(f'''name: "n" layer {{ name: "d" type: "Data" top: "data"
            data_param {{ source: "{tmp_path / 'none'}" batch_size: 2 backend: LMDB }} }}''')
    with DBWriter(tmp_path / "junk") as w:
        w.put(b"0", b"\xff\xfe\xfd not a datum")
    with pytest.raises(DataError, match="not a Caffe Datum"):
        net_of(f'''name: "n" layer {{ name: "d" type: "Data" top: "data"
            data_param {{ source: "{tmp_path / 'junk'}" batch_size: 2 backend: LMDB }} }}''')


def test_data_shape_disagreeing_with_net_weights_is_a_clear_error(tmp_path):
    """Records of another size than the ones a model was trained on: the weights do not fit."""
    from netdef.errors import WeightsError
    text = """name: "n" layer {{ name: "d" type: "Data" top: "data" top: "label"
            data_param {{ source: "{src}" batch_size: 2 backend: LMDB }} }}
            layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                     inner_product_param {{ num_output: 2 }} }}"""
    make_db(tmp_path / "db6", shape=(1, 6, 6))
    make_db(tmp_path / "db4", shape=(1, 4, 4))
    a = net_of(text.format(src=tmp_path / "db6"))
    a.save(tmp_path / "m.caffemodel")
    close(a)
    b = net_of(text.format(src=tmp_path / "db4"))
    with pytest.raises(WeightsError, match="'ip'.*\\(2, 36\\).*\\(2, 16\\)"):
        b.copy_from(tmp_path / "m.caffemodel")
    close(b)


def test_image_data_layer(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    lines = []
    for i in range(5):
        rgb = rng.integers(0, 256, (8 + i, 9, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"im {i}.png")
        lines.append(f"im {i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    net = net_of(f'''name: "n" layer {{ name: "d" type: "ImageData" top: "data" top: "label"
        image_data_param {{ source: "{tmp_path / 'list.txt'}" root_folder: "{tmp_path}/" batch_size: 3
                            new_height: 6 new_width: 7 shuffle: true }} }}''')
    assert net.blobs["data"].shape == (3, 3, 6, 7)
    labels = [net.forward()["label"].astype(int).tolist() for _ in range(2)]
    assert sorted(labels[0] + labels[1][:2]) == [0, 1, 2, 3, 4]   # one epoch, shuffled
    close(net)
    net = net_of(f'''name: "n" layer {{ name: "d" type: "ImageData" top: "data" top: "label"
        image_data_param {{ source: "{tmp_path / 'list.txt'}" root_folder: "{tmp_path}/" batch_size: 1
                            is_color: false }} }}''', phase="TEST")
    out = net.forward()
    img = np.asarray(Image.open(tmp_path / "im 0.png").convert("L"), np.float32)
    np.testing.assert_array_equal(out["data"][0, 0], img)
    close(net)


def test_hdf5_data_layer(tmp_path):
    import h5py
    for k in range(2):
        with h5py.File(tmp_path / f"f{k}.h5", "w") as f:
            f["data"] = np.arange(12, dtype=np.float32).reshape(3, 2, 2) + 100 * k
            f["label"] = np.arange(3, dtype=np.float32) + 10 * k
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'f0.h5'}\nf1.h5\n")
    net = net_of(f'''name: "n" layer {{ name: "d" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param {{ source: "{tmp_path / 'list.txt'}" batch_size: 4 }} }}''')
    assert net.blobs["data"].shape == (4, 2, 2)
    assert net.forward()["label"].tolist() == [0, 1, 2, 10]
    assert net.forward()["label"].tolist() == [11, 12, 0, 1]
    close(net)
    with h5py.File(tmp_path / "f1.h5", "w") as f:
        f["data"] = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(DataError, match="no dataset named 'label'"):
        net_of(f'''name: "n" layer {{ name: "d" type: "HDF5Data" top: "data" top: "label"
            hdf5_data_param {{ source: "{tmp_path / 'list.txt'}" batch_size: 4 }} }}''')


def test_memory_data_layer():
    net = net_of('''name: "n" layer { name: "m" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }''')
    m = net.layer_dict["m"]
    with pytest.raises(DataError, match="set_input_arrays"):
        net.forward()
    x = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    m.set_input_arrays(x, np.arange(4))
    assert net.forward()["label"].tolist() == [0, 1]
    out = net.forward()
    np.testing.assert_array_equal(out["data"], x[2:])
    assert net.forward()["label"].tolist() == [0, 1]
    with pytest.raises(DataError, match="multiple of the batch size"):
        m.set_input_arrays(x[:3], np.arange(3))
    with pytest.raises(DataError, match="expected"):
        m.set_input_arrays(np.zeros((2, 3, 2, 2)), np.arange(2))


def test_prefetcher_errors_propagate_and_threads_stop():
    class Src:
        def batch(self, k):
            if k == 3:
                raise DataError("broken record 3")
            return [np.full(2, k)]
    p = Prefetcher(Src(), depth=2)
    assert p.get(0)[0][0] == 0 and p.get(1)[0][0] == 1
    assert p.get(5)[0][0] == 5       # seek restarts the thread
    p.close()
    p = Prefetcher(Src(), depth=2)
    p.get(2)
    with pytest.raises(DataError, match="broken record 3"):
        p.get(3)
    p.close()
    assert not [t for t in threading.enumerate() if t.name == "nbcaffe-prefetch" and t.is_alive()]


def test_convert_imageset_and_compute_mean(tmp_path):
    from PIL import Image

    from runner.data.imageset import compute_mean, convert_imageset
    imgs = []
    for i in range(3):
        rgb = np.full((4, 5, 3), (10 * i, 20, 30), np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
        imgs.append(rgb)
    (tmp_path / "list.txt").write_text("0.png 0\n1.png 1\n2.png 2\n")
    assert convert_imageset(str(tmp_path), str(tmp_path / "list.txt"), str(tmp_path / "db")) == 3
    with DBReader(tmp_path / "db") as r:
        assert r.next()[0] == b"00000000_0.png"
    mean = compute_mean(str(tmp_path / "db"))
    assert mean.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(mean[0, :, 0, 0], [30, 20, 10])   # BGR: blue, green, mean red
    convert_imageset(str(tmp_path), str(tmp_path / "list.txt"), str(tmp_path / "enc"), encoded=True,
                     resize_height=2, resize_width=3, gray=True)
    np.testing.assert_allclose(compute_mean(str(tmp_path / "enc")).shape, (1, 1, 2, 3))
    (tmp_path / "bad.txt").write_text("0.png zero\n")
    with pytest.raises(DataError, match="bad.txt:1: label 'zero'"):
        convert_imageset(str(tmp_path), str(tmp_path / "bad.txt"), str(tmp_path / "db3"))
    (tmp_path / "missing.txt").write_text("nope.png 0\n")
    with pytest.raises(DataError, match="nope.png"):
        convert_imageset(str(tmp_path), str(tmp_path / "missing.txt"), str(tmp_path / "db4"))
    assert not (tmp_path / "db4").exists() and not (tmp_path / "db4.tmp").exists()
