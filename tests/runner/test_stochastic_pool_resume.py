"""A solver run through STOCHASTIC pooling resumes bit for bit: the layer's Philox stream is a
counter the solver restores from the iteration, as Dropout's (tests/runner/test_solver.py's tiny
LMDB and helpers)."""
from __future__ import annotations

import os

import numpy as np

from tests.runner.test_solver import SOLVER, make_db, run, weights

NET = """
name: "sto"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "tiny_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "tiny_lmdb" batch_size: 8 backend: LMDB } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_resume_through_stochastic_pooling_is_bit_exact(tmp_path, monkeypatch):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER.format(
        test_interval=15, lr=0.1, momentum=0.9, display=10, max_iter=30, snapshot=15, type="SGD",
        iter_size=1, more=""))
    straight, _ = run("solver.prototxt")
    want = weights(straight)
    os.rename("snap/tiny_iter_30.caffemodel", "straight.caffemodel")
    resumed, _ = run("solver.prototxt", resume="snap/tiny_iter_15.solverstate")
    for name, w in weights(resumed).items():
        np.testing.assert_array_equal(w, want[name], err_msg=name)
