import numpy as np

from proto import caffe_pb2 as pb
from runner.backend import get_backend
from runner.blob import Blob
from runner.registry import get_layer_class


def test_backward_zeroes_bottom_diffs():
    lp = pb.LayerParameter(name="s", type="Silence", bottom=["x", "y"])
    be = get_backend("cpu")
    b = [Blob(be, (2, 3), "x"), Blob(be, (4,), "y")]
    layer = get_layer_class("Silence")(lp, be)
    layer.setup(b, [])
    layer.reshape(b, [])
    for blob in b:
        blob.diff = np.ones(blob.shape)
    layer.forward(b, [])
    layer.backward([], [True, False], b)
    assert not b[0].diff.any() and b[1].diff.all()
