"""proto/caffe_pb2.py matches proto/caffe.proto, and both match the wire-format fact table."""
from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
SSD_TABLE = ROOT / "proto" / "ssd-fork-wire-format.md"

# The only cells where the table's rendering differs from Caffe's caffe.proto (see
# tools/wire_to_proto.py CORRECTIONS): (message, field) -> default the schema must have.
KNOWN_TABLE_RENDERING_ERRORS = {
    ("BatchNormParameter", "moving_average_fraction"): 0.999,
    ("PythonParameter", "param_str"): "",
}


def _serialized_file(pb2_source: str) -> bytes:
    """The FileDescriptorProto bytes a generated *_pb2.py registers (AddSerializedFile's arg)."""
    for node in ast.walk(ast.parse(pb2_source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"):
            return node.args[0].value
    raise AssertionError("no AddSerializedFile call in the generated module")


def test_generated_module_matches_proto(tmp_path):
    """Regenerate caffe_pb2 from caffe.proto with grpc_tools' protoc and compare the serialized
    FileDescriptorProto with the committed module's."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools not installed (pip install -e .[dev])")
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
                        f"--python_out={tmp_path}", str(ROOT / "proto" / "caffe.proto")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fresh = _serialized_file((tmp_path / "caffe_pb2.py").read_text())
    committed_src = (ROOT / "proto" / "caffe_pb2.py").read_text()
    committed = _serialized_file(committed_src)
    assert fresh == committed, ("proto/caffe_pb2.py is stale: python -m grpc_tools.protoc "
                                "-Iproto --python_out=proto proto/caffe.proto")
    # and the module Python actually imports is that file
    live = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(live)
    parsed = descriptor_pb2.FileDescriptorProto.FromString(committed)
    assert live.package == parsed.package == "caffe"
    assert [m.name for m in live.message_type] == [m.name for m in parsed.message_type]


def _parse_table(text: str):
    """Independent reader of the md table: ({message: {field: row}}, {enum: {value: number}})."""
    messages: dict[str, dict[str, list[str]]] = {}
    enums: dict[str, dict[str, int]] = {}
    cur, kind = None, None
    for line in text.splitlines():
        m = re.match(r"^### (message|enum) ([\w.]+)", line)
        if m:
            kind, cur = m.group(1), m.group(2)
            (messages if kind == "message" else enums).setdefault(cur, {})
            continue
        if cur is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[1] == "number" or set(cells[0]) <= {"-", ":"}:
            continue
        if kind == "message":
            messages[cur][cells[0]] = cells
        else:
            enums[cur][cells[0]] = int(cells[1])
    return messages, enums


_SCALAR = {
    "double": "TYPE_DOUBLE", "float": "TYPE_FLOAT", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "bool": "TYPE_BOOL",
    "string": "TYPE_STRING", "bytes": "TYPE_BYTES",
}


def _lookup(dotted: str):
    parts = dotted.split(".")
    d = caffe_pb2.DESCRIPTOR.message_types_by_name.get(parts[0])
    if d is None:
        return None
    for p in parts[1:]:
        d = d.nested_types_by_name.get(p)
    return d


def _enum(dotted: str):
    parts = dotted.split(".")
    if len(parts) == 1:
        return caffe_pb2.DESCRIPTOR.enum_types_by_name.get(parts[0])
    return _lookup(".".join(parts[:-1])).enum_types_by_name.get(parts[-1])


def _schema_problems(messages, enums, complete: bool) -> list[str]:
    """Every difference between the compiled schema and the tables' facts. ``complete``: the
    tables list every field of each message they name (else fields not listed are allowed)."""
    problems = []
    for ename, values in enums.items():
        ed = _enum(ename)
        if ed is None:
            problems.append(f"enum {ename} missing")
            continue
        got = {v.name: v.number for v in ed.values}
        if got != values:
            problems.append(f"enum {ename}: {got} != {values}")
    for mname, fields in messages.items():
        md = _lookup(mname)
        if md is None:
            problems.append(f"message {mname} missing")
            continue
        extra = set(md.fields_by_name) - set(fields)
        if extra and complete:
            problems.append(f"{mname}: fields not in the table: {sorted(extra)}")
        for fname, (_, number, label, ftype, default) in fields.items():
            f = md.fields_by_name.get(fname)
            where = f"{mname}.{fname}"
            if f is None:
                problems.append(f"{where} missing")
                continue
            if f.number != int(number):
                problems.append(f"{where}: number {f.number} != {number}")
            got_label = "repeated" if f.is_repeated else "required" if f.is_required else "optional"
            if got_label != label:
                problems.append(f"{where}: label {got_label} != {label}")
            if ftype in _SCALAR:
                if f.type != getattr(f, _SCALAR[ftype]):
                    problems.append(f"{where}: type {f.type} != {ftype}")
            elif f.type == f.TYPE_MESSAGE:
                if not _names_type(f.message_type, ftype):
                    problems.append(f"{where}: type {f.message_type.full_name} != {ftype}")
            elif f.type == f.TYPE_ENUM:
                if not _names_type(f.enum_type, ftype):
                    problems.append(f"{where}: type {f.enum_type.full_name} != {ftype}")
            else:
                problems.append(f"{where}: type {f.type} != {ftype}")
            packed = default == "packed=true"
            if bool(f.is_packed) != packed:
                problems.append(f"{where}: packed {f.is_packed} != {packed}")
            if packed or f.is_repeated:
                continue
            if (mname, fname) in KNOWN_TABLE_RENDERING_ERRORS:
                want = KNOWN_TABLE_RENDERING_ERRORS[(mname, fname)]
                ok = f.has_default_value and (f.default_value == want if isinstance(want, str)
                                              else math.isclose(f.default_value, want,
                                                                rel_tol=1e-6))
                if not ok:
                    problems.append(f"{where}: default {f.default_value!r} != Caffe's {want!r}")
                continue
            if default == "":
                if f.has_default_value:
                    problems.append(f"{where}: has default {f.default_value!r}, table has none")
                continue
            if not f.has_default_value:
                problems.append(f"{where}: no default, table says {default}")
            elif f.type == f.TYPE_ENUM:
                if f.enum_type.values_by_number[f.default_value].name != default:
                    problems.append(f"{where}: default {f.default_value} != {default}")
            elif f.type == f.TYPE_BOOL:
                if f.default_value != (default == "true"):
                    problems.append(f"{where}: default {f.default_value} != {default}")
            elif f.type == f.TYPE_STRING:
                if f.default_value != default.strip('"'):
                    problems.append(f"{where}: default {f.default_value!r} != {default}")
            elif not math.isclose(float(f.default_value), float(default), rel_tol=1e-6):
                problems.append(f"{where}: default {f.default_value} != {default}")
    return problems


def _names_type(desc, ftype: str) -> bool:
    """Whether the table's type cell names ``desc``: its short name, or ``Outer.Inner``."""
    if "." in ftype:
        return desc.full_name == f"caffe.{ftype}"
    return desc.name == ftype


def test_schema_matches_wire_format_table(shared_dir):
    table = shared_dir / "caffe-wire-format.md"
    if not table.exists():
        pytest.skip(f"{table} not present")
    messages, enums = _parse_table(table.read_text() + "\n" + SSD_TABLE.read_text())
    assert len(messages) > 60 and "V0LayerParameter" in messages and "V1LayerParameter" in messages
    problems = _schema_problems(messages, enums, complete=True)
    assert not problems, "\n".join(problems)


def test_schema_matches_ssd_fork_table():
    """The SSD fork's messages (proto/ssd-fork-wire-format.md), without ../shared."""
    messages, enums = _parse_table(SSD_TABLE.read_text())
    assert {"NormalizeParameter", "PermuteParameter", "PriorBoxParameter", "DetectionOutputParameter",
            "NonMaximumSuppressionParameter", "SaveOutputParameter", "ResizeParameter"} <= set(messages)
    problems = _schema_problems(messages, enums, complete=False)
    assert not problems, "\n".join(problems)


def test_known_defaults_follow_caffe():
    """Spot checks of Caffe semantics that depend on schema defaults."""
    assert caffe_pb2.BatchNormParameter().moving_average_fraction == pytest.approx(0.999)
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.SolverParameter().type == "SGD"
    assert caffe_pb2.ParamSpec().lr_mult == 1.0


def test_wire_to_proto_reproduces_the_committed_proto(shared_dir):
    table = shared_dir / "caffe-wire-format.md"
    if not table.exists():
        pytest.skip(f"{table} not present")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "wire_to_proto.py"), str(table),
                        str(SSD_TABLE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "proto" / "caffe.proto").read_text(), \
        "proto/caffe.proto differs from tools/wire_to_proto.py's output"
