import numpy as np
import pytest

from netdef.errors import ShapeError
from runner import Net

PROTO = """
name: "in"
layer { name: "data" type: "Input" top: "data" top: "aux"
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } shape { dim: 2 dim: 5 } } }
layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }
"""


def test_input_shapes_and_batch_reshape():
    net = Net(PROTO)
    assert net.inputs == ["data", "aux"]
    assert net.blobs["data"].shape == (2, 3, 4, 4) and net.blobs["aux"].shape == (2, 5)
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    out = net.forward(data=x)
    assert out["r"].shape == (5, 3, 4, 4)
    np.testing.assert_array_equal(out["r"], np.maximum(x, 0))


def test_other_dims_mismatch_names_blob_and_shapes():
    net = Net(PROTO)
    with pytest.raises(ShapeError, match=r"'data'.*\(1, 3, 5, 4\).*\(2, 3, 4, 4\)"):
        net.forward(data=np.zeros((1, 3, 5, 4), np.float32))
