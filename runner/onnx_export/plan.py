"""What an ONNX export holds, decided from netdef alone (no ONNX here).

    plan = make_plan(net_param, graph, batch="dynamic")     # or batch=N

- Layers: data layers (``DATA_TYPES``) become graph inputs of their tops' shapes; ``DROPPED_TYPES``
  (loss layers, Accuracy, HDF5Output) are left out with the reason; every other layer becomes ONNX
  nodes through its mapping.
- Shapes: every blob's shape as ``netdef.graph.build_graph`` computes it, at a reference batch: the
  first dimension of the first input an exported layer reads. The batch inputs are the data tops
  with that first dimension (others, such as a fixed operand, keep their shape). With a fixed
  batch N the graph is rebuilt with N as the first dimension of the batch inputs, and every shape
  is static. With a dynamic batch the graph is built a second time with twice the reference
  batch: an axis whose size doubled scales with the batch (``Dims.dyn``). A blob may have one such
  axis; a parameter shape may have none (a net whose shapes fix the batch cannot have a dynamic
  batch axis, and the error says so).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netdef.errors import CaffeError, ExportError
from netdef.graph import Graph, LayerNode, build_graph
from netdef.shapes import LOSS_TYPES, fmt
from proto import caffe_pb2 as pb

#: layers whose tops become graph inputs (their data comes from outside the model)
DATA_TYPES = frozenset({"Input", "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                        "DummyData"})
#: data layers that read files (LMDB, images, HDF5)
SOURCE_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "WindowData"})
#: layers left out of an inference model, with why
DROPPED_TYPES: dict[str, str] = {
    **{t: "loss layer: it reads labels and only matters in training" for t in LOSS_TYPES},
    "Accuracy": "test metric: it reads labels",
    "HDF5Output": "writes HDF5 files, a side effect an inference model has no place for",
}
#: the symbolic name of the batch axis in the exported model
BATCH = "batch"


@dataclass(frozen=True)
class Dims:
    """A blob's shape at the plan's reference batch and the one axis (or None) that scales with
    the batch; ``exact``: that axis *is* the batch (its size equals the reference batch)."""
    ref: tuple[int, ...]
    dyn: int | None = None
    exact: bool = False

    @property
    def rank(self) -> int:
        return len(self.ref)

    def onnx_shape(self) -> list[int | str | None]:
        """Dimensions for an ONNX value_info: ints, ``BATCH`` for the batch, None for an axis
        that scales with the batch by another factor."""
        return [(BATCH if self.exact else None) if i == self.dyn else d
                for i, d in enumerate(self.ref)]

    def describe(self) -> str:
        return "(" + ", ".join(str(d) for d in self.onnx_shape()).replace("None", "?") + ")"


@dataclass
class Plan:
    """The netdef facts an export is built from."""
    graph: Graph                      # at the reference batch
    dims: dict[str, Dims]             # every blob
    batch: int | None                 # the fixed batch, or None for a dynamic batch axis
    batch_ref: int                    # the reference batch the graph was built with
    data_tops: list[str]              # tops of data layers, in layer order
    dropped: dict[str, str]           # dropped layer name -> why
    read: set[str]                    # blobs an exported layer reads (see _read_blobs)

    def kind(self, node: LayerNode) -> str:
        """'data', 'dropped', 'split', 'silence' or 'layer'."""
        if node.type in DATA_TYPES:
            return "data"
        if node.type in DROPPED_TYPES:
            return "dropped"
        if node.type == "Split":
            return "split"
        if node.type == "Silence":
            return "silence"
        return "layer"


def data_as_inputs(net_param: pb.NetParameter, graph: Graph) -> pb.NetParameter:
    """A copy of ``net_param`` whose data layers that read a source (Data, ImageData, HDF5Data,
    WindowData) and that ``graph``'s NetState keeps are Input layers of their tops' shapes in
    ``graph``: the net builds without its data files (a Net would open them), and an export's
    inputs are the same blobs."""
    kept = {n.name for n in graph.layers if n.type in SOURCE_TYPES}
    out = pb.NetParameter()
    out.CopyFrom(net_param)
    for lp in out.layer:
        if lp.name not in kept or lp.type not in SOURCE_TYPES:
            continue
        new = pb.LayerParameter(name=lp.name, type="Input", top=list(lp.top))
        new.include.extend(lp.include)
        new.exclude.extend(lp.exclude)
        for t in lp.top:
            new.input_param.shape.add().dim.extend(graph.blob_shapes[t])
        lp.CopyFrom(new)
    return out


def _read_blobs(graph: Graph) -> set[str]:
    """Blobs whose value an exported layer needs (read by a mapped layer, directly or through
    Split layers); a blob read only by dropped layers or Silence is not."""
    needed: set[str] = set()
    for node in reversed(graph.layers):
        if node.type in DROPPED_TYPES or node.type in DATA_TYPES or node.type == "Silence":
            continue
        if node.type != "Split" or any(t in needed for t in node.tops):
            needed.update(node.bottoms)
    return needed


def _downstream_of_filter(graph: Graph) -> set[str]:
    """The tops of Filter layers and every blob computed from them."""
    out: set[str] = set()
    for node in graph.layers:
        if node.type == "Filter" or any(b in out for b in node.bottoms):
            out.update(node.tops)
    return out


def _producer(graph: Graph, blob: str) -> str:
    name = "?"
    for node in graph.layers:
        if blob in node.tops:
            name = f"layer '{node.name}' ({node.type})"
    return name


def _with_batch(given: Mapping[str, Sequence[int]], batched: Mapping[str, Sequence[int]],
                batch: int) -> dict[str, tuple[int, ...]]:
    """Every data top's shape, the batch inputs' first axis set to ``batch``."""
    return {t: ((batch,) + tuple(s[1:]) if t in batched else tuple(s)) for t, s in given.items()}


def _rebuild(net_param: pb.NetParameter, graph: Graph, shapes: Mapping[str, Sequence[int]],
             why: str) -> Graph:
    try:
        return build_graph(net_param, phase=graph.phase, stages=graph.stages, level=graph.level,
                           input_shapes=shapes)
    except CaffeError as e:
        raise ExportError(f"{why}: {e}") from None


def make_plan(net_param: pb.NetParameter, graph: Graph, batch: int | str | None = "dynamic") -> Plan:
    """The export plan of ``graph`` (built from ``net_param``) with a dynamic batch axis
    (``batch`` "dynamic" or None) or a fixed batch (an int >= 1). Raises ExportError when the
    shapes do not allow it."""
    data_nodes = [n for n in graph.layers if n.type in DATA_TYPES]
    data_tops = [t for n in data_nodes for t in n.tops]
    given = {t: graph.blob_shapes[t] for t in data_tops}
    for t, s in given.items():
        if not s:
            raise ExportError(f"input blob '{t}' ({_producer(graph, t)}) is a scalar: it has no "
                              "batch axis")
    dropped = {n.name: DROPPED_TYPES[n.type] for n in graph.layers if n.type in DROPPED_TYPES}
    used = _read_blobs(graph)
    primary = next((t for t in data_tops if t in used), data_tops[0] if data_tops else None)
    b_ref = given[primary][0] if primary else 1
    # batch inputs: data tops whose first axis is the primary input's (the others keep their shape)
    batched = {t: s for t, s in given.items() if s[0] == b_ref}
    if batch is None or batch == "dynamic":
        if b_ref < 1:
            raise ExportError(f"input '{primary}' has batch size {b_ref}; give it a batch of at "
                              "least 1")
        twice = _rebuild(net_param, graph, _with_batch(given, batched, 2 * b_ref),
                         f"the batch size of net '{graph.name}' cannot vary (it was built with "
                         f"batch {b_ref}, and with batch {2 * b_ref} shape inference fails); "
                         "export with a fixed batch (--batch N)")
        dims = {}
        for blob, s1 in graph.blob_shapes.items():
            s2 = twice.blob_shapes[blob]
            moved = [i for i in range(len(s1)) if i >= len(s2) or s1[i] != s2[i]]
            if (len(s1) != len(s2) or len(moved) > 1
                    or any(s2[i] != 2 * s1[i] for i in moved)):
                raise ExportError(
                    f"blob '{blob}' ({_producer(graph, blob)}) has shape {fmt(s1)} at batch "
                    f"{b_ref} and {fmt(s2)} at batch {2 * b_ref}: no single axis scales with the "
                    "batch, so it cannot have a dynamic batch axis; export with --batch N")
            dyn = moved[0] if moved else None
            dims[blob] = Dims(tuple(s1), dyn, dyn is not None and s1[dyn] == b_ref)
        for n1, n2 in zip(graph.layers, twice.layers):
            if n1.param_shapes != n2.param_shapes and n1.type not in DROPPED_TYPES:
                raise ExportError(
                    f"layer '{n1.name}' ({n1.type}): its parameter shapes depend on the batch "
                    f"size ({', '.join(map(fmt, n1.param_shapes))} at batch {b_ref}, "
                    f"{', '.join(map(fmt, n2.param_shapes))} at batch {2 * b_ref}); export with "
                    f"--batch {b_ref}")
        # a Filter keeps a data-dependent number of items: its tops and everything computed from
        # them have an axis of unknown size (not the batch), which netdef's shapes only bound
        for blob in _downstream_of_filter(graph):
            d = dims[blob]
            if d.dyn is not None:
                dims[blob] = Dims(d.ref, d.dyn, False)
        return Plan(graph, dims, None, b_ref, data_tops, dropped, used)

    n = int(batch)
    if n < 1:
        raise ExportError(f"--batch must be >= 1 or 'dynamic', got {batch}")
    fixed = graph
    if n != b_ref:
        fixed = _rebuild(net_param, graph, _with_batch(given, batched, n),
                         f"net '{graph.name}' cannot run with batch {n}")
        for n1, n2 in zip(graph.layers, fixed.layers):
            if n1.param_shapes != n2.param_shapes and n1.type not in DROPPED_TYPES:
                raise ExportError(
                    f"layer '{n1.name}' ({n1.type}): its parameter shapes depend on the batch "
                    f"size ({', '.join(map(fmt, n1.param_shapes))} for the weights, "
                    f"{', '.join(map(fmt, n2.param_shapes))} at batch {n})")
    dims = {blob: Dims(tuple(s)) for blob, s in fixed.blob_shapes.items()}
    return Plan(fixed, dims, n, n, data_tops, dropped, _read_blobs(fixed))
