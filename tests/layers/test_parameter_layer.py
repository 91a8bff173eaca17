"""Parameter: a zero-initialized learned blob of parameter_param.shape exposed as the top (shared
data and diff, so the consumer's gradient lands in the parameter's diff), its .caffemodel round
trip, any shape (hypothesis), and cpu-vs-cuda parity. OpenCV's Caffe importer has no Parameter layer."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from runner import Net
from tests.helpers import assert_close
from tests.layers._parity import check_parity

NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "L" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "p" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }
"""


def test_zero_init_shared_top_and_gradient():
    net = Net(NET, phase="TRAIN")
    blob = net.params["L"][0]
    assert blob.shape == (2, 3) and not blob.data.any()
    blob.data = np.arange(6).reshape(2, 3)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    net.forward(x=x, t=t)
    np.testing.assert_array_equal(net.blobs["p"].data, np.arange(6).reshape(2, 3))
    net.clear_param_diffs()
    net.backward()
    # EuclideanLoss: d/dp of sum((x + p - t)^2) / (2N) = (x + p - t) / N
    assert_close(blob.diff, (x + np.arange(6).reshape(2, 3) - t) / 2, 1e-6, 1e-6)


def test_caffemodel_round_trip(tmp_path):
    net = Net(NET)
    net.params["L"][0].data = np.full((2, 3), 1.5)
    net.save(tmp_path / "p.caffemodel")
    other = Net(NET, weights=str(tmp_path / "p.caffemodel"))
    out = other.forward(x=np.zeros((2, 3)), t=np.zeros((2, 3)), blobs=["p"])
    np.testing.assert_array_equal(out["p"], 1.5)


def test_parity():
    body = ('layer { name: "L" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "p" top: "s" }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }\n')
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((2, 3)).astype(np.float32),
            "t": rng.standard_normal((2, 3)).astype(np.float32)}
    check_parity(body, {"x": (2, 3), "t": (2, 3)}, feed, force_backward=False)


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=4), seed=st.integers(0, 2**31 - 1))
def test_any_shape_shares_data_and_diff(shape, seed):
    dims = " ".join(f"dim: {d}" for d in shape)
    net = Net(f'layer {{ name: "L" type: "Parameter" top: "p" parameter_param {{ shape {{ {dims} }} }} }}',
              phase="TRAIN")
    blob = net.params["L"][0]
    assert blob.shape == tuple(shape) and net.blobs["p"].shape == tuple(shape)
    values = np.random.default_rng(seed).standard_normal(shape)
    blob.data = values
    np.testing.assert_array_equal(net.forward()["p"], values.astype(np.float32))
    net.blobs["p"].diff = values * 2                 # what a consumer would write
    np.testing.assert_array_equal(blob.diff, (values * 2).astype(np.float32))
