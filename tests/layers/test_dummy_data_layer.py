import numpy as np

from runner import Net

PROTO = """
name: "dd"
layer { name: "dd" type: "DummyData" top: "a" top: "b"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 4 }
    data_filler { type: "constant" value: 1.5 } data_filler { type: "gaussian" std: 2 } } }
layer { name: "legacy" type: "DummyData" top: "c" dummy_data_param { num: 1 channels: 2 height: 3 width: 4 } }
"""


def test_shapes_fillers_and_refill():
    net = Net(PROTO, seed=3)
    out = net.forward()
    assert out["a"].shape == (2, 3) and (out["a"] == 1.5).all()
    assert out["c"].shape == (1, 2, 3, 4) and not out["c"].any()
    b1 = out["b"]
    b2 = net.forward()["b"]
    assert b1.shape == (4,) and not np.array_equal(b1, b2)   # gaussian refills every forward
    again = Net(PROTO, seed=3).forward()["b"]
    np.testing.assert_array_equal(again, b1)                  # same seed, same draws
