"""Caffe's binary weight files: .caffemodel, .binaryproto, .solverstate.

- ``read_caffemodel(path) -> NetParameter`` (upgraded like a prototxt: V0/V1 ``layers`` files become
  ``layer``); ``caffemodel_blobs(net) -> {layer name: (type, [np.ndarray])}``.
- ``write_caffemodel(path, weights, net=None)``: ``weights`` is ``{layer name: (type, [arrays])}``;
  with ``net`` (a NetParameter) every layer of the definition is written in full, with its blobs
  attached, as Caffe's Net::ToProto does; layers only in ``weights`` are appended.
  ``caffemodel_bytes`` returns the same bytes (e.g. for cv2.dnn.readNetFromCaffe buffers).
  ``write_caffemodel_hdf5(path, {layer: [arrays]})``: Caffe's HDF5 weights (Net::ToHDF5).
- ``copy_trained_layers(graph, source) -> {layer name: [np.ndarray]}``: Caffe's
  CopyTrainedLayersFrom: source layers matched by name (the unknown ones listed in ``.ignored``,
  the net's layers it leaves at their initialisation in ``.fresh``),
  blob count and shapes checked (legacy 4-D num/channels/height/width shapes accepted as Caffe's
  Blob::ShapeEquals does), arrays returned in the target's shapes.
- ``read_binaryproto`` / ``write_binaryproto``: one BlobProto <-> numpy array (e.g. mean files).
- ``read_solverstate`` / ``write_solverstate``: SolverState (iter, learned_net, history,
  current_step), binary or, for a ``.h5`` path, Caffe's HDF5 layout (``iter``, ``learned_net``,
  ``current_step``, ``history/<i>``).
- ``write_caffemodel_hdf5(path, weights, diffs=None)``: Caffe's HDF5 snapshot (``/data/<layer>/<i>``,
  optionally ``/diff/...``); ``read_caffemodel`` reads it back.

Every reader raises ``WeightsError`` naming the file for a missing, truncated or foreign file.
Writers write ``<path>.tmp`` and ``os.replace`` it into place.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError

from netdef.errors import CaffeError, WeightsError
from proto import caffe_pb2 as pb

#: what h5py raises on a damaged or unexpected file (besides our own errors): a reader catches these
#: and names the file
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError)

_MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"\x89HDF": "an HDF5 file", b"PK\x03\x04": "a ZIP archive", b"\x1f\x8b": "a gzip file",
    b"%PDF": "a PDF file", b"\x7fELF": "an ELF binary",
}


def _read_bytes(path: str | os.PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise WeightsError(f"{os.fspath(path)}: no such {what} file") from None
    except IsADirectoryError:
        raise WeightsError(f"{os.fspath(path)}: is a directory, not a {what} file") from None
    except OSError as e:
        raise WeightsError(f"{os.fspath(path)}: cannot read: {e.strerror}") from None


def _foreign(data: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if name and data.startswith(magic):
            return name
    head = data[:64].lstrip()
    if head[:1] in (b"n", b"l", b"#") and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file (a prototxt? weights files are binary protobuf)"
    return None


def _parse(data: bytes, message, path, what: str):
    kind = _foreign(data)
    if kind:
        raise WeightsError(f"{os.fspath(path)}: not a {what} file: it looks like {kind}")
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise WeightsError(f"{os.fspath(path)}: not a valid {what} file (truncated or corrupt: "
                           f"{e})") from None
    return message


def atomic_file(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Run ``write(tmp)`` on ``path + ".tmp"``, then rename it onto ``path``; on any failure
    (an interrupt included) remove the temporary file and re-raise. Every writer here uses it, so
    a reader never sees a half-written file."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _atomic_write(path: str | os.PathLike, data: bytes | list) -> None:
    """Write bytes (or a list of byte pieces) atomically (``atomic_file``)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            for piece in ([data] if isinstance(data, bytes | bytearray) else data):
                f.write(piece)
    atomic_file(path, write)


# ---------------------------------------------------------------------------- blobs

def blob_shape(blob: pb.BlobProto) -> tuple[int, ...]:
    """A BlobProto's shape: ``shape.dim`` or, for legacy blobs, (num, channels, height, width)."""
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def blob_to_array(blob: pb.BlobProto, where: str = "blob") -> np.ndarray:
    """BlobProto -> float32 array (float64 when the blob holds double_data) in its own shape."""
    shape = blob_shape(blob)
    if len(blob.double_data):
        arr = np.asarray(blob.double_data, dtype=np.float64)
    else:
        arr = np.asarray(blob.data, dtype=np.float32)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if any(d < 0 for d in shape):
        raise WeightsError(f"{where}: negative dimension in shape {shape}")
    if arr.size != n:
        raise WeightsError(f"{where}: shape {shape} needs {n} values but the blob holds "
                           f"{arr.size} (truncated or corrupt)")
    return arr.reshape(shape)


def array_to_blob(arr, legacy_4d: bool = False) -> pb.BlobProto:
    """numpy array -> BlobProto (float32 ``data``, ``shape.dim``; or num/channels/height/width
    when ``legacy_4d`` and the array has at most 4 axes, padded with leading 1s)."""
    shape = np.shape(arr)   # ascontiguousarray makes a 0-axis array 1-D; Caffe writes no shape
    a = np.ascontiguousarray(arr, dtype=np.float32)
    if legacy_4d:
        if a.ndim > 4:
            raise ValueError(f"legacy 4-D blob cannot hold shape {a.shape}")
        s = (1,) * (4 - len(shape)) + shape
        blob = pb.BlobProto(num=s[0], channels=s[1], height=s[2], width=s[3])
    else:
        blob = pb.BlobProto()
        blob.shape.dim.extend(int(d) for d in shape)
    # the packed float field (data = 5) encoded directly: tag, byte length, little-endian floats
    raw = a.astype("<f4", copy=False).tobytes()
    blob.MergeFromString(b"\x2a" + _varint(len(raw)) + raw)
    return blob


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def shape_equals(target: Sequence[int], blob: pb.BlobProto) -> bool:
    """Caffe's Blob::ShapeEquals: legacy blobs compare (num, channels, height, width) with the
    target shape padded with leading 1s to 4 axes (targets of more than 4 axes never match)."""
    target = tuple(int(d) for d in target)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        if len(target) > 4:
            return False
        legacy = (1,) * (4 - len(target)) + target
        return legacy == (blob.num, blob.channels, blob.height, blob.width)
    return target == tuple(int(d) for d in blob.shape.dim)


# ---------------------------------------------------------------------------- caffemodel

def read_caffemodel(path: str | os.PathLike, upgrade: bool = True) -> pb.NetParameter:
    """Read a binary .caffemodel into an upgraded NetParameter (V0/V1 files become ``layer``;
    ``upgrade=False`` returns it as stored)."""
    from netdef.upgrade import upgrade_net

    data = _read_bytes(path, "caffemodel")
    if data.startswith(b"\x89HDF"):
        return _read_caffemodel_hdf5(path)
    net = _parse(data, pb.NetParameter(), path, "caffemodel (binary NetParameter)")
    if not len(net.layer) and not len(net.layers):
        raise WeightsError(f"{os.fspath(path)}: not a caffemodel: it holds no layers"
                           + (" (empty file)" if not data else ""))
    if not upgrade:
        return net
    try:
        return upgrade_net(net, os.fspath(path))
    except CaffeError as e:
        raise WeightsError(str(e)) from None


def _read_caffemodel_hdf5(path) -> pb.NetParameter:
    """Caffe's HDF5 snapshot format (``/data/<layer>/<blob index>``) -> NetParameter with blobs."""
    import h5py

    net = pb.NetParameter()
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise WeightsError(f"{os.fspath(path)}: HDF5 file has no /data group; not a Caffe "
                                   "HDF5 caffemodel")
            for name in f["data"]:
                group = f["data"][name]
                lp = net.layer.add(name=name)
                for i in range(len(group)):
                    if str(i) not in group:
                        raise WeightsError(f"{os.fspath(path)}: layer '{name}' lacks blob {i}")
                    lp.blobs.add().CopyFrom(array_to_blob(np.asarray(group[str(i)])))
    except H5_ERRORS as e:
        raise WeightsError(f"{os.fspath(path)}: cannot read HDF5 caffemodel (damaged or not "
                           f"Caffe's layout: {e})") from None
    return net


def caffemodel_blobs(net: pb.NetParameter, where: str = "caffemodel"
                     ) -> dict[str, tuple[str, list[np.ndarray]]]:
    """{layer name: (type, [arrays in the file's own shapes])} for layers that hold blobs."""
    out = {}
    for lp in net.layer:
        if len(lp.blobs):
            out[lp.name] = (lp.type, [blob_to_array(b, f"{where}: layer '{lp.name}' blob {i}")
                                      for i, b in enumerate(lp.blobs)])
    return out


def caffemodel_bytes(weights: Mapping[str, tuple[str, Sequence[np.ndarray]]],
                     net: pb.NetParameter | None = None, name: str | None = None) -> bytes:
    """The serialized NetParameter ``write_caffemodel`` writes (see there). Blobs are encoded
    straight from the arrays' bytes (BlobProto: shape = 7, packed float data = 5; attached as
    LayerParameter.blobs = 7 and NetParameter.layer = 100) without copying every float through a
    Python message. The encoding is valid protobuf that parses to the same message; only the
    order of fields within a layer differs from protobuf's own output (blobs last)."""
    return b"".join(_caffemodel_pieces(*_model_layers(weights, net, name)))


def _model_layers(weights, net, name):
    """(NetParameter without layers, [(LayerParameter without blobs, arrays)])."""
    out = pb.NetParameter()
    layers: list[tuple[pb.LayerParameter, Sequence[np.ndarray]]] = []
    if net is not None:
        if len(net.layers):
            from netdef.upgrade import upgrade_net
            net = upgrade_net(net)
        out.CopyFrom(net)
        del out.layer[:]
        out.ClearField("input")
        out.ClearField("input_shape")
        out.ClearField("input_dim")
        for lp in net.layer:
            dst = pb.LayerParameter()
            dst.CopyFrom(lp)
            del dst.blobs[:]
            layers.append((dst, weights[lp.name][1] if lp.name in weights else ()))
    if name is not None:
        out.name = name
    written = {lp.name for lp, _ in layers}
    for lname, (ltype, arrays) in weights.items():
        if lname not in written:
            layers.append((pb.LayerParameter(name=lname, type=ltype), arrays))
    return out, layers


def _caffemodel_pieces(out: pb.NetParameter, layers) -> list:
    """Byte pieces of the serialized net; the big float arrays are memoryviews, not copies."""
    pieces: list = [out.SerializeToString()]
    for lp, arrays in layers:
        head = lp.SerializeToString()
        blob_parts = []
        size = len(head)
        for a in arrays:
            parts = _blob_pieces(a)
            n = sum(len(x) for x in parts)
            lead = b"\x3a" + _varint(n)
            blob_parts.append(lead)
            blob_parts.extend(parts)
            size += len(lead) + n
        pieces.append(b"\xa2\x06" + _varint(size))
        pieces.append(head)
        pieces.extend(blob_parts)
    return pieces


def _blob_pieces(arr) -> list:
    # a 0-axis blob (the SSD fork's shared Normalize scale) gets no shape field, as Caffe's
    # Blob::ToProto writes it (it reads back as ()); ascontiguousarray alone would make it (1,)
    dims_t = np.shape(arr)
    a = np.ascontiguousarray(arr, dtype="<f4")
    dims = b"".join(_varint(int(d)) for d in dims_t)
    shape = b"\x0a" + _varint(len(dims)) + dims
    raw = memoryview(a.reshape(-1)).cast("B")
    if not dims_t:
        return [b"\x2a" + _varint(len(raw)), raw]
    return [b"\x2a" + _varint(len(raw)), raw, b"\x3a" + _varint(len(shape)) + shape]


def write_caffemodel(path: str | os.PathLike,
                     weights: Mapping[str, tuple[str, Sequence[np.ndarray]]],
                     net: pb.NetParameter | None = None, name: str | None = None) -> None:
    """Write a .caffemodel. ``weights`` maps layer name -> (type, [arrays]). With ``net`` each of
    its layers is written in full (as Caffe's Net::ToProto) with the matching blobs attached;
    weights for layers the net lacks are appended as name/type/blobs layers."""
    _atomic_write(path, _caffemodel_pieces(*_model_layers(weights, net, name)))


def write_caffemodel_hdf5(path: str | os.PathLike, weights: Mapping[str, Sequence[np.ndarray]],
                          diffs: Mapping[str, Sequence[np.ndarray]] | None = None) -> None:
    """Write Caffe's HDF5 model snapshot (Net::ToHDF5): group ``/data`` with one group per layer of
    ``weights`` ({layer name: [arrays]}, in its order; empty for a layer without parameters)
    holding float32 datasets ``0``, ``1``, ...; ``/diff/...`` the same for ``diffs`` when given.
    ``read_caffemodel`` / ``copy_trained_layers`` read it back. Atomic."""
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            for group_name, table in (("data", weights), ("diff", diffs)):
                if table is None:
                    continue
                group = f.create_group(group_name)
                for lname, arrays in table.items():
                    g = group.create_group(lname)
                    for j, a in enumerate(arrays):
                        g.create_dataset(str(j), data=np.asarray(a, dtype=np.float32))
    atomic_file(path, write)


class CopiedLayers(dict):
    """What ``copy_trained_layers`` returns: {layer name: [arrays]} for the layers it sets, plus
    ``source`` (the file), ``ignored`` (source layers the net lacks, in file order: Caffe logs
    "Ignoring source layer X" for each) and ``fresh`` (the net's layers with parameters that the
    file does not set: they keep their fresh initialisation)."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source
        self.ignored: list[str] = []
        self.fresh: list[str] = []

    def no_match(self, net_name: str) -> str | None:
        """The message when the file sets no layer of a net that has parameters, else None."""
        if self or not self.fresh:
            return None
        return (f"{self.source} sets no layer of net '{net_name}': none of its layers "
                f"({', '.join(self.ignored) or 'none'}) is a layer of the net with parameters "
                f"({', '.join(self.fresh)}); renamed layers, or weights for another net?")


def copy_trained_layers(graph, source: str | os.PathLike | pb.NetParameter) -> CopiedLayers:
    """Caffe's Net::CopyTrainedLayersFrom: for each source layer whose name is a layer of
    ``graph`` (a netdef.graph.Graph), check the blob count and each blob's shape against the
    target's parameter shapes and return {layer name: [float32 arrays in the target shapes]}
    (a ``CopiedLayers``, which also lists the ignored source layers and the net's layers left
    fresh). Raises WeightsError naming the layer and both shapes on a mismatch."""
    where = "<NetParameter>" if isinstance(source, pb.NetParameter) else os.fspath(source)
    net = source if isinstance(source, pb.NetParameter) else read_caffemodel(source)
    targets = {n.name: n for n in graph.layers}
    out = CopiedLayers(where)
    for lp in net.layer:
        node = targets.get(lp.name)
        if node is None:
            out.ignored.append(lp.name)
            continue
        if len(lp.blobs) != len(node.param_shapes):
            raise WeightsError(f"{where}: incompatible number of blobs for layer '{lp.name}': the "
                               f"file has {len(lp.blobs)}, the net's {node.type} layer has "
                               f"{len(node.param_shapes)}")
        arrays = []
        for j, (blob, target) in enumerate(zip(lp.blobs, node.param_shapes)):
            if not shape_equals(target, blob):
                raise WeightsError(
                    f"{where}: cannot copy param {j} weights from layer '{lp.name}'; shape "
                    f"mismatch. Source param shape is {blob_shape(blob)}; target param shape is "
                    f"{tuple(target)}. To learn this layer's parameters from scratch rather than "
                    "copying from a saved net, rename the layer.")
            a = blob_to_array(blob, f"{where}: layer '{lp.name}' blob {j}")
            arrays.append(a.astype(np.float32, copy=False).reshape(target))
        if arrays:
            out[lp.name] = arrays
    out.fresh = [n.name for n in graph.layers if n.param_shapes and n.name not in out]
    return out


# ---------------------------------------------------------------------------- binaryproto

def read_binaryproto(path: str | os.PathLike) -> np.ndarray:
    """Read a .binaryproto (one BlobProto, e.g. a mean image) as an array in its shape
    (legacy files: (num, channels, height, width))."""
    data = _read_bytes(path, "binaryproto")
    blob = _parse(data, pb.BlobProto(), path, "binaryproto (BlobProto)")
    if not data:
        raise WeightsError(f"{os.fspath(path)}: empty binaryproto file")
    return blob_to_array(blob, os.fspath(path))


def write_binaryproto(path: str | os.PathLike, array, legacy_4d: bool = False) -> None:
    """Write one array as a BlobProto (``legacy_4d``: num/channels/height/width, as Caffe's
    compute_image_mean writes mean files)."""
    _atomic_write(path, array_to_blob(array, legacy_4d).SerializeToString())


# ---------------------------------------------------------------------------- solverstate

#: field number of nbcaffe's extra record in a binary SolverState (bytes, JSON): a field caffe.proto
#: does not declare, which Caffe's parser keeps as an unknown field and otherwise ignores
EXTRA_FIELD = 5000
EXTRA_HDF5 = "nbcaffe_extra"


@dataclass
class SolverStateData:
    """A .solverstate: iteration, the caffemodel it belongs to, per-parameter history blobs, and
    ``extra``: nbcaffe's own record (JSON text; e.g. the data layers' stream positions) or ""."""
    iter: int
    learned_net: str
    history: list[np.ndarray] = field(default_factory=list)
    current_step: int = 0
    extra: str = ""


def _top_level_field(data: bytes, number: int) -> bytes | None:
    """The last length-delimited top-level field ``number`` of a serialized message (a walk of the
    wire format: keys, varints, fixed 32/64-bit and length-delimited values), or None."""
    i, n, found = 0, len(data), None

    def varint(i: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            value |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                return value, i
            shift += 7

    try:
        while i < n:
            key, i = varint(i)
            wire = key & 7
            if wire == 0:
                _, i = varint(i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                length, i = varint(i)
                if key >> 3 == number:
                    found = data[i:i + length]
                i += length
            else:
                return found
    except ValueError:
        return found
    return found


def read_solverstate(path: str | os.PathLike) -> SolverStateData:
    """Read a .solverstate: the binary SolverState message, or Caffe's HDF5 layout."""
    data = _read_bytes(path, "solverstate")
    if data.startswith(b"\x89HDF"):
        return _read_solverstate_hdf5(path)
    st = _parse(data, pb.SolverState(), path, "solverstate (SolverState)")
    if not st.HasField("iter"):
        raise WeightsError(f"{os.fspath(path)}: not a solverstate: no 'iter' field"
                           + (" (empty file)" if not data else ""))
    hist = [blob_to_array(b, f"{os.fspath(path)}: history blob {i}")
            for i, b in enumerate(st.history)]
    extra = _top_level_field(data, EXTRA_FIELD)
    return SolverStateData(st.iter, st.learned_net, hist, st.current_step,
                           extra.decode("utf-8", errors="replace") if extra else "")


def write_solverstate(path: str | os.PathLike, iter: int, learned_net: str,
                      history: Sequence[np.ndarray], current_step: int = 0, extra: str = "") -> None:
    """Write a .solverstate atomically: binary SolverState, or Caffe's HDF5 layout when ``path``
    ends in ``.h5`` (SGDSolver::SnapshotSolverStateToHDF5). ``extra`` (JSON text) goes into field
    ``EXTRA_FIELD`` of the binary message (Caffe keeps it as an unknown field and ignores it) or
    the ``nbcaffe_extra`` dataset of the HDF5 file (which Caffe never reads)."""
    if os.fspath(path).endswith(".h5"):
        _write_solverstate_hdf5(path, iter, learned_net, history, current_step, extra)
        return
    st = pb.SolverState(iter=int(iter), learned_net=learned_net, current_step=int(current_step))
    for h in history:
        st.history.add().CopyFrom(array_to_blob(h))
    pieces = [st.SerializeToString()]
    if extra:
        raw = extra.encode("utf-8")
        pieces.append(_varint(EXTRA_FIELD << 3 | 2) + _varint(len(raw)) + raw)
    _atomic_write(path, b"".join(pieces))


def _write_solverstate_hdf5(path, iter: int, learned_net: str, history: Sequence[np.ndarray],
                            current_step: int, extra: str = "") -> None:
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f["iter"] = int(iter)
            f["learned_net"] = learned_net
            f["current_step"] = int(current_step)
            g = f.create_group("history")
            for i, h in enumerate(history):
                g.create_dataset(str(i), data=np.asarray(h, dtype=np.float32))
            if extra:
                f[EXTRA_HDF5] = extra
    atomic_file(path, write)


def _read_solverstate_hdf5(path) -> SolverStateData:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            learned = f["learned_net"][()]
            g = f["history"]
            extra = f[EXTRA_HDF5][()] if EXTRA_HDF5 in f else b""
            return SolverStateData(
                int(f["iter"][()]), learned.decode() if isinstance(learned, bytes) else str(learned),
                [np.asarray(g[str(i)], dtype=np.float32) for i in range(len(g))],
                int(f["current_step"][()]),
                extra.decode() if isinstance(extra, bytes) else str(extra))
    except H5_ERRORS as e:
        raise WeightsError(f"{os.fspath(path)}: not an HDF5 solver state ({e})") from None
