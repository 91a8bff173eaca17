"""Building the ONNX graph: ``GraphBuilder`` collects nodes, initializers and value infos under
unique names; ``LayerContext`` is what one layer's mapping sees (its node, its bottoms' ONNX
names, the names its tops must get, its parameters, its shapes) with helpers that add nodes.

A mapping (runner.onnx_export.table) writes each top ``j`` as ``ctx.outputs[j]`` and may add any
number of helper nodes and constants in between; helper names are derived from the layer's name.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from netdef.errors import ExportError
from netdef.graph import LayerNode
from netdef.shapes import LayerShapes, canonical_axis, infer
from proto import caffe_pb2 as pb
from runner.onnx_export.plan import Dims, Plan

FLOAT = onnx.TensorProto.FLOAT
INT64 = onnx.TensorProto.INT64


class GraphBuilder:
    """Nodes in execution order, initializers, and the set of names already taken."""

    def __init__(self, reserved: Iterable[str]):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consumed: set[str] = set()
        self.declared: dict[str, Dims] = {}       # tensors declared with their shapes (value_info)
        self.extra_inputs: dict[str, Dims] = {}   # graph inputs a mapping adds (recurrent state)
        self.extra_outputs: dict[str, Dims] = {}  # graph outputs a mapping adds
        self._names: set[str] = set(reserved)
        self._node_names: set[str] = set()
        self._shared: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        """A tensor name not used yet: ``base``, else ``base_1``, ``base_2``, ..."""
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def claim(self, name: str) -> None:
        """Mark a reserved name (a blob name) as written."""
        self._names.add(name)

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
             **attrs: Any) -> None:
        base, k = name, 0
        while name in self._node_names:
            k += 1
            name = f"{base}_{k}"
        self._node_names.add(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs))
        self.consumed.update(i for i in inputs if i)

    def initializer(self, array: np.ndarray, base: str, key: tuple | None = None) -> str:
        """Add ``array`` as an initializer named after ``base``; with ``key``, an initializer added
        before under the same key is reused (parameters shared between layers)."""
        if key is not None and key in self._shared:
            return self._shared[key]
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        if key is not None:
            self._shared[key] = name
        return name


class LayerContext:
    """One layer as its mapping sees it."""

    def __init__(self, builder: GraphBuilder, plan: Plan, node: LayerNode, inputs: list[str],
                 outputs: list[str], params: Sequence[np.ndarray],
                 constant: Callable[[LayerNode], list[np.ndarray]] | None):
        self.b = builder
        self.plan = plan
        self.node = node
        self.name = node.name
        self.type = node.type
        self.param: pb.LayerParameter = node.param
        self.inputs = inputs
        self.outputs = outputs
        self._params = params
        self._constant = constant
        self._first_node = True
        self.notes: list[str] = []            # told to the user with the export's notes

    # ------------------------------------------------------------------ facts
    def refuse(self, why: str) -> ExportError:
        """The error refusing this layer: ``layer 'name' (Type): why``."""
        return ExportError(f"layer '{self.name}' ({self.type}): {why}")

    def bottom_dims(self, j: int = 0) -> Dims:
        return self.plan.dims[self.node.bottoms[j]]

    def top_dims(self, j: int = 0) -> Dims:
        return self.plan.dims[self.node.tops[j]]

    def shapes(self) -> LayerShapes:
        """netdef.shapes.infer on this layer at the reference batch (geometry included)."""
        return infer(self.param, self.node.bottom_shapes)

    def axis(self, axis: int, j: int = 0, what: str = "axis") -> int:
        """Caffe's canonical axis index of ``axis`` in bottom ``j``."""
        return canonical_axis(axis, self.bottom_dims(j).rank, f"layer '{self.name}' ({self.type})",
                              what)

    def blob(self, k: int) -> np.ndarray:
        """Parameter blob ``k`` as float32 in its Caffe shape."""
        if k >= len(self._params):
            raise self.refuse(f"has {len(self._params)} parameter blobs, the mapping reads blob {k}")
        arr = np.asarray(self._params[k], dtype=np.float32)
        want = tuple(self.node.param_shapes[k])
        if arr.shape != want:
            raise self.refuse(f"parameter blob {k} has shape {arr.shape}, the net expects {want}")
        return arr

    def forward_constant(self) -> list[np.ndarray]:
        """This layer's tops computed by nbcaffe's own forward (layers whose output depends only
        on shapes and parameters, such as PriorBox)."""
        if self._constant is None:
            raise self.refuse("its output is exported as a constant computed by nbcaffe's forward, "
                              "and no runner Net was given to compute it")
        return self._constant(self.node)

    # ------------------------------------------------------------------ building
    def tmp(self, label: str) -> str:
        """A fresh intermediate tensor name for this layer."""
        return self.b.fresh(f"{self.name}/{label}")

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        """Add one single-output node; returns its output name (``out`` or a fresh one)."""
        return self.op_n(op_type, inputs, [out or self.tmp(op_type.lower())], **attrs)[0]

    def op_n(self, op_type: str, inputs: Sequence[str], outs: Sequence[str], **attrs: Any) -> list[str]:
        """Add one node with several outputs (names given)."""
        name = self.name if self._first_node else f"{self.name}/{op_type}"
        self._first_node = False
        self.b.node(op_type, inputs, outs, name, **attrs)
        return list(outs)

    def const(self, value: Any, label: str, dtype: Any = np.float32) -> str:
        """An initializer holding ``value`` (dtype float32 unless given)."""
        return self.b.initializer(np.asarray(value, dtype=dtype), f"{self.name}/{label}")

    def ints(self, values: Sequence[int], label: str) -> str:
        """A 1-D int64 initializer (shapes, axes, sizes)."""
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1), label, np.int64)

    def param_tensor(self, k: int, label: str, shape: Sequence[int] | None = None) -> str:
        """Parameter blob ``k`` as an initializer (reshaped to ``shape`` if given), shared with every
        layer that shares the blob (``param { name: ... }``)."""
        arr = self.blob(k)
        if shape is not None:
            arr = arr.reshape(tuple(shape))
        spec = self.node.param_specs[k] if k < len(self.node.param_specs) else None
        owner = spec.owner if spec is not None and spec.owner is not None else (self.name, k)
        return self.b.initializer(arr, f"{owner[0]}.{label}", key=(owner, label, arr.shape))

    def reshape(self, x: str, dims: Dims | Sequence[int], out: str | None = None,
                dyn: int | None = None) -> str:
        """Reshape ``x`` to ``dims``: the axis scaling with the batch becomes -1 (ONNX infers it),
        every other axis is its size."""
        if isinstance(dims, Dims):
            ref, dyn = dims.ref, dims.dyn
        else:
            ref = tuple(int(d) for d in dims)
        target = [-1 if i == dyn else int(d) for i, d in enumerate(ref)]
        attrs = {}
        if 0 in target:
            if dyn is not None:
                raise self.refuse(f"cannot reshape to {ref} with a dynamic batch axis (an empty "
                                  "axis hides the batch); export with --batch N")
            attrs["allowzero"] = 1
        return self.op("Reshape", [x, self.ints(target, "shape")], out, **attrs)

    def static(self, dims: Dims, axes: Iterable[int], what: str) -> None:
        """Refuse when one of ``axes`` scales with the batch (the mapping needs its size)."""
        if dims.dyn is not None and dims.dyn in set(axes):
            raise self.refuse(f"{what} runs along axis {dims.dyn}, which scales with the batch; "
                              "export with a fixed batch (--batch N)")
