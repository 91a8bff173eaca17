"""Weight files: caffemodel / binaryproto / solverstate round trips, Caffe's copy rules, and
clear WeightsErrors for truncated or foreign files."""
from __future__ import annotations

import numpy as np
import pytest

from netdef.errors import WeightsError
from netdef.graph import build_graph
from netdef.prototxt import read_net
from netdef.weights import (
    array_to_blob,
    caffemodel_blobs,
    copy_trained_layers,
    read_binaryproto,
    read_caffemodel,
    read_solverstate,
    shape_equals,
    write_binaryproto,
    write_caffemodel,
    write_solverstate,
)
from proto import caffe_pb2 as pb

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 4 } }
"""


@pytest.fixture()
def graph():
    return build_graph(read_net(NET))


def _weights(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {n.name: (n.type, [rng.standard_normal(s).astype(np.float32) for s in n.param_shapes])
            for n in graph.layers if n.param_shapes}


def test_caffemodel_round_trip_with_definition(tmp_path, graph):
    w = _weights(graph)
    path = tmp_path / "m.caffemodel"
    write_caffemodel(path, w, read_net(NET))
    assert not (tmp_path / "m.caffemodel.tmp").exists()
    net = read_caffemodel(path)
    assert [lp.name for lp in net.layer] == ["data", "conv", "relu", "ip"]
    conv = net.layer[1]
    assert conv.convolution_param.num_output == 3 and conv.type == "Convolution"  # full param
    back = caffemodel_blobs(net)
    assert sorted(back) == ["conv", "ip"] and back["conv"][0] == "Convolution"
    for name, (_, arrays) in w.items():
        for a, b in zip(arrays, back[name][1]):
            np.testing.assert_array_equal(a, b)
    copied = copy_trained_layers(graph, path)
    np.testing.assert_array_equal(copied["ip"][0], w["ip"][1][0])


def test_copy_accepts_legacy_4d_blobs(graph):
    w = _weights(graph)
    net = pb.NetParameter()
    for name, (t, arrays) in w.items():
        lp = net.layer.add(name=name, type=t)
        for a in arrays:
            lp.blobs.add().CopyFrom(array_to_blob(a, legacy_4d=True))
    net.layer.add(name="extra_in_file", type="ReLU")
    copied = copy_trained_layers(graph, net)
    assert copied["ip"][1].shape == (4,)  # legacy (1, 1, 1, 4) read into shape (4,)
    np.testing.assert_array_equal(copied["ip"][0], w["ip"][1][0])
    blob = array_to_blob(np.zeros((4, 27)), legacy_4d=True)
    assert shape_equals((4, 27), blob) and shape_equals((1, 4, 27), blob)
    assert not shape_equals((27, 4), blob) and not shape_equals((1, 1, 1, 4, 27), blob)


def test_copy_skips_unknown_layers_and_checks_shapes(graph):
    w = _weights(graph)
    net = pb.NetParameter()
    for name, (t, arrays) in w.items():
        lp = net.layer.add(name=name, type=t)
        for a in arrays:
            lp.blobs.add().CopyFrom(array_to_blob(a))
    net.layer.add(name="old_fc", type="InnerProduct").blobs.add().CopyFrom(
        array_to_blob(np.zeros(3)))
    copied = copy_trained_layers(graph, net)
    assert "old_fc" not in copied and copied.ignored == ["old_fc"] and copied.fresh == []
    bad = pb.NetParameter()
    bad.CopyFrom(net)
    bad.layer[0].blobs[0].CopyFrom(array_to_blob(np.zeros((3, 1, 5, 5))))
    with pytest.raises(WeightsError, match=r"layer 'conv'.*Source param shape is \(3, 1, 5, 5\); "
                                           r"target param shape is \(3, 1, 3, 3\)"):
        copy_trained_layers(graph, bad)
    del bad.layer[0].blobs[1:]
    with pytest.raises(WeightsError, match="number of blobs for layer 'conv'.*1.*2"):
        copy_trained_layers(graph, bad)


def test_v1_caffemodel_is_upgraded(tmp_path, graph):
    w = _weights(graph)
    net = pb.NetParameter(name="old")
    for name, (_, arrays) in w.items():
        v1 = net.layers.add(name=name, type=pb.V1LayerParameter.CONVOLUTION if name == "conv"
                            else pb.V1LayerParameter.INNER_PRODUCT)
        for a in arrays:
            v1.blobs.add().CopyFrom(array_to_blob(a, legacy_4d=True))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(net.SerializeToString())
    up = read_caffemodel(path)
    assert [lp.type for lp in up.layer] == ["Convolution", "InnerProduct"]
    np.testing.assert_array_equal(copy_trained_layers(graph, path)["conv"][0], w["conv"][1][0])


def test_binaryproto_and_solverstate(tmp_path):
    mean = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    write_binaryproto(tmp_path / "mean.binaryproto", mean[0], legacy_4d=True)
    got = read_binaryproto(tmp_path / "mean.binaryproto")
    assert got.shape == (1, 2, 3, 4) and np.array_equal(got, mean)
    write_binaryproto(tmp_path / "v.binaryproto", mean[0])
    assert read_binaryproto(tmp_path / "v.binaryproto").shape == (2, 3, 4)
    hist = [np.ones((3, 2), np.float32), np.zeros(5, np.float32)]
    write_solverstate(tmp_path / "s.solverstate", 500, "lenet_iter_500.caffemodel", hist, 2)
    st = read_solverstate(tmp_path / "s.solverstate")
    assert (st.iter, st.learned_net, st.current_step) == (500, "lenet_iter_500.caffemodel", 2)
    assert [h.shape for h in st.history] == [(3, 2), (5,)] and st.history[0].sum() == 6
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_weight_files(tmp_path, graph):
    w = _weights(graph)
    good = tmp_path / "good.caffemodel"
    write_caffemodel(good, w, read_net(NET))
    data = good.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(WeightsError, match="cut.caffemodel.*truncated or corrupt"):
        read_caffemodel(cut)
    png = tmp_path / "cat.caffemodel"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(WeightsError, match="cat.caffemodel: not a caffemodel.*PNG image"):
        read_caffemodel(png)
    txt = tmp_path / "net.caffemodel"
    txt.write_text(NET.lstrip())
    with pytest.raises(WeightsError, match="text file"):
        read_caffemodel(txt)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="no layers"):
        read_caffemodel(empty)
    with pytest.raises(WeightsError, match="no such"):
        read_caffemodel(tmp_path / "absent.caffemodel")
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        read_binaryproto(cut)
    bogus = tmp_path / "count.binaryproto"
    blob = pb.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1.0] * 5)
    bogus.write_bytes(blob.SerializeToString())
    with pytest.raises(WeightsError, match=r"shape \(2, 3\) needs 6 values but the blob holds 5"):
        read_binaryproto(bogus)
    with pytest.raises(WeightsError, match="solverstate"):
        read_solverstate(empty)


def test_caffe_lenet_v1_file_truncated(shared_dir, tmp_path):
    src = shared_dir / "data" / "lenet-caffe" / "everpeace_lenet_iter_5000.caffemodel"
    if not src.exists():
        pytest.skip(f"{src} not present")
    data = src.read_bytes()
    for frac in (0.1, 0.5, 0.99):
        p = tmp_path / f"t{frac}.caffemodel"
        p.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(WeightsError, match=str(p)):
            read_caffemodel(p)


def test_hdf5_caffemodel(tmp_path, graph):
    h5py = pytest.importorskip("h5py")
    w = _weights(graph)
    path = tmp_path / "snap.caffemodel.h5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name, (_, arrays) in w.items():
            g = data.create_group(name)
            for i, a in enumerate(arrays):
                g.create_dataset(str(i), data=a)
        data.create_group("relu")
    copied = copy_trained_layers(graph, path)
    np.testing.assert_array_equal(copied["conv"][0], w["conv"][1][0])
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="no /data group"):
        read_caffemodel(tmp_path / "other.h5")


def test_corrupted_caffe_weights_raise_only_weights_errors(shared_dir, tmp_path, caffe_models):
    """Byte flips, cuts and insertions in real Caffe weight files (V2 and V1): copying into the
    LeNet graph either works or raises WeightsError."""
    files = sorted((shared_dir / "data" / "lenet-caffe").glob("*.caffemodel"))
    if not files:
        pytest.skip("Caffe-trained LeNet weights not present")
    g = build_graph(read_net(caffe_models / "lenet_deploy.prototxt"))
    sources = [f.read_bytes() for f in files[:2]]
    rng = np.random.default_rng(1234)
    p = tmp_path / "mutant.caffemodel"
    for i in range(30):
        d = bytearray(sources[i % 2])
        op = i % 3
        if op == 0:
            for _ in range(int(rng.integers(1, 20))):
                d[int(rng.integers(len(d)))] = int(rng.integers(256))
        elif op == 1:
            del d[int(rng.integers(len(d))):]
        else:
            a = int(rng.integers(min(len(d), 3000)))
            d[a:a] = bytes(rng.integers(0, 256, int(rng.integers(1, 50)), dtype=np.uint8))
        p.write_bytes(bytes(d))
        try:
            copy_trained_layers(g, p)
        except WeightsError:
            pass
