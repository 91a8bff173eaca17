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
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from netdef.errors import CaffeError, NetDefinitionError, ShapeError, WeightsError
from proto import caffe_pb2 as pb
from runner.backend import get_backend
from runner.backend.base import Backend
from runner.blob import Blob
from runner.layers.base import Layer, phase_name
from runner.registry import get_layer_class


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


def _probe_data_shapes(net_param: pb.NetParameter, source: Any, phase: str, stages: Sequence[str],
                       level: int) -> dict[str, tuple[int, ...]] | None:
    """Top shapes of data layers (Data, ImageData, HDF5Data) read from their sources, so that
    ``Net("train_val.prototxt", phase="TRAIN")`` works as in pycaffe. Relative data paths are tried
    from the working directory, then from the prototxt's folder (Caffe only does the former)."""
    from runner.data.probe import SOURCE_CLASSES, data_input_shapes
    if not any(lp.type in SOURCE_CLASSES for lp in net_param.layer):
        return None
    from runner.solver.solver import resolve_data_paths
    if isinstance(source, (str, os.PathLike)):
        resolve_data_paths(net_param, os.fspath(source))
    return data_input_shapes(net_param, phase, tuple(stages), level) or None


class Net:
    """A Caffe net on a backend. See the module docstring for the rules."""

    def __init__(self, net: Any, phase: Any = "TEST", weights: str | os.PathLike | None = None,
                 device: str | Backend = "cpu", stages: Sequence[str] = (), level: int = 0,
                 seed: int | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 dtype: Any = np.float32, precision: str | None = None):
        from netdef.graph import build_graph
        self.phase = phase_name(phase)
        self.backend: Backend = get_backend(device, dtype, precision)   # precision: runner.backend
        self.net_param = _read_net_param(net)
        if input_shapes is None:
            input_shapes = _probe_data_shapes(self.net_param, net, self.phase, stages, level)
        self.graph = build_graph(self.net_param, phase=self.phase, stages=tuple(stages), level=level,
                                 input_shapes=input_shapes)
        self.name = self.graph.name
        self.seed = seed
        self.rng = np.random.default_rng(seed)

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
        owners: dict[tuple[str, int], Blob] = {}

        for li, (node, cls) in enumerate(zip(self.graph.layers, classes)):
            layer = cls(node.param, self.backend, phase=self.phase, rng=self.rng)
            bottoms = [self.blobs[b] for b in node.bottoms]
            tops = []
            for t, shape in zip(node.tops, node.top_shapes):
                if t in self.blobs and t in node.bottoms:
                    tops.append(self.blobs[t])          # in place
                else:
                    blob = Blob(self.backend, shape, t)
                    self.blobs[t] = blob
                    tops.append(blob)
            layer.loss_weights = list(node.loss_weights)
            try:
                layer.setup(bottoms, tops)
                layer.reshape(bottoms, tops)
            except CaffeError:
                raise
            except (ValueError, IndexError) as e:
                raise NetDefinitionError(f"layer '{node.name}' ({node.type}): {e}") from e
            # parameters
            if len(layer.blobs) != len(node.param_specs):
                raise NetDefinitionError(
                    f"layer '{node.name}' ({node.type}): created {len(layer.blobs)} parameter blobs, "
                    f"the shape rules expect {len(node.param_specs)}")
            fixed = node.type == "BatchNorm"   # Caffe's BatchNormLayer forces lr_mult 0 on its stats
            if fixed:
                for spec in node.param.param:
                    if spec.HasField("lr_mult") and spec.lr_mult != 0:
                        raise NetDefinitionError(
                            f"layer '{node.name}' (BatchNorm): cannot configure batch normalization "
                            f"statistics as layer parameters (lr_mult {spec.lr_mult}; it must be 0)")
            for pi, info in enumerate(node.param_specs):
                blob = layer.blobs[pi]
                lr_mult = 0.0 if fixed else float(info.lr_mult)
                if info.owner is not None:
                    owner = owners[info.owner]
                    blob.share_data(owner)
                    blob.share_diff(owner)
                else:
                    owners[(node.name, pi)] = blob
                    self.learnable_params.append(
                        Param(blob, lr_mult, float(info.decay_mult), info.name or f"{node.name}[{pi}]"))
                layer.param_propagate_down[pi] = bool((self.graph.force_backward and not fixed)
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
        if weights is not None:
            self.copy_from(weights)

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

    def _forward_range(self, start: int, end: int) -> float:
        loss = 0.0
        for i in range(start, end + 1):
            layer = self.layers[i]
            layer.reshape(self._bottoms[i], self._tops[i])
            layer.forward(self._bottoms[i], self._tops[i])
            for t, w in zip(self._tops[i], layer.loss_weights):
                if w != 0:
                    loss += w * float(np.sum(t.host_data(), dtype=np.float64))
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

    def _backward_range(self, start: int, end: int) -> None:
        for _, t, w in self._loss_tops:
            self.backend.fill(t.dev_diff, w)
        for i in range(start, end - 1, -1):
            if self._need_backward[i]:
                self.layers[i].backward(self._tops[i], self._propagate_down[i], self._bottoms[i])

    def forward_backward(self, **inputs: Any) -> float:
        """forward then backward over the whole net; returns the weighted loss. Parameter diffs
        accumulate. Nothing is copied to the host except the loss."""
        loss = self.forward_loss(**inputs)
        self._backward_range(len(self.layers) - 1, 0)
        return loss

    def clear_param_diffs(self) -> None:
        """Zero every learnable parameter's diff (Caffe's ClearParamDiffs)."""
        for p in self.learnable_params:
            p.blob.zero_diff()

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
                                       f"here, {theirs.shape} in net {other.name!r}")
                mine.share_data(theirs)

    def copy_from(self, path: str | os.PathLike | pb.NetParameter) -> None:
        """Copy parameters by layer name from a .caffemodel (V1 or V2; Caffe's
        CopyTrainedLayersFrom via netdef.weights.copy_trained_layers): source layers absent here
        are ignored, layers absent from the source keep their values; another blob count or
        shape is a WeightsError naming the layer and both shapes."""
        from netdef.weights import copy_trained_layers
        for name, arrays in copy_trained_layers(self.graph, path).items():
            for blob, arr in zip(self.layer_dict[name].blobs, arrays):
                blob.data = arr

    def to_proto(self) -> pb.NetParameter:
        """This net's (filtered, split-inserted) layer definitions as a NetParameter, no blobs."""
        out = pb.NetParameter()
        out.name = self.name
        for node in self.graph.layers:
            out.layer.add().CopyFrom(node.param)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write every layer with its parameter blobs as a binary .caffemodel (Caffe's
        Net::ToProto + WriteProtoToBinaryFile; atomic: temp file then os.replace)."""
        from netdef.weights import write_caffemodel
        weights = {layer.name: (layer.type, [np.array(b.host_data()) for b in layer.blobs])
                   for layer in self.layers if layer.blobs}
        write_caffemodel(path, weights, net=self.to_proto())
