"""caffe.draw on Caffe's lenet_train_test.prototxt: the dot text holds one box per layer of the
phase drawn and one edge per bottom and top (checked against the prototxt read with protobuf);
PNG/SVG come from Graphviz's dot when it is installed, and a clear error says what to install
when it is not."""
from __future__ import annotations

import re
import shutil

import pytest
from google.protobuf import text_format

import caffe
import caffe.draw
from caffe.proto import caffe_pb2


@pytest.fixture
def lenet_train_test(caffe_models) -> caffe_pb2.NetParameter:
    return text_format.Parse((caffe_models / "lenet_train_test.prototxt").read_text(),
                             caffe_pb2.NetParameter())


def _boxes(dot: str) -> list[str]:
    return re.findall(r'shape=record, [^\]]*label="([^"\\]+)\\n', dot)


@pytest.mark.parametrize("phase,expect", [(None, 11), (caffe.TRAIN, 9), (caffe.TEST, 10)])
def test_dot_has_every_layer_and_edge(phase, expect, lenet_train_test, tmp_path):
    path = tmp_path / "lenet.dot"
    caffe.draw.draw_net_to_file(lenet_train_test, str(path), "LR", phase=phase, display_lrm=True)
    dot = path.read_text()
    assert dot.startswith('digraph "LeNet"') and "rankdir=LR" in dot
    layers = [lp for lp in lenet_train_test.layer
              if phase is None or not len(lp.include) or lp.include[0].phase == phase]
    assert len(layers) == expect
    assert sorted(_boxes(dot)) == sorted(lp.name for lp in layers)
    edges = dot.count(" -> ")
    assert edges == sum(len(lp.bottom) + len(lp.top) for lp in layers)
    assert "lr mult: 1, 2" in dot                                     # display_lrm
    assert "accuracy" in _boxes(dot) or phase == caffe.TRAIN


def test_png_needs_graphviz(lenet_train_test, tmp_path, monkeypatch):
    if shutil.which("dot"):
        png = caffe.draw.draw_net(lenet_train_test, "TB", ext="png")
        assert png.startswith(b"\x89PNG")
        caffe.draw.draw_net_to_file(lenet_train_test, str(tmp_path / "net.svg"))
        assert "<svg" in (tmp_path / "net.svg").read_text()
    monkeypatch.setenv("PATH", str(tmp_path))                  # no dot program there
    with pytest.raises(Exception, match="Graphviz's 'dot' program") as e:
        caffe.draw.draw_net_to_file(lenet_train_test, str(tmp_path / "net.png"))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "net.png").exists() and not (tmp_path / "net.png.tmp").exists()
