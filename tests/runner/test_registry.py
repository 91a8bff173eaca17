"""The layer registry: every registered type has Caffe's shape rule, every type of Caffe 1.0 listed
here runs, and the unknown-type error (netdef.shapes', the first a user meets, from `nbcaffe inspect` or
`Net`) lists only the registered types, those that run (issue 12, scope item 3)."""
from __future__ import annotations

import re

import pytest

from netdef import shapes
from netdef.errors import ShapeError
from runner import Net
from runner.cli import main
from runner.registry import known_types

TYPES_12A = ("Clip", "Crop", "Embed", "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", "MVN",
             "Parameter", "PReLU", "Reduction", "Swish", "Threshold", "Tile", "BatchReindex", "Filter",
             "Im2col")
NET = """
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "odd" type: "Convolutoin" bottom: "x" top: "y" }
"""


def _listed(message: str) -> list[str]:
    m = re.search(r"known types: ([^)]*)\)", message)
    assert m, message
    return [t.strip() for t in m.group(1).split(",")]


def test_every_registered_type_has_a_shape_rule():
    assert set(known_types()) <= set(shapes.known_types())


def test_caffe_1_0_remaining_types_run():
    assert set(TYPES_12A) <= set(known_types())


def test_unknown_type_lists_only_types_that_run(tmp_path, capsys):
    with pytest.raises(ShapeError, match="unknown layer type 'Convolutoin'") as e:
        Net(NET)
    listed = _listed(str(e.value))
    assert listed == known_types()
    assert {"Convolution", "PReLU", "Crop"} <= set(listed)
    path = tmp_path / "odd.prototxt"
    path.write_text(NET)
    assert main(["inspect", str(path)]) == 1
    assert _listed(capsys.readouterr().err) == known_types()
