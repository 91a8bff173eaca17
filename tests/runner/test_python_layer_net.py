"""runner's side of Python layers (runner/layers/python.py) and of pycaffe's Blob accessors:
a Python layer is set up once, while the graph is built, on the very blobs the Net keeps;
its parameter blobs are the Net's params; nbcaffe inspect shows its shapes; Blob's legacy
num/channels/height/width and reshape(*dims)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from runner import Net
from runner.backend import get_backend
from runner.blob import Blob
from runner.cli import main

MODULE = '''
import numpy as np
from runner.layers.python import PyLayer

CALLS = []


class Affine(PyLayer):
    """top = bottom * w + 1 with w a learnable (C,) blob; records its setup calls."""

    def setup(self, bottom, top):
        CALLS.append(("setup", [b.shape for b in bottom], id(bottom[0])))
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = 2.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data + 1
'''


@pytest.fixture
def py_net(tmp_path):
    (tmp_path / "affine_mod.py").write_text(MODULE)
    (tmp_path / "net.prototxt").write_text(textwrap.dedent('''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "aff" type: "Python" bottom: "x" top: "y"
                python_param { module: "affine_mod" layer: "Affine" } }
        layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
        '''))
    return tmp_path / "net.prototxt"


def test_python_layer_is_set_up_once_on_the_nets_blobs(py_net):
    net = Net(str(py_net))
    import affine_mod
    assert [c[:2] for c in affine_mod.CALLS] == [("setup", [(2, 3)])]
    assert affine_mod.CALLS[0][2] == id(net.blobs["x"])          # the Net's own bottom blob
    assert net.graph.blob_shapes["y"] == (2, 3) and net.params["aff"][0].shape == (3,)
    assert [p.name for p in net.learnable_params] == ["aff[0]"]
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    np.testing.assert_array_equal(net.forward(x=x)["y"], np.maximum(x * 2 + 1, 0))
    Net(str(py_net))
    assert len(affine_mod.CALLS) == 2                            # once per net


def test_inspect_sets_python_layers_up(py_net, capsys):
    assert main(["inspect", str(py_net)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("aff "))
    assert row.split()[:5] == ["aff", "Python", "x", "->", "y"] and "2x3" in row
    assert row.split()[-2] == "3"                                 # its parameter count


def test_blob_legacy_accessors_and_varargs_reshape():
    b = Blob(get_backend("cpu"), (2, 3, 4, 5), "b")
    assert (b.num, b.channels, b.height, b.width) == (2, 3, 4, 5)
    b.reshape(6, 7)
    assert b.shape == (6, 7) and (b.num, b.channels, b.height, b.width) == (6, 7, 1, 1)
    b.reshape([1, 2, 3])
    assert b.shape == (1, 2, 3)
    b.reshape((4,))
    assert b.shape == (4,)
    b.reshape(1, 1, 1, 1, 2)
    with pytest.raises(ValueError, match="at most 4 axes"):
        _ = b.num
