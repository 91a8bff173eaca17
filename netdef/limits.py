"""Caffe's integer limits and a net's memory, checked before anything is allocated.

- ``check_int32_fields(net_param, where)``: caffe.proto declares many sizes ``uint32`` (num_output,
  pad, kernel_size, stride, batch_size, ...) but Caffe's layers keep them in a C++ ``int``, so
  4294967295 becomes -1 there. A value above INT_MAX (2147483647) is refused, naming the layer and
  the field. ``rand_skip`` is the exception: Caffe keeps it unsigned.
- ``check_count(shape, where)``: Caffe's Blob::Reshape refuses a blob of more than INT_MAX
  elements ("blob size exceeds INT_MAX").
- ``estimate_memory(graph, itemsize)``: the bytes a Net built from ``graph`` allocates: every
  distinct blob's data and diff (an in-place top shares its bottom's), every parameter blob's data
  and diff (a shared parameter once), and the largest convolution column buffer (im2col of the
  whole batch; the Net caps it with ``Backend.workspace_cap()``, what its backend allocates at
  most). ``runner.net.Net`` compares the result with the memory that is free before allocating;
  ``nbcaffe inspect`` prints the figure the Net checked.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor

from netdef.errors import NetDefinitionError, ShapeError
from proto import caffe_pb2 as pb

INT_MAX = 2**31 - 1
#: uint32 fields Caffe reads into an unsigned variable (data_layer.cpp: ``unsigned int skip``)
UNSIGNED_IN_CAFFE = frozenset({"rand_skip"})


def _walk(msg, path: str):
    """(dotted field path, value) of every uint32 value set in ``msg`` and its sub-messages."""
    for fd, value in msg.ListFields():
        if fd.name == "blobs":        # weights, not settings
            continue
        name = f"{path}.{fd.name}" if path else fd.name
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if fd.is_repeated else [value]
            for i, sub in enumerate(items):
                yield from _walk(sub, f"{name}[{i}]" if fd.is_repeated
                                 else name)
        elif fd.type == FieldDescriptor.TYPE_UINT32 and fd.name not in UNSIGNED_IN_CAFFE:
            values = value if fd.is_repeated else [value]
            for v in values:
                yield name, int(v)


def check_int32_fields(net: pb.NetParameter, where: str | None = None) -> None:
    """Raise NetDefinitionError for the first uint32 field of a layer whose value does not fit the
    C++ int Caffe stores it in (see the module docstring)."""
    prefix = f"{where}: " if where else ""
    for kind in ("layer", "layers"):
        for lp in getattr(net, kind):
            for field, v in _walk(lp, ""):
                if v > INT_MAX:
                    raise NetDefinitionError(
                        f"{prefix}layer '{lp.name}' ({lp.type}): {field} = {v} does not fit the "
                        f"int Caffe keeps it in (at most {INT_MAX})")


def count(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def check_count(shape: Sequence[int], where: str) -> None:
    """Caffe's Blob limit: at most INT_MAX elements (ShapeError naming ``where`` otherwise)."""
    n = count(shape)
    if n > INT_MAX:
        dims = "x".join(str(int(d)) for d in shape)
        raise ShapeError(f"{where}: shape {dims} has {n:,} elements; a Caffe blob holds at most "
                         f"{INT_MAX:,} (INT_MAX)")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a Net allocates (see the module docstring). ``largest``: (blob name, bytes of its
    data) of the biggest blob."""
    blobs: int
    params: int
    workspace: int
    largest: tuple[str, int]

    @property
    def total(self) -> int:
        return self.blobs + self.params + self.workspace

    def with_workspace(self, cap: int | None) -> MemoryEstimate:
        """The same estimate with the column buffer capped at ``cap`` bytes (None: unchanged)."""
        if cap is None or self.workspace <= cap:
            return self
        return MemoryEstimate(self.blobs, self.params, cap, self.largest)


def conv_columns(node) -> int:
    """Elements of a Convolution/Deconvolution layer's im2col buffer for its whole batch: kernel
    volume x input channels x output positions x batch (0 for other layers)."""
    if node.type not in ("Convolution", "Deconvolution") or not node.param_shapes:
        return 0
    w = node.param_shapes[0]                  # (c_out, c_in/group, k...) or deconv (c_in, ...)
    group = max(1, int(node.param.convolution_param.group or 1))
    kernel = count(w[2:])
    if node.type == "Convolution":
        channels = int(w[1]) * group          # c_in
        positions = count(node.top_shapes[0][2:]) if node.top_shapes else 0
    else:
        channels = int(w[1]) * group          # c_out of the deconvolution
        positions = count(node.bottom_shapes[0][2:]) if node.bottom_shapes else 0
    batch = int(node.top_shapes[0][0]) if node.top_shapes and node.top_shapes[0] else 1
    return channels * kernel * positions * batch


def estimate_memory(graph, itemsize: int = 4) -> MemoryEstimate:
    """The bytes a Net built from ``graph`` (a netdef.graph.Graph) allocates; see the module
    docstring."""
    seen: dict[str, int] = {}
    for node in graph.layers:
        for t, s in zip(node.tops, node.top_shapes):
            if t in node.bottoms and node.in_place:
                continue
            seen[t] = count(s)
    blobs = 2 * itemsize * sum(seen.values())
    params = 2 * itemsize * sum(count(p.shape) for n in graph.layers for p in n.param_specs
                                if not p.shared)
    workspace = itemsize * max([conv_columns(n) for n in graph.layers] or [0])
    name, n = max(seen.items(), key=lambda kv: kv[1], default=("-", 0))
    return MemoryEstimate(blobs, params, workspace, (name, n * itemsize))


def human(nbytes: int) -> str:
    """Bytes as Caffe users read them: 1.5 GiB, 12.0 MiB, 640 B."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
