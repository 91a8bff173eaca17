"""``nbcaffe inspect`` and ``nbcaffe draw``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from proto import caffe_pb2 as pb
from runner.cli import main


def _write_lmdb(path, chw, n=3):
    lmdb = pytest.importorskip("lmdb")
    path.mkdir(parents=True)
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(n):
            d = pb.Datum(channels=chw[0], height=chw[1], width=chw[2], label=i,
                         data=bytes(int(np.prod(chw))))
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()


def test_inspect_deploy_table_and_json(caffe_models, capsys):
    assert main(["inspect", str(caffe_models / "lenet_deploy.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "64x20x24x24" in out and "431,080" in out and "total" in out
    assert main(["inspect", str(caffe_models / "bvlc_googlenet_deploy.prototxt"), "--json",
                 "--input-shape", "data=1,3,224,224"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["layers"][0]) >= {"name", "type", "bottoms", "tops", "top_shapes", "params",
                                     "flops"}
    by = {r["name"]: r for r in doc["layers"]}
    assert by["inception_5b/output"]["top_shapes"] == [[1, 1024, 7, 7]]
    assert by["loss3/classifier"]["params"] == 1024 * 1000 + 1000
    assert doc["totals"]["params"] == sum(r["params"] for r in doc["layers"])
    assert doc["totals"]["flops"] == sum(r["flops"] for r in doc["layers"])
    assert doc["outputs"] == ["prob"]


def test_inspect_solver_reads_first_datum_of_lmdb(caffe_models, tmp_path, monkeypatch, capsys):
    solver = caffe_models / "lenet_solver.prototxt"
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", str(solver)]) == 1
    err = capsys.readouterr().err
    assert "nbcaffe: error:" in err and "mnist_train_lmdb" in err and "--input-shape" in err
    _write_lmdb(tmp_path / "examples/mnist/mnist_train_lmdb", (1, 28, 28))
    _write_lmdb(tmp_path / "examples/mnist/mnist_test_lmdb", (1, 28, 28))
    assert main(["inspect", str(solver), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["phase"] == "TRAIN"
    assert doc["layers"][0]["top_shapes"] == [[64, 1, 28, 28], [64]]
    assert main(["inspect", str(solver), "--phase", "TEST", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["phase"] == "TEST" and doc["layers"][0]["top_shapes"] == [[100, 1, 28, 28], [100]]
    assert any(r["type"] == "Accuracy" for r in doc["layers"])


def test_inspect_with_weights(shared_dir, caffe_models, capsys):
    w = shared_dir / "data" / "lenet-caffe" / "ethereon_lenet_iter_10000.caffemodel"
    if not w.exists():
        pytest.skip(f"{w} not present")
    assert main(["inspect", str(caffe_models / "lenet_deploy.prototxt"), "--weights", str(w)]) == 0
    assert "loaded 4 layer(s): conv1, conv2, ip1, ip2" in capsys.readouterr().out
    assert main(["inspect", str(caffe_models / "cifar10_quick_deploy.prototxt"), "--weights",
                 str(w)]) == 1
    assert "conv1" in capsys.readouterr().err


def test_inspect_errors(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "a" type: "ReLU"\n  bottom: "x" \n')
    assert main(["inspect", str(bad)]) == 1
    assert f"{bad}:2:11: Expected" in capsys.readouterr().err
    unk = tmp_path / "unk.prototxt"
    unk.write_text('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
                   'layer { name: "odd" type: "Fancy" bottom: "x" top: "y" }')
    assert main(["inspect", str(unk)]) == 1
    err = capsys.readouterr().err
    assert "'odd'" in err and "'Fancy'" in err and "Convolution" in err
    assert main(["inspect", str(unk), "--input-shape", "x=1,a"]) == 1
    assert "--input-shape" in capsys.readouterr().err


def test_draw(caffe_models, tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["draw", str(caffe_models / "lenet_train_test.prototxt"), "--phase", "TEST",
                 "--input-shape", "data=100,1,28,28", "-o", str(out)]) == 0
    dot = out.read_text()
    assert dot.startswith('digraph "LeNet"') and dot.rstrip().endswith("}")
    assert "rankdir=LR;" in dot                       # draw_net.py's default
    assert dot.count("shape=record") == 10  # 10 Caffe layers of the TEST phase, no Splits
    assert "(Convolution)" in dot and "shape=octagon" in dot and "100 x 20 x 24 x 24" in dot
    assert "Batch 100" in dot                          # draw.py's edge label out of a Data layer
    assert not (tmp_path / "g.dot.tmp").exists()
    assert main(["draw", str(caffe_models / "lenet_deploy.prototxt")]) == 0
    assert "->" in capsys.readouterr().out


def test_inspect_reads_hdf5_and_image_list_sources(tmp_path, capsys, monkeypatch):
    h5py = pytest.importorskip("h5py")
    from PIL import Image
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("data", data=np.zeros((7, 4), np.float32))
        f.create_dataset("label", data=np.zeros((7,), np.float32))
    (tmp_path / "train.txt").write_text("train.h5\n")
    Image.new("RGB", (20, 12)).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text("a.png 0\n")
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "h" type: "HDF5Data" top: "data" top: "label" '
        'hdf5_data_param { source: "train.txt" batch_size: 5 } }\n'
        'layer { name: "img" type: "ImageData" top: "im" top: "l2" '
        'image_data_param { source: "list.txt" batch_size: 2 } transform_param { crop_size: 10 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 3 } }\n')
    monkeypatch.chdir(tmp_path.parent)
    assert main(["inspect", str(net), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by = {r["name"]: r for r in doc["layers"]}
    assert by["h"]["top_shapes"] == [[5, 4], [5]]
    assert by["img"]["top_shapes"] == [[2, 3, 10, 10], [2]]
    assert by["ip"]["params"] == 3 * 4 + 3
    # a source the Net would not find (only its basename is beside the prototxt) is refused too
    net.write_text(net.read_text().replace('"train.txt"', '"elsewhere/train.txt"'))
    assert main(["inspect", str(net)]) == 1
    assert "elsewhere/train.txt', which was not found" in capsys.readouterr().err


def test_inspect_solver_test_nets_and_stages(caffe_models, capsys):
    solver = str(caffe_models / "lenet_consolidated_solver.prototxt")
    shape = ["--input-shape", "data=100,1,28,28"]
    assert main(["inspect", solver, "--phase", "TEST", "--test-net", "1", "--json"] + shape) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stages"] == ["test-on-train-set"]
    assert main(["inspect", solver, "--phase", "TEST", "--test-net", "2"] + shape) == 1
    assert "out of range (2 test nets)" in capsys.readouterr().err
    net = str(caffe_models / "mnist_autoencoder.prototxt")
    assert main(["inspect", net, "--phase", "TEST", "--stage", "test-on-test",
                 "--input-shape", "data=100,1,28,28", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stages"] == ["test-on-test"] and doc["layers"][0]["type"] == "Data"
    assert main(["inspect", net, "--phase", "TEST", "--input-shape", "data=1,1,28,28"]) == 1
    assert "unknown bottom blob 'data'" in capsys.readouterr().err  # no TEST data without a stage
