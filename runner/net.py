"""Net: runs a Caffe net's layers forward and backward (Caffe's Net<Dtype>, pycaffe's API).

    net = Net("deploy.prototxt", phase="TEST", weights="model.caffemodel", device="cpu")
    out = net.forward(data=batch)          # {output blob name: numpy array}
    loss = net.forward_backward()          # training nets: data layers feed themselves

The graph (NetState filter, Split insertion, shapes, loss weights, parameter sharing, which layers
need backward) comes from ``netdef.graph.build_graph``; this module instantiates one layer object
per node from the registry, allocates blobs (in-place tops reuse the bottom blob), shares parameter
blobs (``param { name: ... }``: data and diff, so gradients accumulate on the owner), and runs them.

Rules, as in Caffe:
- ``forward`` reshapes every layer before running it (an input fed with another batch size
  reshapes the whole net); the loss is sum over tops of loss_weight * sum(top data).
- ``backward`` sets each loss top's diff to its loss_weight, then runs the layers that need
  backward in reverse order with their propagate_down flags. Parameter diffs accumulate: call
  ``clear_param_diffs()`` (the solver does) before a new iteration.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from netdef.errors import CaffeError, NetDefinitionError, ShapeError, WeightsError
from proto import caffe_pb2 as pb
from runner.backend import get_backend
from runner.backend.base import Backend
from runner.blob import Blob
from runner.layers.base import Layer, phase_name
from runner.registry import get_layer_class
from runner.solver.glog import fmt


def _shape_string(shape: Sequence[int]) -> str:
    """Caffe's Blob::shape_string: the dims and the count, ``64 20 24 24 (737280)``."""
    n = 1
    for d in shape:
        n *= int(d)
    return "".join(f"{int(d)} " for d in shape) + f"({n})"


class Param(NamedTuple):
    """A learnable parameter blob (shared blobs appear once, under their owner)."""
    blob: Blob
    lr_mult: float
    decay_mult: float
    name: str


def _read_net_param(source: Any) -> pb.NetParameter:
    from netdef.prototxt import read_net
    if isinstance(source, pb.NetParameter):
        # run it through the same upgrade path as files (V1 'layers', legacy inputs)
        if len(source.layers) or len(source.input):
            from netdef.upgrade import upgrade_net
            p = pb.NetParameter()
            p.CopyFrom(source)
            return upgrade_net(p) or p
        return source
    return read_net(source)


class Net:
    """A Caffe net on a backend. See the module docstring for the rules."""

    def __init__(self, net: Any, phase: Any = "TEST", weights: str | os.PathLike | None = None,
                 device: str | Backend = "cpu", stages: Sequence[str] | None = None,
                 level: int | None = None, seed: int | None = None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None, dtype: Any = np.float32,
                 base_dir: str | os.PathLike | None = None, log: Callable[..., None] | None = None,
                 precision: str | None = None):
        """``net``: a prototxt path or a NetParameter. ``stages`` are added to the net's own
        ``state`` stages and ``level`` replaces its level (Caffe's Net(file, phase, level,
        stages)); None keeps the net's own. ``base_dir``: the prototxt's folder (default: ``net``'s
        own when it is a path), where relative data sources are looked for when they are not found
        from the working directory, and Python layer modules when they are not on sys.path.
        ``input_shapes``: {top: shape} for data tops (default: read from the data sources).
        ``log``: a glog-style writer (``runner.solver.glog.GLog``) for Caffe's Net set-up lines
        (``Creating Layer``, ``Top shape: ...``, ``Memory required for data: ...``, which layers
        need backward, ``Network initialization done.``) and the weight-copy lines of
        ``copy_from``; None (the default for Python users) writes nothing.

        Before anything is allocated, the bytes the net needs (``netdef.limits.estimate_memory``:
        blobs and parameters with their diffs, the convolution workspace) are compared with the
        backend's free memory; a ResourceError names the total, the largest blob and what is
        free when it does not fit. ``precision``: the cuda backend's GEMM input format
        (runner.backend: fp32, the default, or tf32/fp16/bf16 on the tensor cores)."""
        from netdef.graph import build_graph, filter_layers, net_state
        from runner.layers.python import PythonLayers
        self.phase = phase_name(phase)
        self.log = log
        self.backend: Backend = get_backend(device, dtype, precision)
        self.net_param = _read_net_param(net)
        if stages is not None:
            stages = tuple(self.net_param.state.stage) + tuple(stages)
        if base_dir is None and isinstance(net, (str, os.PathLike)):
            base_dir = os.path.dirname(os.path.abspath(net))
        from runner.data.probe import data_input_shapes
        from runner.data.sources import resolve_data_paths
        resolve_data_paths(self.net_param, None if base_dir is None else os.fspath(base_dir))
        if log is not None:
            messages: list[str] = []
            state = net_state(self.net_param, self.phase, stages, level)
            filtered = pb.NetParameter()
            filtered.CopyFrom(self.net_param)
            filtered.state.CopyFrom(state)
            del filtered.layer[:]
            filtered.layer.extend(filter_layers(self.net_param, state, messages))
            for m in messages:
                log(m)
            log(f"Initializing net from parameters: \n{filtered}".rstrip())
        if input_shapes is None:     # data tops whose shapes come from their sources
            input_shapes = data_input_shapes(self.net_param, self.phase, stages, level) or None
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # Python layers are set up while the graph is built: only running them tells their shapes
        python = PythonLayers(self.backend, self.phase, self.rng,
                              None if base_dir is None else os.fspath(base_dir))
        self.graph = build_graph(self.net_param, phase=self.phase,
                                 stages=None if stages is None else tuple(stages), level=level,
                                 input_shapes=input_shapes, layer_shapes=python)
        self.name = self.graph.name
        self._check_memory()

        # 1. every layer type must be known before anything is allocated
        classes = [get_layer_class(node.type, node.name) for node in self.graph.layers]

        self.blobs: OrderedDict[str, Blob] = OrderedDict()
        self.layers: list[Layer] = []
        self.layer_dict: OrderedDict[str, Layer] = OrderedDict()
        self.bottom_names: OrderedDict[str, list[str]] = OrderedDict()
        self.top_names: OrderedDict[str, list[str]] = OrderedDict()
        self._bottoms: list[list[Blob]] = []
        self._tops: list[list[Blob]] = []
        self._need_backward: list[bool] = []
        self._propagate_down: list[list[bool]] = []
        self._loss_tops: list[tuple[int, Blob, float]] = []   # (layer index, top blob, weight)
        self.params: OrderedDict[str, list[Blob]] = OrderedDict()
        self.learnable_params: list[Param] = []
        #: per learnable parameter, the indices of the layers that use it (the owner and sharers)
        self.param_users: list[list[int]] = []
        owners: dict[tuple[str, int], int] = {}     # (layer, param index) -> learnable index

        memory_used = 0
        for li, (node, cls) in enumerate(zip(self.graph.layers, classes)):
            layer = python.layers.pop(node.name, None) or cls(node.param, self.backend,
                                                              phase=self.phase, rng=self.rng)
            bottoms = [self.blobs[b] for b in node.bottoms]
            if log is not None:
                log(f"Creating Layer {node.name}")
                for b in node.bottoms:
                    log(f"{node.name} <- {b}")
            tops = []
            for t, shape in zip(node.tops, node.top_shapes):
                if t in self.blobs and t in node.bottoms:
                    tops.append(self.blobs[t])          # in place
                    if log is not None:
                        log(f"{node.name} -> {t} (in-place)")
                else:
                    blob = python.take_blob(t, shape) or Blob(self.backend, shape, t)
                    self.blobs[t] = blob
                    tops.append(blob)
                    if log is not None:
                        log(f"{node.name} -> {t}")
            layer.loss_weights = list(node.loss_weights)
            try:
                layer.setup(bottoms, tops)
                layer.reshape(bottoms, tops)
            except CaffeError:
                raise
            except (ValueError, IndexError) as e:
                raise NetDefinitionError(f"layer '{node.name}' ({node.type}): {e}") from e
            if log is not None:
                for line in getattr(layer, "setup_messages", ()):
                    log(line)
                log(f"Setting up {node.name}")
                for t, w in zip(tops, node.loss_weights):
                    log(f"Top shape: {_shape_string(t.shape)}")
                    if w:
                        log(f"    with loss weight {fmt(w)}")
                    memory_used += t.count
                log(f"Memory required for data: {memory_used * np.dtype(dtype).itemsize}")
            # parameters
            if len(layer.blobs) != len(node.param_specs):
                raise NetDefinitionError(
                    f"layer '{node.name}' ({node.type}): created {len(layer.blobs)} parameter blobs, "
                    f"the shape rules expect {len(node.param_specs)}")
            for pi, info in enumerate(node.param_specs):
                blob = layer.blobs[pi]
                lr_mult = float(info.lr_mult)     # netdef.graph: 0 for BatchNorm's statistics
                if info.owner is not None:
                    j = owners[info.owner]
                    blob.share_data(self.learnable_params[j].blob)
                    blob.share_diff(self.learnable_params[j].blob)
                else:
                    j = owners[(node.name, pi)] = len(self.learnable_params)
                    self.learnable_params.append(
                        Param(blob, lr_mult, float(info.decay_mult), info.name or f"{node.name}[{pi}]"))
                    self.param_users.append([])
                self.param_users[j].append(li)
                layer.param_propagate_down[pi] = bool((self.graph.force_backward and not info.fixed)
                                                      or lr_mult != 0)
            if layer.blobs:
                self.params[node.name] = layer.blobs
            for t, w in zip(tops, node.loss_weights):
                if w != 0:
                    self._loss_tops.append((li, t, float(w)))
            self.layers.append(layer)
            self.layer_dict[node.name] = layer
            self.bottom_names[node.name] = list(node.bottoms)
            self.top_names[node.name] = list(node.tops)
            self._bottoms.append(bottoms)
            self._tops.append(tops)
            self._need_backward.append(bool(node.need_backward))
            self._propagate_down.append(list(node.propagate_down))

        self.inputs: list[str] = list(self.graph.inputs)
        self.outputs: list[str] = list(self.graph.outputs)
        self._layer_index = {n: i for i, n in enumerate(self.layer_dict)}
        if log is not None:
            for name, need in reversed(list(zip(self.layer_dict, self._need_backward))):
                log(f"{name} {'needs' if need else 'does not need'} backward computation.")
            for out in self.outputs:
                log(f"This network produces output {out}")
            log("Network initialization done.")
        if weights is not None:
            self.copy_from(weights)

    def _check_memory(self) -> None:
        """Refuse (ResourceError) a net whose blobs, parameters and workspace do not fit in the
        backend's free memory, before anything is allocated."""
        from netdef.errors import ResourceError
        from netdef.limits import estimate_memory, human
        est = estimate_memory(self.graph, np.dtype(self.backend.dtype).itemsize)
        self.memory = est.with_workspace(self.backend.workspace_cap())
        free, what = self.backend.available_memory()
        if free is not None and self.memory.total > free:
            name, nbytes = self.memory.largest
            raise ResourceError(
                f"net '{self.name}' ({self.phase}) needs {human(self.memory.total)} (blobs "
                f"{human(self.memory.blobs)}, parameters {human(self.memory.params)}, workspace "
                f"{human(self.memory.workspace)}; largest blob '{name}' {human(nbytes)}, twice "
                f"with its diff) but only {human(free)} of {what} is left on the "
                f"{self.backend.name} backend; lower the batch size or the input shape")

    # ------------------------------------------------------------------ introspection
    @property
    def layer_names(self) -> list[str]:
        return list(self.layer_dict)

    def layer_need_backward(self, name: str) -> bool:
        return self._need_backward[self._layer_index[name]]

    # Caffe's Net accessors (bottom_vecs(), top_vecs(), ...), one entry per layer in net.layers
    @property
    def bottom_vecs(self) -> list[list[Blob]]:
        """The bottom blobs of each layer, in execution order (read-only use)."""
        return self._bottoms

    @property
    def top_vecs(self) -> list[list[Blob]]:
        """The top blobs of each layer, in execution order (read-only use)."""
        return self._tops

    @property
    def blob_loss_weights(self) -> dict[str, float]:
        """{top blob name: loss weight} for the tops with a non-zero loss weight (Caffe's
        Net::blob_loss_weights, zeros left out)."""
        return {t.name: w for _, t, w in self._loss_tops}

    @property
    def need_backward_flags(self) -> list[bool]:
        """Whether each layer runs backward (Caffe's layer_need_backward())."""
        return self._need_backward

    @property
    def bottom_need_backward(self) -> list[list[bool]]:
        """Per layer, the propagate_down flag of each bottom (Caffe's bottom_need_backward())."""
        return self._propagate_down

    def __repr__(self) -> str:
        return (f"<Net {self.name!r} phase={self.phase} {len(self.layers)} layers "
                f"backend={self.backend.name}>")

    # ------------------------------------------------------------------ running
    def _index(self, name: str | None, default: int) -> int:
        if name is None:
            return default
        try:
            return self._layer_index[name]
        except KeyError:
            raise NetDefinitionError(f"net {self.name!r} has no layer {name!r}; layers: "
                                     f"{', '.join(self.layer_dict)}") from None

    def _feed(self, inputs: Mapping[str, Any]) -> None:
        for name, value in inputs.items():
            if name not in self.blobs:
                raise ShapeError(f"net {self.name!r} has no blob {name!r} to feed; inputs: "
                                 f"{', '.join(self.inputs) or 'none'}")
            blob = self.blobs[name]
            arr = np.asarray(value)
            if arr.ndim != blob.num_axes or arr.shape[1:] != blob.shape[1:]:
                raise ShapeError(f"input blob {name!r}: fed an array of shape {arr.shape}, the net "
                                 f"expects {blob.shape} (only the batch axis may differ)")
            if arr.shape != blob.shape:
                blob.reshape(arr.shape)
            blob.data = arr

    def reshape(self) -> None:
        """Reshape every layer to its bottoms (after changing an input blob's shape)."""
        for layer, b, t in zip(self.layers, self._bottoms, self._tops):
            layer.reshape(b, t)

    # one layer at a time: Net's own loops below and the replayed executor (runner/backend/replay.py)
    # both run the net through these four, so the rules live here once
    def forward_layer(self, i: int) -> None:
        """Reshape layer ``i`` to its bottoms and run its forward."""
        layer = self.layers[i]
        layer.reshape(self._bottoms[i], self._tops[i])
        layer.forward(self._bottoms[i], self._tops[i])

    def layer_loss(self, i: int) -> float:
        """Layer ``i``'s contribution to the loss: sum over its tops of loss_weight * sum(top
        data) (Caffe's rule; reads the loss tops on the host)."""
        loss = 0.0
        for t, w in zip(self._tops[i], self.layers[i].loss_weights):
            if w != 0:
                loss += w * float(np.sum(t.host_data(), dtype=np.float64))
        return loss

    def seed_loss_diffs(self) -> None:
        """Set every loss top's diff to its loss weight (where backward starts)."""
        for _, t, w in self._loss_tops:
            self.backend.fill(t.dev_diff, w)

    def backward_layer(self, i: int) -> None:
        """Run layer ``i``'s backward with its propagate_down flags (callers skip layers that
        need no backward: ``need_backward_flags``)."""
        self.layers[i].backward(self._tops[i], self._propagate_down[i], self._bottoms[i])

    def _forward_range(self, start: int, end: int) -> float:
        loss = 0.0
        for i in range(start, end + 1):
            self.forward_layer(i)
            loss += self.layer_loss(i)
        return loss

    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **inputs: Any) -> dict[str, np.ndarray]:
        """Feed ``inputs`` (blob name -> array; the batch size may change), run layers
        ``start``..``end`` (names, inclusive; default all) and return copies of the outputs (the
        net's unconsumed blobs, or ``end``'s tops when ``end`` is given, plus ``blobs``)."""
        self._feed(inputs)
        s = self._index(start, 0)
        e = self._index(end, len(self.layers) - 1)
        self.last_loss = self._forward_range(s, e)
        names = list(self.top_names[self.layers[e].name]) if end is not None else list(self.outputs)
        for b in blobs or ():
            if b not in names:
                names.append(b)
        return {n: np.array(self.blobs[n].host_data()) for n in names}

    def forward_loss(self, **inputs: Any) -> float:
        """Run the whole net forward and return the weighted loss (Caffe's Net::Forward(&loss))."""
        self._feed(inputs)
        self.last_loss = self._forward_range(0, len(self.layers) - 1)
        return self.last_loss

    def backward(self, start: str | None = None, end: str | None = None,
                 diffs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Backpropagate from layer ``start`` (default: the last) down to ``end`` (default: the
        first). Loss tops' diffs are set to their loss weights first. Returns copies of the input
        blobs' diffs (plus ``diffs``), like pycaffe."""
        self._backward_range(self._index(start, len(self.layers) - 1), self._index(end, 0))
        names = list(self.inputs) + [d for d in (diffs or ()) if d not in self.inputs]
        return {n: np.array(self.blobs[n].host_diff()) for n in names}

    def _backward_range(self, start: int, end: int,
                        after_backward: Callable[[int], None] | None = None) -> None:
        self.seed_loss_diffs()
        for i in range(start, end - 1, -1):
            if self._need_backward[i]:
                self.backward_layer(i)
                if after_backward is not None:
                    after_backward(i)

    def forward_backward(self, after_backward: Callable[[int], None] | None = None,
                         **inputs: Any) -> float:
        """forward then backward over the whole net; returns the weighted loss. Parameter diffs
        accumulate. Nothing is copied to the host except the loss. ``after_backward(i)`` is
        called after each layer's backward (data-parallel training starts exchanges there)."""
        loss = self.forward_loss(**inputs)
        self._backward_range(len(self.layers) - 1, 0, after_backward)
        return loss

    def clear_param_diffs(self) -> None:
        """Zero every learnable parameter's diff (Caffe's ClearParamDiffs)."""
        for p in self.learnable_params:
            p.blob.zero_diff()

    def close(self) -> None:
        """Release what layers hold open (data sources, prefetch threads). Idempotent."""
        for layer in self.layers:
            layer.close()

    # ------------------------------------------------------------------ weights
    def share_weights(self, other: Net) -> None:
        """Use ``other``'s parameter blobs for layers of the same name (Caffe's
        ShareTrainedLayersWith: data shared, no copy). Shapes must match."""
        for name, layer in self.layer_dict.items():
            src = other.layer_dict.get(name)
            if src is None or not layer.blobs:
                continue
            if len(src.blobs) != len(layer.blobs):
                raise WeightsError(f"share_weights: layer {name!r} has {len(layer.blobs)} parameter "
                                   f"blobs here, {len(src.blobs)} in net {other.name!r}")
            for j, (mine, theirs) in enumerate(zip(layer.blobs, src.blobs)):
                if mine.shape != theirs.shape:
                    raise WeightsError(f"share_weights: layer {name!r} param {j}: shape {mine.shape} "
                                       f"here, {theirs.shape} in net {other.name!r}"
                                       + self._data_differences(other))
                mine.share_data(theirs)

    def _data_differences(self, other: Net) -> str:
        """Why two nets' parameter shapes can differ when their definitions agree: a data top of
        another shape (a test LMDB with 3 channels against a 1-channel train LMDB)."""
        def data_tops(net: Net) -> dict[str, tuple[str, tuple[int, ...], str]]:
            out = {}
            for node in net.graph.layers:
                if node.bottoms:
                    continue
                src = next((getattr(node.param, f).source for f in
                            ("data_param", "image_data_param", "hdf5_data_param")
                            if node.param.HasField(f)), "")
                for t, shp in zip(node.tops, node.top_shapes):
                    out[t] = (node.name, tuple(shp), src)
            return out
        mine, theirs = data_tops(self), data_tops(other)
        notes = []
        for top, (layer, shape, src) in mine.items():
            if top in theirs and theirs[top][1][1:] != shape[1:]:
                o_layer, o_shape, o_src = theirs[top]
                notes.append(f"data top '{top}' is {'x'.join(map(str, shape[1:]))} per item here "
                             f"(layer '{layer}'{f', {src}' if src else ''}) but "
                             f"{'x'.join(map(str, o_shape[1:]))} in net {other.name!r} (layer "
                             f"'{o_layer}'{f', {o_src}' if o_src else ''}): the data sources disagree")
        return ("; " + "; ".join(notes)) if notes else ""

    def copy_from(self, path: str | os.PathLike | pb.NetParameter, log: Callable[..., None] | None = None,
                  require_match: bool = False):
        """Copy parameters by layer name from a .caffemodel (V1 or V2, binary or HDF5; Caffe's
        CopyTrainedLayersFrom via netdef.weights.copy_trained_layers): source layers absent here
        are ignored, layers absent from the source keep their values; another blob count or
        shape is a WeightsError naming the layer and both shapes.

        Reports through ``log`` (default: the Net's own): Caffe's ``Ignoring source layer X`` for
        each source layer the net lacks, then a warning line naming the net's layers that keep
        their fresh initialisation. A file that sets no layer of the net is a WeightsError with
        ``require_match`` (``nbcaffe test``), else a warning line (with no log at all: a Python
        warning). Returns the ``netdef.weights.CopiedLayers`` report."""
        from netdef.weights import copy_trained_layers
        copied = copy_trained_layers(self.graph, path)
        for name, arrays in copied.items():
            for blob, arr in zip(self.layer_dict[name].blobs, arrays):
                blob.data = arr
        log = log or self.log
        if log is not None:
            for name in copied.ignored:
                log(f"Ignoring source layer {name}")
        if not copied.fresh:
            return copied
        if copied:
            if log is not None:
                log(f"{copied.source}: no weights for layer(s) {', '.join(copied.fresh)}: they keep "
                    "their fresh initialisation", "W")
            return copied
        msg = copied.no_match(self.name)
        if require_match:
            raise WeightsError(msg)
        if log is not None:
            log(f"{msg} Every layer keeps its fresh initialisation.", "W")
        else:
            import warnings
            warnings.warn(msg, stacklevel=2)
        return copied

    def to_proto(self) -> pb.NetParameter:
        """This net's (filtered, split-inserted) layer definitions as a NetParameter, no blobs."""
        out = pb.NetParameter()
        out.name = self.name
        for node in self.graph.layers:
            out.layer.add().CopyFrom(node.param)
        return out

    def to_onnx(self, path: str | os.PathLike, opset: int = 19, batch: int | str = "dynamic") -> Any:
        """Write this net (its phase, stages and current weights) as one checked ONNX model:
        data layers become inputs (first axis ``batch``, or ``batch`` N fixed), loss and metric
        layers are dropped, every other layer keeps Caffe's semantics; a layer ONNX cannot
        express exactly raises ExportError. Returns runner.onnx_export.ExportInfo (inputs,
        outputs, dropped layers, notes). See runner/onnx_export."""
        from runner.onnx_export import export_net
        return export_net(self, path, opset, batch)

    def save(self, path: str | os.PathLike) -> None:
        """Write every layer with its parameter blobs as a binary .caffemodel (Caffe's
        Net::ToProto + WriteProtoToBinaryFile; atomic: temp file then os.replace)."""
        from netdef.weights import write_caffemodel
        weights = {layer.name: (layer.type, [np.array(b.host_data()) for b in layer.blobs])
                   for layer in self.layers if layer.blobs}
        write_caffemodel(path, weights, net=self.to_proto())

    def save_hdf5(self, path: str | os.PathLike, diffs: bool = False) -> None:
        """Write every layer's parameter blobs in Caffe's HDF5 layout (Net::ToHDF5:
        ``/data/<layer>/<i>``, an empty group for a layer without any, and ``/diff/...`` with
        ``diffs``); atomic. ``copy_from`` reads it back."""
        from netdef.weights import write_caffemodel_hdf5
        weights = {n: [b.host_data() for b in layer.blobs] for n, layer in self.layer_dict.items()}
        grads = ({n: [b.host_diff() for b in layer.blobs] for n, layer in self.layer_dict.items()}
                 if diffs else None)
        write_caffemodel_hdf5(path, weights, grads)
