"""Caffe's remaining tools in the CLI: extract_features (LMDB read back with py-lmdb and
protobuf, features recomputed with numpy), the three upgrade tools (the upgraded V1 LeNet
weights checked with OpenCV's Caffe importer, which reads V1 files itself), gflags boolean
spellings, compute_image_mean with and without OUT."""
from __future__ import annotations

import textwrap

import lmdb
import numpy as np
import pytest
from google.protobuf import text_format

from proto import caffe_pb2 as pb
from runner import Net
from runner.cli import main, normalize_argv
from tests.runner.test_solver import make_db

FEATURE_NET = """
name: "feat"
layer { name: "d" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 } data_param { source: "tiny_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
"""


def _records(path) -> list[tuple[bytes, pb.Datum]]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        out = [(k, pb.Datum.FromString(v)) for k, v in txn.cursor()]
    env.close()
    return out


def test_extract_features_writes_caffe_lmdbs(tmp_path, monkeypatch, capsys):
    make_db(tmp_path / "tiny_lmdb", n=10)
    (tmp_path / "feat.prototxt").write_text(FEATURE_NET)
    monkeypatch.chdir(tmp_path)
    source = _records(tmp_path / "tiny_lmdb")
    images = [np.frombuffer(d.data, np.uint8).astype(np.float64) * 0.00390625 for _, d in source]
    net = Net("feat.prototxt", seed=1)
    net.save("w.caffemodel")
    w, b = (p.data.astype(np.float64) for p in net.params["ip"])
    net.layers[0].close()
    assert main(["extract_features", "w.caffemodel", "feat.prototxt", "ip,data", "f_ip,f_data", "3",
                 "lmdb"]) == 0
    assert "Successfully extracted the features!" in capsys.readouterr().err
    feats, data = _records(tmp_path / "f_ip"), _records(tmp_path / "f_data")
    assert [k for k, _ in feats] == [b"%010d" % i for i in range(12)]     # 3 batches of 4
    for i, ((_, f), (_, d)) in enumerate(zip(feats, data)):
        x = images[i % 10]                                                # the source wraps
        assert (f.channels, f.height, f.width) == (5, 1, 1) and not f.HasField("label")
        np.testing.assert_allclose(f.float_data, x @ w.T + b, rtol=1e-5, atol=1e-5)
        assert (d.channels, d.height, d.width) == (1, 6, 6)
        np.testing.assert_allclose(d.float_data, x, rtol=1e-6)
    assert main(["extract_features", "w.caffemodel", "feat.prototxt", "ip", "a,b", "1", "lmdb"]) == 1
    assert "one database per blob" in capsys.readouterr().err
    assert main(["extract_features", "w.caffemodel", "feat.prototxt", "nope", "c", "1", "lmdb"]) == 1
    assert "Unknown feature blob name nope" in capsys.readouterr().err
    assert main(["extract_features", "w.caffemodel", "feat.prototxt", "ip", "f_ip", "1", "lmdb"]) == 1
    assert "already exists" in capsys.readouterr().err


V1_NET = textwrap.dedent("""
    name: "old"
    input: "data"
    input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
    layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2
             convolution_param { num_output: 2 kernel_size: 3 } }
    layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
    """)


def test_upgrade_net_proto_text_and_solver(tmp_path, capsys):
    (tmp_path / "old.prototxt").write_text(V1_NET)
    assert main(["upgrade_net_proto_text", str(tmp_path / "old.prototxt"),
                 str(tmp_path / "new.prototxt")]) == 0
    assert "Wrote upgraded NetParameter text proto" in capsys.readouterr().err
    new = text_format.Parse((tmp_path / "new.prototxt").read_text(), pb.NetParameter())
    assert not len(new.layers) and [lp.type for lp in new.layer] == ["Input", "Convolution", "ReLU"]
    assert [p.lr_mult for p in new.layer[1].param] == [1, 2]
    assert list(new.layer[0].input_param.shape[0].dim) == [1, 1, 4, 4]
    assert main(["upgrade_net_proto_text", str(tmp_path / "new.prototxt"),
                 str(tmp_path / "same.prototxt")]) == 0
    assert "File already in latest proto format" in capsys.readouterr().err
    assert (tmp_path / "same.prototxt").read_text() == (tmp_path / "new.prototxt").read_text()

    (tmp_path / "old_solver.prototxt").write_text('net: "x.prototxt"\nbase_lr: 0.01\nsolver_type: ADAM\n')
    assert main(["upgrade_solver_proto_text", str(tmp_path / "old_solver.prototxt"),
                 str(tmp_path / "solver.prototxt")]) == 0
    s = text_format.Parse((tmp_path / "solver.prototxt").read_text(), pb.SolverParameter())
    assert s.type == "Adam" and not s.HasField("solver_type") and s.net == "x.prototxt"
    assert main(["upgrade_net_proto_text", str(tmp_path / "missing.prototxt"), "out"]) == 1


def test_upgrade_net_proto_binary_keeps_lenet_working(tmp_path, shared_dir, caffe_models):
    cv2 = pytest.importorskip("cv2")
    old = shared_dir / "data" / "lenet-caffe" / "everpeace_lenet_iter_10000.caffemodel"   # V1
    if not old.is_file():
        pytest.skip(f"{old} not present")
    new = tmp_path / "lenet_v2.caffemodel"
    assert main(["upgrade_net_proto_binary", str(old), str(new)]) == 0
    msg = pb.NetParameter.FromString(new.read_bytes())
    assert not len(msg.layers) and len(msg.layer) and msg.layer[1].type == "Convolution"
    deploy = str(caffe_models / "lenet_deploy.prototxt")
    x = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
    outs = []
    for weights in (old, new):
        ocv = cv2.dnn.readNetFromCaffe(deploy, str(weights))
        ocv.setInput(x)
        outs.append(ocv.forward())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_gflags_boolean_spellings():
    flags = frozenset({"shuffle", "gray", "check-size"})
    assert normalize_argv(["-shuffle=true", "-gray=false", "root/", "list", "db"], flags) == \
        ["--shuffle", "root/", "list", "db"]
    assert normalize_argv(["--shuffle", "-noshuffle", "-check_size=1", "-gray"], flags) == \
        ["--check-size", "--gray"]
    assert normalize_argv(["-gray=no", "-gray=T", "-backend", "lmdb"], flags) == \
        ["--gray", "--backend", "lmdb"]


def test_convert_imageset_with_gflags_booleans_and_compute_image_mean(tmp_path, capsys):
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((4, 5, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i}\n" for i in range(3)))
    assert main(["convert_imageset", "-gray=true", "-shuffle=false", str(tmp_path) + "/",
                 str(tmp_path / "list.txt"), str(tmp_path / "db")]) == 0
    records = _records(tmp_path / "db")
    assert [k for k, _ in records] == [b"00000000_0.png", b"00000001_1.png", b"00000002_2.png"]
    assert all(d.channels == 1 for _, d in records)
    capsys.readouterr()
    assert main(["compute_image_mean", str(tmp_path / "db")]) == 0       # OUT optional
    err = capsys.readouterr().err
    assert "mean_value channel [0]: 40" in err and "Write to" not in err
    assert main(["compute_image_mean", "-backend=lmdb", str(tmp_path / "db"),
                 str(tmp_path / "mean.binaryproto")]) == 0
    blob = pb.BlobProto.FromString((tmp_path / "mean.binaryproto").read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 1, 4, 5)
    np.testing.assert_allclose(blob.data, 40.0)
