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


# dry run (simulator): the same layer structure, shrunk: (input C, H, W), widths divided by this
SHRINK: dict[str, tuple[tuple[int, int, int], int]] = {
    "lenet": ((1, 16, 16), 5),        # conv 4, 10 channels, ip1 100; the 10 classes kept
    "alexnet": ((3, 67, 67), 32),     # conv1 k11 s4 -> 15x15, ..., pool5 1x1; widths /32, fc 128
}


def synthetic_param(name: str, batch: int, dropout_ratio: float | None = None, shrink: bool = False):
    """NetParameter of net ``name`` with its Data layers replaced by one Input layer (tops ``data``
    of shape (batch, C, H, W) and ``label`` of shape (batch,)); Dropout ratios replaced by
    ``dropout_ratio`` when given. ``shrink`` (the simulator dry run): smaller input and every
    Convolution/InnerProduct width divided by ``SHRINK[name][1]`` (kept divisible by the group), the
    last InnerProduct's (the classes) capped at 10."""
    from proto import caffe_pb2
    src = load_param(name)
    chw = SHRINK[name][0] if shrink else NETS[name][1]
    div = SHRINK[name][1]
    ips = [la.name for la in src.layer if la.type == "InnerProduct"]
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
        if shrink and new.type == "Convolution":
            # even widths: the next layer may be grouped by 2 (AlexNet's conv2/4/5), so its input
            # channels and its own outputs must split evenly
            new.convolution_param.num_output = max(2, new.convolution_param.num_output // div // 2 * 2)
        if shrink and new.type == "InnerProduct":
            p = new.inner_product_param
            p.num_output = min(10, p.num_output) if new.name == ips[-1] else max(4, p.num_output // div)
    return out


def synthetic_net(name: str, batch: int, dropout_ratio: float | None = None,
                  directory: str | None = None, shrink: bool = False) -> Path:
    """Write ``synthetic_param(...)`` as text to a new file (in ``directory`` or the system temp dir)
    and return its path."""
    from google.protobuf import text_format
    param = synthetic_param(name, batch, dropout_ratio, shrink)
    fd, tmp = tempfile.mkstemp(prefix=f"bench_{name}_b{batch}_", suffix=".prototxt.tmp", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text_format.MessageToString(param))
    final = tmp[: -len(".tmp")]
    os.replace(tmp, final)
    return Path(final)
