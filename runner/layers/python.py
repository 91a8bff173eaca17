"""Python layers (Caffe's PythonLayer): ``type: "Python"`` with ``python_param { module: "m"
layer: "Cls" param_str: "..." }`` runs ``m.Cls``, a subclass of ``caffe.Layer`` (``PyLayer`` here)
written against pycaffe's interface::

    class EuclideanLoss(caffe.Layer):
        def setup(self, bottom, top): ...          # once; may add parameters: self.blobs.add_blob(10)
        def reshape(self, bottom, top): top[0].reshape(1)        # before every forward
        def forward(self, bottom, top): top[0].data[...] = ...
        def backward(self, top, propagate_down, bottom): bottom[0].diff[...] = ...

Loading (Caffe's GetPythonLayer): ``import m`` from ``sys.path``; when ``m`` is not found there and
the net came from a prototxt file, that file's folder is appended to ``sys.path`` (once) and the
import retried. The class is constructed with the LayerParameter; ``param_str`` and ``phase``
(``caffe.TRAIN`` = 0, ``caffe.TEST`` = 1) are set before ``setup``, as PythonLayer::LayerSetUp does.

Blobs: the layer gets runner Blobs (``data``/``diff`` host numpy views, ``shape``, ``count``,
``num``/``channels``/``height``/``width``, ``reshape(*dims)``). On the cuda backend those views are
host mirrors synced on access (runner/blob.py), as pycaffe's cpu_data is on a GPU net: what the
layer writes reaches the device before the next device work reads it. A Python layer is never
replayable: runner/backend/replay.py runs it eagerly between replayed stretches (and uploads its host
writes before the next stretch).

Shapes: only running ``setup``/``reshape`` tells a Python layer's top and parameter shapes, so the
Net sets Python layers up while its graph is built (``PythonLayers``, the ``layer_shapes`` hook of
``netdef.graph.build_graph``), in Caffe's order and on the very blobs the Net then uses.

Errors: whatever the layer's code raises becomes one ``LayerError`` line naming the layer, its
module and class, the method and the file:line it was raised at (the original exception chained).
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from netdef.errors import LayerError, NetDefinitionError
from netdef.shapes import LayerShapes
from proto import caffe_pb2 as pb
from runner.backend.base import Backend
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


class BlobVec(list):
    """A Python layer's parameter blobs (pycaffe's BlobVec): a list of Blobs with ``add_blob``."""

    def __init__(self, backend: Backend | None = None, owner: str = ""):
        super().__init__()
        self.backend, self.owner = backend, owner

    def add_blob(self, *shape: int) -> None:
        """Append a new zero-filled blob of ``shape`` (pycaffe: ``self.blobs.add_blob(2, 3)``)."""
        if self.backend is None:
            from runner.backend import get_backend
            self.backend = get_backend("cpu")
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        self.append(Blob(self.backend, shape, f"{self.owner}/{len(self)}"))


class PyLayer:
    """Base class of layers written in Python (pycaffe's ``caffe.Layer``). Subclasses define
    ``setup``, ``reshape``, ``forward`` and, when a gradient is needed, ``backward``, with pycaffe's
    signatures; ``self.param_str``, ``self.phase`` and ``self.blobs`` are set by the net."""

    type = "Python"

    def __init__(self, param: pb.LayerParameter | None = None):
        self.param_str = param.python_param.param_str if param is not None else ""
        self.phase = pb.TEST
        self.blobs = BlobVec()

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Once, before the first reshape (default: nothing)."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError("a Python layer must define reshape(bottom, top) to shape its tops")

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError("a Python layer must define forward(bottom, top)")

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """Default: no gradient, which is fine while no bottom asks for one."""
        if any(propagate_down):
            raise NotImplementedError("a bottom needs a gradient but the layer defines no "
                                      "backward(top, propagate_down, bottom)")


def import_layer_class(param: pb.LayerParameter, search_dir: str | None = None) -> type:
    """The class ``python_param.layer`` of module ``python_param.module`` (see the module
    docstring for where it is looked up). NetDefinitionError naming the layer if it cannot be."""
    p = param.python_param
    where = f"layer '{param.name}' (Python)"
    if not p.module or not p.layer:
        raise NetDefinitionError(f"{where}: python_param needs both 'module' and 'layer' "
                                 f"(got module {p.module!r}, layer {p.layer!r})")
    try:
        try:
            mod = importlib.import_module(p.module)
        except ModuleNotFoundError as e:
            top = p.module.split(".")[0]
            if e.name != top or not search_dir or search_dir in sys.path:
                raise
            sys.path.append(search_dir)
            mod = importlib.import_module(p.module)
    except ModuleNotFoundError as e:
        searched = "sys.path" + (f" and {search_dir}" if search_dir else "")
        raise NetDefinitionError(f"{where}: cannot import module '{p.module}' ({e}; searched "
                                 f"{searched})") from e
    except Exception as e:
        raise NetDefinitionError(f"{where}: importing module '{p.module}' failed at "
                                 f"{_origin(e, None)}: {type(e).__name__}: {_one_line(e)}") from e
    cls = getattr(mod, p.layer, None)
    src = getattr(mod, "__file__", None) or p.module
    if cls is None:
        raise NetDefinitionError(f"{where}: module '{p.module}' ({src}) has no class '{p.layer}'")
    if not (isinstance(cls, type) and issubclass(cls, PyLayer)):
        raise NetDefinitionError(f"{where}: '{p.module}.{p.layer}' ({src}) is not a subclass of "
                                 "caffe.Layer")
    return cls


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or "(no message)"


def _origin(e: BaseException, module_file: str | None) -> str:
    """``file:line`` where ``e`` was raised: the innermost frame in ``module_file`` if any."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "?"
    mine = [f for f in frames if module_file and os.path.abspath(f.filename) == module_file]
    f = (mine or frames)[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno}"


@register("Python")
class PythonLayer(Layer):
    """Runs a user's ``caffe.Layer`` subclass as a net layer (Caffe's PythonLayer<Dtype>)."""

    def __init__(self, param: pb.LayerParameter, backend: Backend, phase: Any = "TEST",
                 rng: np.random.Generator | None = None, search_dir: str | None = None):
        super().__init__(param, backend, phase, rng)
        cls = import_layer_class(param, search_dir)
        p = param.python_param
        self.describe = f"Python {p.module}.{p.layer}"
        mod_file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        self._module_file = os.path.abspath(mod_file) if mod_file else None
        self.py: PyLayer = self._call("__init__", cls, param)
        if not isinstance(getattr(self.py, "blobs", None), BlobVec):
            self.py.blobs = BlobVec()
        self.py.blobs.backend, self.py.blobs.owner = backend, self.name
        self.py.param_str = p.param_str
        self.py.phase = pb.TRAIN if self.phase == "TRAIN" else pb.TEST
        self.blobs = self.py.blobs
        self._set_up = False

    def _call(self, what: str, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:
            raise LayerError(f"layer '{self.name}' ({self.describe}): {what} raised at "
                             f"{_origin(e, self._module_file)}: {type(e).__name__}: "
                             f"{_one_line(e)}") from e

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """The user's ``setup``, once (the Net asks again after graph building: no-op)."""
        if self._set_up:
            return
        self._call("setup", self.py.setup, bottoms, tops)
        self.blobs = self.py.blobs
        for b in self.blobs:
            if not isinstance(b, Blob) or b.backend is not self.backend:
                raise self.error(f"self.blobs must hold blobs made with self.blobs.add_blob(...), "
                                 f"found {type(b).__name__}")
        self.param_propagate_down = [True] * len(self.blobs)
        self._set_up = True

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        self._call("reshape", self.py.reshape, bottoms, tops)

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        self._call("forward", self.py.forward, bottoms, tops)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        self._call("backward", self.py.backward, tops, list(propagate_down), bottoms)

    def __repr__(self) -> str:
        return f"<PythonLayer {self.name!r} {self.describe}>"


class PythonLayers:
    """The ``layer_shapes`` hook runner.Net hands to ``netdef.graph.build_graph``: it constructs,
    sets up and reshapes each Python layer when the graph reaches it (bottoms get blobs of their
    inferred shapes, tops are shaped by the layer's ``reshape``) and answers with the shapes the
    layer produced. The Net then takes the built layers (``layers``) and the blobs made on the
    way (``blobs``, by blob name) instead of making new ones. Other layer types: None."""

    def __init__(self, backend: Backend, phase: str, rng: np.random.Generator | None,
                 search_dir: str | None = None):
        self.backend, self.phase, self.rng, self.search_dir = backend, phase, rng, search_dir
        self.layers: dict[str, PythonLayer] = {}
        self.blobs: dict[str, Blob] = {}

    def _blob(self, name: str, shape: Sequence[int]) -> Blob:
        blob = self.blobs.get(name)
        if blob is None:
            blob = self.blobs[name] = Blob(self.backend, shape, name)
        elif blob.shape != tuple(shape):
            blob.reshape(shape)
        return blob

    def __call__(self, lp: pb.LayerParameter, bottom_shapes: list[tuple[int, ...]]
                 ) -> LayerShapes | None:
        if lp.type != "Python":
            return None
        bottoms = [self._blob(n, s) for n, s in zip(lp.bottom, bottom_shapes)]
        tops = [bottoms[j] if j < len(lp.bottom) and lp.bottom[j] == t else self._blob(t, (0,))
                for j, t in enumerate(lp.top)]
        layer = PythonLayer(lp, self.backend, self.phase, self.rng, self.search_dir)
        layer.setup(bottoms, tops)
        layer.reshape(bottoms, tops)
        self.layers[lp.name] = layer
        return LayerShapes([t.shape for t in tops], [b.shape for b in layer.blobs], 0)

    def take_blob(self, name: str, shape: Sequence[int]) -> Blob | None:
        """The blob made for ``name`` while building (reshaped to ``shape``), or None."""
        blob = self.blobs.pop(name, None)
        if blob is not None and blob.shape != tuple(shape):
            blob.reshape(shape)
        return blob
