"""Benchmark nets: Caffe's prototxts from ``bench/nets/`` with synthetic inputs.

``synthetic_net(name, batch)`` reads ``bench/nets/<file>``, drops its ``Data`` layers (they read LMDBs
that the GPU machine does not have) and puts one ``Input`` layer first that gives ``data`` (the
shape the Data layer would have produced: batch x C x crop x crop) and ``label`` (batch). Optionally
every Dropout's ratio is replaced (the validation run uses 0 so that both frameworks compute the same
function). The result is written to a temporary ``.prototxt`` that ``runner.Net`` reads.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

NETS_DIR = Path(__file__).resolve().parent / "nets"

# name -> (file, data shape without the batch, default batch)
NETS: dict[str, tuple[str, tuple[int, int, int], int]] = {
    "lenet": ("lenet_train_test.prototxt", (1, 28, 28), 64),
    "alexnet": ("bvlc_alexnet_train_val.prototxt", (3, 227, 227), 256),
}


def load_param(name: str):
    """The unmodified NetParameter of benchmark net ``name`` (``"lenet"`` or ``"alexnet"``)."""
    from google.protobuf import text_format

    from proto import caffe_pb2
    path = NETS_DIR / NETS[name][0]
    return text_format.Parse(path.read_text(), caffe_pb2.NetParameter())


def synthetic_param(name: str, batch: int, dropout_ratio: float | None = None):
    """NetParameter of net ``name`` with its Data layers replaced by one Input layer (tops ``data``
    of shape (batch, C, H, W) and ``label`` of shape (batch,)); Dropout ratios replaced by
    ``dropout_ratio`` when given."""
    from proto import caffe_pb2
    src = load_param(name)
    chw = NETS[name][1]
    out = caffe_pb2.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    inp = out.layer.add()
    inp.name = "data"
    inp.type = "Input"
    inp.top.extend(["data", "label"])
    inp.input_param.shape.add().dim.extend([batch, *chw])
    inp.input_param.shape.add().dim.extend([batch])
    for layer in src.layer:
        if layer.type == "Data":
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        if dropout_ratio is not None and new.type == "Dropout":
            new.dropout_param.dropout_ratio = dropout_ratio
    return out


def synthetic_net(name: str, batch: int, dropout_ratio: float | None = None,
                  directory: str | None = None) -> Path:
    """Write ``synthetic_param(...)`` as text to a new file (in ``directory`` or the system temp dir)
    and return its path."""
    from google.protobuf import text_format
    param = synthetic_param(name, batch, dropout_ratio)
    fd, tmp = tempfile.mkstemp(prefix=f"bench_{name}_b{batch}_", suffix=".prototxt.tmp", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text_format.MessageToString(param))
    final = tmp[: -len(".tmp")]
    os.replace(tmp, final)
    return Path(final)
