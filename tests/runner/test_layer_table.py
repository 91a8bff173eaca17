"""docs/layers.md's layer table against the tree: one row per registered layer type
(``runner.registry.known_types()``), no row for a type that is not registered, and every file the
row names exists -- its tests (under tests/), its cuda kernel modules (kernels/<name>.py) and its
numpy references (tests/reference/<name>.py or tests/layers/<name>.py). A row that claims an
oracle must list a test file that uses it: OpenCV (``cv2`` or tests/layers/_opencv.py's
``opencv_forward_matches``), ONNX Runtime (``onnxruntime``), a reference (its module name) or the
Caffe-trained weights (``lenet-caffe``)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.registry import known_types

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "layers.md"
HEADING = "## The layer table"
COLUMNS = ["type", "cpu", "cuda", "forward", "backward", "oracle", "tests"]
# an oracle named in the oracle column -> strings one of which a listed test file must contain
EVIDENCE = {"OpenCV": ("cv2", "opencv_forward_matches"), "ORT": ("onnxruntime",),
            "Caffe weights": ("lenet-caffe",)}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table() -> list[dict[str, str]]:
    """The rows of the first table after HEADING, as {column: cell}."""
    lines = DOC.read_text().splitlines()
    start = lines.index(HEADING)
    rows: list[dict[str, str]] = []
    header = None
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if header is not None:
                break                       # the table ended
            continue
        cells = _cells(line)
        if header is None:
            header = cells
            assert header == COLUMNS, f"{DOC.name}: layer table columns {header}, expected {COLUMNS}"
            continue
        if set(line.replace("|", "").strip()) <= {"-", ":"}:
            continue                        # the separator row
        assert len(cells) == len(COLUMNS), f"{DOC.name}: row {line!r} has {len(cells)} cells"
        rows.append(dict(zip(COLUMNS, cells)))
    assert rows, f"{DOC.name}: no table after {HEADING!r}"
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


ROWS = _table()


def test_every_registered_type_has_one_row_and_every_row_is_registered():
    listed = [r["type"].strip("`") for r in ROWS]
    dupes = sorted({t for t in listed if listed.count(t) > 1})
    assert not dupes, f"{DOC.name}: types listed twice: {dupes}"
    registered = set(known_types())
    missing = sorted(registered - set(listed))
    unknown = sorted(set(listed) - registered)
    assert not missing, f"{DOC.name}: registered types missing from the layer table: {missing}"
    assert not unknown, f"{DOC.name}: layer table rows for types that are not registered: {unknown}"


@pytest.mark.parametrize("row", ROWS, ids=[r["type"] for r in ROWS])
def test_named_files_exist_and_oracles_are_used(row):
    name = row["type"]
    tests = _ticked(row["tests"])
    assert tests, f"{name}: no test file listed"
    for t in tests:
        assert t.endswith(".py") and (ROOT / "tests" / t).is_file(), f"{name}: tests/{t} does not exist"
    for mod in _ticked(row["cuda"]):
        assert (ROOT / "kernels" / f"{mod}.py").is_file(), f"{name}: kernels/{mod}.py does not exist"
    texts = [(ROOT / "tests" / t).read_text() for t in tests]
    for ref in re.findall(r"ref `([^`]+)`", row["oracle"]):
        assert ((ROOT / "tests" / "reference" / f"{ref}.py").is_file()
                or (ROOT / "tests" / "layers" / f"{ref}.py").is_file()), f"{name}: no reference {ref}.py"
        assert any(ref in x for x in texts), f"{name}: no listed test file uses the reference {ref}"
    for oracle, needles in EVIDENCE.items():
        if oracle in row["oracle"]:
            assert any(n in x for n in needles for x in texts), (
                f"{name}: the oracle column names {oracle} but no listed test file uses it "
                f"(none mentions {' or '.join(needles)})")
