"""The nbcaffe verbs end to end through runner.cli.main (Caffe's flag spellings), on a tiny net."""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from runner.cli import main
from tests.runner.test_solver import make_db, write


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_test_time_and_plot(workdir, capsys):
    solver = write(workdir, max_iter=20, snapshot=10)
    assert main(["train", "-solver", solver, "-gpu", "-1", "--log", "train.log"]) == 0
    err = capsys.readouterr().err
    assert "Starting Optimization" in err and "Optimization Done." in err
    assert os.path.exists("snap/tiny_iter_20.caffemodel")
    # resume from a snapshot (Caffe's -snapshot)
    assert main(["train", "-solver", solver, "-snapshot", "snap/tiny_iter_10.solverstate"]) == 0
    assert "Resuming from snap/tiny_iter_10.solverstate" in capsys.readouterr().err
    # fine-tune from weights (comma-separated list)
    assert main(["train", "-solver", solver, "-weights",
                 "snap/tiny_iter_10.caffemodel,snap/tiny_iter_20.caffemodel", "--max-iter", "2"]) == 0
    assert "Finetuning from snap/tiny_iter_20.caffemodel" in capsys.readouterr().err
    assert main(["train", "-solver", solver, "-weights", "a", "-snapshot", "b"]) == 1
    assert "not both" in capsys.readouterr().err

    assert main(["test", "-model", "net.prototxt", "-weights", "snap/tiny_iter_20.caffemodel",
                 "-iterations", "3"]) == 0
    err = capsys.readouterr().err
    assert "Batch 2, accuracy = " in err and "] Loss: " in err and "] accuracy = " in err
    assert "] loss = " in err and " (* 1 = " in err

    assert main(["time", "-model", "net.prototxt", "-iterations", "2"]) == 0
    err = capsys.readouterr().err
    for s in ("ip1\tforward: ", "ip1\tbackward: ", "GFLOP/s", "Average Forward pass: ",
              "Average Backward pass: ", "Average Forward-Backward: ", "Total Time: "):
        assert s in err, s
    assert main(["time", "-model", "net.prototxt", "-iterations", "1", "--compare", "cpu",
                 "--batch", "2,3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("batch\tcpu ms") and out[1].startswith("2\t") and out[2].startswith("3\t")
    assert out[0].split("\t") == ["batch", "cpu ms", "cpu s/20 it"]     # Caffe's table's unit too
    _, ms, s20 = out[1].split("\t")
    assert abs(float(s20) - 20 * float(ms) / 1e3) <= 0.006

    assert main(["plot-log", "train.log", "--csv", "parsed"]) == 0
    train = open("parsed.train.csv").read().splitlines()
    test = open("parsed.test.csv").read().splitlines()
    assert train[0].startswith("NumIters,Seconds,LearningRate,loss") and len(train) == 5  # iters 0,5,10,15
    assert "accuracy" in test[0] and len(test) == 4                                       # iters 0,10,20
    try:
        import matplotlib  # noqa: F401
        assert main(["plot-log", "train.log", "-o", "curve.png"]) == 0
        assert os.path.getsize("curve.png") > 1000
    except ImportError:
        assert main(["plot-log", "train.log", "-o", "curve.png"]) == 1
        assert "needs matplotlib" in capsys.readouterr().err


def test_device_query(capsys):
    assert main(["device_query"]) == 0
    out = capsys.readouterr().out
    assert "CPU backend" in out or "Name:" in out


def _write_idx(tmp_path, n):
    imgs = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    with gzip.open(tmp_path / "i.gz", "wb") as f:
        f.write(struct.pack(">iiii", 2051, n, 28, 28) + imgs.tobytes())
    (tmp_path / "l").write_bytes(struct.pack(">ii", 2049, n) + bytes(range(n)))


def test_convert_mnist_compute_mean_and_errors(tmp_path, capsys):
    _write_idx(tmp_path, 5)
    assert main(["convert_mnist", str(tmp_path / "i.gz"), str(tmp_path / "l"), str(tmp_path / "db")]) == 0
    assert "Processed 5 files." in capsys.readouterr().err
    assert main(["compute_mean", str(tmp_path / "db"), str(tmp_path / "mean.binaryproto")]) == 0
    from netdef.weights import read_binaryproto
    assert read_binaryproto(tmp_path / "mean.binaryproto").shape == (1, 1, 28, 28)
    assert main(["convert-mnist", str(tmp_path / "i.gz"), str(tmp_path / "l"), str(tmp_path / "db")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["compute-mean", str(tmp_path / "nodb"), str(tmp_path / "m2")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_data_mnist_offline_fails_clearly(tmp_path, monkeypatch, capsys):
    from runner.data import mnist
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ("http://127.0.0.1:9/",))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "cannot download" in err and "--from" in err
    (tmp_path / "fake").mkdir()
    for name in mnist.MNIST_FILES:
        (tmp_path / "fake" / name).write_bytes(b"not mnist")
    assert main(["data", "mnist", "--from", str(tmp_path / "fake")]) == 1
    assert "does not match the published" in capsys.readouterr().err


def test_data_mnist_from_shared(shared_dir, tmp_path, capsys):
    src = shared_dir / "data" / "mnist"
    if not src.is_dir():
        pytest.skip("no ../shared/data/mnist")
    assert main(["data", "mnist", "--from", str(src), "--out", str(tmp_path)]) == 0
    from runner.data.db import DBReader
    with DBReader(tmp_path / "mnist_test_lmdb") as r:
        assert len(r) == 10000
    assert main(["data", "mnist", "--from", str(src), "--out", str(tmp_path)]) == 0
    assert "exists; keeping it" in capsys.readouterr().err
