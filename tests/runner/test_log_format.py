"""The training log is Caffe's: every line has glog's prefix and Caffe's tools/extra/parse_log.py
logic (runner.solver.parse_log, same regexes) recovers the train and test tables."""
from __future__ import annotations

import re

import numpy as np

from runner.cli import main
from runner.solver.parse_log import parse_log
from tests.runner.test_solver import make_db, write

GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] ")


def test_training_log_parses_like_caffe(tmp_path, monkeypatch, capsys):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    solver = write(tmp_path, max_iter=20, snapshot=0, display=5, test_interval=10,
                   more="average_loss: 3")
    assert main(["train", "-solver", solver, "--log", "train.log"]) == 0
    err = capsys.readouterr().err.splitlines()
    log = (tmp_path / "train.log").read_text().splitlines()
    assert log == [line for line in err if GLOG.match(line)]
    # the multi-line "Initializing solver from parameters" dump keeps the prefix on every line
    assert all(GLOG.match(line) for line in log)
    assert any("] Solving tiny" in line for line in log)
    train, test = parse_log(str(tmp_path / "train.log"))
    assert [r["NumIters"] for r in train] == [0, 5, 10, 15]
    assert [r["NumIters"] for r in test] == [0, 10, 20]
    # Caffe logs "Iteration N, lr = X" after the train outputs of iteration N; parse_log.py's
    # column lags one display behind (NaN first); ours is each row's own iteration's rate
    assert all(isinstance(r["NumIters"], int) for r in train + test)
    for r in train:
        expect = 0.1 * (1 + 0.0001 * r["NumIters"]) ** -0.75
        assert abs(r["LearningRate"] - expect) < 1e-6 * expect + 1e-9
    assert all(np.isfinite(r["LearningRate"]) for r in test)
    assert all(np.isfinite(r["loss"]) and r["Seconds"] >= 0 for r in train)
    assert all({"accuracy", "loss"} <= set(r) for r in test)
    assert [r["Seconds"] for r in train] == sorted(r["Seconds"] for r in train)
    lines = [line for line in log if "), loss = " in line]
    assert re.search(r"Iteration 5 \([\d.e+-]+ iter/s, [\d.e+-]+s/5 iters\), loss = [\d.e+-]+$", lines[1])
