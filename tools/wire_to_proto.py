"""Write proto/caffe.proto from wire-format fact tables: BVLC Caffe's (../shared/caffe-wire-format.md)
followed by the SSD fork's detection messages (proto/ssd-fork-wire-format.md). A later table may
add messages and enums, or add fields to an earlier message under "### message X (continued)".

Run once when a table changes; the .proto it writes is committed and is the source of truth
afterwards (tests/netdef/test_proto_schema.py checks they agree when ../shared exists).

    python tools/wire_to_proto.py ../shared/caffe-wire-format.md proto/ssd-fork-wire-format.md \
        > proto/caffe.proto
    python -m grpc_tools.protoc -Iproto --python_out=proto proto/caffe.proto
"""
from __future__ import annotations

import re
import sys
from collections import OrderedDict

# Cells where the fact table's rendering lost part of Caffe's default (checked against
# src/caffe/proto/caffe.proto at BVLC/caffe 9b89154). Key: (message, field) -> (table cell, value
# to write). tests/netdef/test_proto_schema.py allows exactly these differences.
CORRECTIONS: dict[tuple[str, str], tuple[str, str]] = {
    # Caffe: `optional float moving_average_fraction = 2 [default = .999];` -- the table shows
    # "999", which would make BatchNorm's running averages diverge.
    ("BatchNormParameter", "moving_average_fraction"): ("999", ".999"),
    # Caffe: `optional string param_str = 3 [default = ''];` -- the table shows "]".
    ("PythonParameter", "param_str"): ("]", '""'),
}

SCALARS = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
           "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"}


def parse(text: str):
    """Return (messages, enums, order): messages map name -> list of field rows,
    enums map dotted name -> list of (value, number), order lists top-level names."""
    messages: OrderedDict[str, list] = OrderedDict()
    enums: OrderedDict[str, list] = OrderedDict()
    order: list[str] = []
    current = None
    kind = None
    for line in text.splitlines():
        m = re.match(r"^### (message|enum) ([\w.]+)( \(continued\))?\s*$", line)
        if m:
            kind, name = m.group(1), m.group(2)
            if kind == "message":
                if name not in messages:
                    messages[name] = []
                    order.append(name)
            else:
                enums[name] = []
                if "." not in name:
                    order.append(name)
            current = name
            continue
        if not line.startswith("|") or current is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[1] == "number" or set(cells[0]) <= {"-"}:
            continue
        if kind == "message":
            messages[current].append(cells)
        else:
            enums[current].append((cells[0], int(cells[1])))
    return messages, enums, order


def default_option(ftype: str, default: str, enum_names: set[str]) -> str:
    if default in ("", "packed=true"):
        return ""
    if ftype == "string":
        if not default.startswith('"'):
            default = f'"{default}"'
        return f"default = {default}"
    return f"default = {default}"


def render(messages, enums, order) -> str:
    enum_short = {n.split(".")[-1] for n in enums}
    out = ['// Caffe\'s schema, written from the wire-format fact tables (names, numbers, labels,',
           '// types, defaults and packing as Caffe defines them): BVLC Caffe\'s, then the SSD',
           '// fork\'s detection messages. Generated Python: caffe_pb2.py.',
           'syntax = "proto2";', "", "package caffe;", ""]

    def render_enum(name, values, indent):
        pad = "  " * indent
        out.append(f"{pad}enum {name.split('.')[-1]} {{")
        for v, n in values:
            out.append(f"{pad}  {v} = {n};")
        out.append(f"{pad}}}")

    for top in order:
        if top in enums:
            render_enum(top, enums[top], 0)
            out.append("")
            continue
        out.append(f"message {top} {{")
        for ename, values in enums.items():
            if ename.startswith(top + "."):
                render_enum(ename, values, 1)
        for name, number, label, ftype, default in messages[top]:
            fix = CORRECTIONS.get((top, name))
            if fix is not None:
                if default != fix[0]:
                    raise SystemExit(f"{top}.{name}: table default {default!r}, expected the known "
                                     f"rendering {fix[0]!r}; review CORRECTIONS")
                default = fix[1]
            opts = []
            if default == "packed=true":
                opts.append("packed = true")
            d = default_option(ftype, default, enum_short)
            if d:
                opts.append(d)
            opt = f" [{', '.join(opts)}]" if opts else ""
            out.append(f"  {label} {ftype} {name} = {number}{opt};")
        out.append("}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: wire_to_proto.py TABLE.md [MORE_TABLES.md ...] > caffe.proto")
    msgs, ens, order = parse("\n".join(open(path).read() for path in sys.argv[1:]))
    sys.stdout.write(render(msgs, ens, order))
