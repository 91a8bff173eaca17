"""pycaffe's ``Net`` and solvers over runner's Net and Solver.

``caffe.Net`` holds a ``runner.net.Net`` and gives it pycaffe's surface: both constructors
(``Net(model, phase[, level, stages, weights])`` and the legacy ``Net(model, weights, phase)``),
``blobs``/``params``/``layers``/``layer_dict``/``top_names``/... in Caffe's order, ``forward`` and
``backward`` with pycaffe's arguments and return values, the batched ``forward_all`` /
``forward_backward_all``, HDF5 weights, ``set_input_arrays``. Blobs are runner Blobs (``data``,
``diff``, ``shape``, ``count``, ``num``, ``channels``, ``height``, ``width``, ``reshape(*dims)``).
Layers are runner layers, except a Python layer, which is the user's ``caffe.Layer`` object.

The solvers hold a ``runner.solver.solver.Solver``; ``solver.net`` and ``solver.test_nets`` are
``caffe.Net`` views of its nets (made once, so blobs read from them are the solver's own).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import zip_longest
from typing import Any

import numpy as np

from caffe import _mode
from proto import caffe_pb2

_UNSET = object()


def _net_arguments(args: tuple, kw: dict) -> tuple[Any, int, Sequence[str], Any]:
    """(phase, level, stages, weights) from pycaffe's two constructor forms."""
    if args and isinstance(args[0], (str, bytes, os.PathLike)):
        # legacy: Net(network_file, pretrained_param_file, phase)
        if len(args) != 2 or any(v is not _UNSET for v in kw.values()):
            raise TypeError("caffe.Net(network_file, pretrained_param_file, phase) takes exactly "
                            "these three positional arguments")
        return args[1], 0, (), args[0]
    names = ("phase", "level", "stages", "weights")
    if len(args) > len(names):
        raise TypeError(f"caffe.Net takes at most 5 arguments ({len(args) + 1} given)")
    values = dict(kw)
    for name, value in zip(names, args):
        if values[name] is not _UNSET:
            raise TypeError(f"caffe.Net got multiple values for argument '{name}'")
        values[name] = value
    if values["phase"] is _UNSET:
        raise TypeError("caffe.Net needs a phase: caffe.Net(network_file, caffe.TEST, "
                        "weights=...) or caffe.Net(network_file, weights, caffe.TEST)")
    level = 0 if values["level"] is _UNSET else int(values["level"])
    stages = () if values["stages"] in (_UNSET, None) else tuple(values["stages"])
    weights = None if values["weights"] is _UNSET else values["weights"]
    return values["phase"], level, stages, weights


class Net:
    """A Caffe net with pycaffe's interface (see the module docstring)."""

    def __init__(self, network_file: Any, *args: Any, phase: Any = _UNSET, level: Any = _UNSET,
                 stages: Any = _UNSET, weights: Any = _UNSET):
        from runner.net import Net as RunnerNet
        phase, level, stages, weights = _net_arguments(
            args, {"phase": phase, "level": level, "stages": stages, "weights": weights})
        if isinstance(network_file, bytes):
            network_file = network_file.decode()
        if isinstance(weights, bytes):
            weights = weights.decode()
        self._net = RunnerNet(network_file, phase=phase, weights=weights, device=_mode.device(),
                              stages=stages, level=level, seed=_mode.next_seed())

    @classmethod
    def _wrap(cls, net: Any) -> Net:
        """A caffe.Net view of an existing runner.net.Net (a solver's nets)."""
        obj = cls.__new__(cls)
        obj._net = net
        return obj

    def __repr__(self) -> str:
        return f"<caffe.Net {self._net.name!r} phase={self._net.phase} on {self._net.backend.name}>"

    # ------------------------------------------------------------------ structure
    @property
    def name(self) -> str:
        return self._net.name

    @property
    def blobs(self) -> OrderedDict:
        """Blob name -> Blob, input to output (split blobs included, as in Caffe)."""
        return self._net.blobs

    @property
    def params(self) -> OrderedDict:
        """Layer name -> list of its parameter Blobs (weights, bias), for layers that have any."""
        return self._net.params

    @property
    def layers(self) -> list:
        """The layers in execution order; a Python layer is the user's caffe.Layer object."""
        from runner.layers.python import PythonLayer
        if getattr(self, "_layers", None) is None:
            self._layers = [lr.py if isinstance(lr, PythonLayer) else lr for lr in self._net.layers]
        return self._layers

    @property
    def _layer_names(self) -> list[str]:
        return list(self._net.layer_dict)

    @property
    def layer_dict(self) -> OrderedDict:
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def _blob_names(self) -> list[str]:
        return list(self._net.blobs)

    @property
    def _blobs(self) -> list:
        return list(self._net.blobs.values())

    @property
    def inputs(self) -> list[str]:
        return list(self._net.inputs)

    @property
    def outputs(self) -> list[str]:
        return list(self._net.outputs)

    @property
    def _inputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.inputs]

    @property
    def _outputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.outputs]

    @property
    def top_names(self) -> OrderedDict:
        """Layer name -> names of its top blobs."""
        return OrderedDict((k, list(v)) for k, v in self._net.top_names.items())

    @property
    def bottom_names(self) -> OrderedDict:
        """Layer name -> names of its bottom blobs."""
        return OrderedDict((k, list(v)) for k, v in self._net.bottom_names.items())

    def _top_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(t) for t in self.top_names[self._layer_names[i]]]

    def _bottom_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(b) for b in self.bottom_names[self._layer_names[i]]]

    @property
    def blob_loss_weights(self) -> OrderedDict:
        """Blob name -> loss weight (0 for blobs that are not losses)."""
        weights = OrderedDict((n, 0.0) for n in self._net.blobs)
        for name, layer in self._net.layer_dict.items():
            for top, w in zip(self._net.top_names[name], layer.loss_weights):
                weights[top] = float(w)
        return weights

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    # ------------------------------------------------------------------ running
    def _index(self, layer: str) -> int:
        try:
            return self._layer_names.index(layer)
        except ValueError:
            raise ValueError(f"net {self.name!r} has no layer {layer!r}") from None

    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Feed ``kwargs`` (input blob name -> array; another batch size reshapes the net), run
        layers ``start``..``end`` (inclusive, default all) and return {blob: data} for the net's
        outputs, or ``end``'s tops, plus ``blobs``."""
        blobs = list(blobs or [])
        self._net.forward(start=start, end=end, **kwargs)
        names = set((self.top_names[end] if end is not None else self.outputs) + blobs)
        return {n: np.array(self._net.blobs[n].host_data()) for n in names}

    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Set output diffs from ``kwargs`` (output blob name -> array), backpropagate from layer
        ``start`` (default the last) down to ``end`` (default the first) and return {blob: diff}
        for the net's inputs, or ``end``'s bottoms, plus ``diffs``."""
        diffs = list(diffs or [])
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise ValueError(f"top diff arguments {sorted(kwargs)} do not match the net's "
                                 f"outputs {sorted(self.outputs)}")
            for top, diff in kwargs.items():
                blob = self._net.blobs[top]
                if np.shape(diff)[:1] != blob.shape[:1]:
                    raise ValueError(f"diff for {top!r} has batch {np.shape(diff)[:1]}, the blob "
                                     f"{blob.shape}")
                blob.diff[...] = diff
        self._net.backward(start=start, end=end)
        names = set((self.bottom_names[end] if end is not None else self.inputs) + diffs)
        return {n: np.array(self._net.blobs[n].host_diff()) for n in names}

    def _batch(self, arrays: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Split equally long arrays into batches of the net's batch size (its first blob's
        first dimension); the last batch is padded with zeros."""
        if not arrays:
            return
        num = len(next(iter(arrays.values())))
        batch = next(iter(self._net.blobs.values())).shape[0]
        for i in range(0, num - num % batch, batch):
            yield {name: a[i:i + batch] for name, a in arrays.items()}
        rest = num % batch
        if rest:
            yield {name: np.concatenate([a[-rest:], np.zeros((batch - rest,) + a.shape[1:], a.dtype)])
                   for name, a in arrays.items()}

    def forward_all(self, blobs: Sequence[str] | None = None, **kwargs: np.ndarray
                    ) -> dict[str, np.ndarray]:
        """``forward`` over inputs of any length, batch by batch; {blob: all rows}, padding
        dropped."""
        if not kwargs:
            raise ValueError("forward_all needs input arrays, e.g. forward_all(data=images)")
        outs: dict[str, list] = {n: [] for n in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs):
            for name, value in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(value)
        n = len(next(iter(kwargs.values())))
        return {name: np.asarray(rows)[:n] for name, rows in outs.items()}

    def forward_backward_all(self, blobs: Sequence[str] | None = None,
                             diffs: Sequence[str] | None = None, **kwargs: np.ndarray
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``forward`` then ``backward`` batch by batch; ``kwargs`` holds inputs (for forward)
        and output diffs (for backward). Returns ({blob: data rows}, {blob: diff rows})."""
        if not kwargs:
            raise ValueError("forward_backward_all needs input or output-diff arrays")
        outs: dict[str, list] = {n: [] for n in set(self.outputs + list(blobs or []))}
        grads: dict[str, list] = {n: [] for n in set(self.inputs + list(diffs or []))}
        fwd = self._batch({k: kwargs[k] for k in self.inputs if k in kwargs})
        bwd = self._batch({k: kwargs[k] for k in self.outputs if k in kwargs})
        for fb, bb in zip_longest(fwd, bwd, fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(value)
            for name, value in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(value)
        n = len(next(iter(kwargs.values())))
        return ({k: np.asarray(v)[:n] for k, v in outs.items()},
                {k: np.asarray(v)[:n] for k, v in grads.items()})

    def after_backward(self, nccl: Any) -> None:
        """Exchange the gradients of ``nccl``'s solver layer by layer during backward (pycaffe's
        ``net.after_backward(nccl)``, used with ``layer_wise_reduce``)."""
        nccl.layer_wise()

    def reshape(self) -> None:
        """Reshape every layer to its bottoms (after ``blobs[name].reshape(...)``)."""
        self._net.reshape()

    def clear_param_diffs(self) -> None:
        self._net.clear_param_diffs()

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Give the net's first layer, a MemoryData layer, the arrays it serves (N x C x H x W
        and N labels; N a multiple of its batch size)."""
        first = self._net.layers[0] if self._net.layers else None
        if first is None or first.type != "MemoryData":
            raise ValueError("set_input_arrays may only be called if the first layer is a "
                             "MemoryData layer")
        first.set_input_arrays(data, np.asarray(labels).reshape(len(labels)))

    _set_input_arrays = set_input_arrays

    # ------------------------------------------------------------------ weights
    def copy_from(self, filename: str) -> None:
        """Copy parameters by layer name from a .caffemodel (binary or HDF5)."""
        self._net.copy_from(filename)

    def share_with(self, other: Net) -> None:
        """Use ``other``'s parameter blobs for layers of the same name (no copy)."""
        self._net.share_weights(other._net)

    def save(self, filename: str) -> None:
        """Write a binary .caffemodel."""
        self._net.save(filename)

    def save_hdf5(self, filename: str) -> None:
        """Write the parameters as Caffe's HDF5 weights (Net::ToHDF5)."""
        self._net.save_hdf5(filename)

    def load_hdf5(self, filename: str) -> None:
        """Copy parameters from Caffe's HDF5 weights."""
        self._net.copy_from(filename)


class Solver:
    """pycaffe's Solver: a runner Solver built from a solver prototxt, in the current mode."""

    _type: str | None = None   # the update rule a subclass forces (None: the file's type)

    def __init__(self, filename: str):
        from netdef.prototxt import read_solver
        from runner.solver.solver import Solver as RunnerSolver
        filename = os.fspath(filename)
        param = read_solver(filename)
        if self._type is not None:
            param.ClearField("solver_type")
            param.type = self._type
        seed = _mode.next_seed()
        if param.random_seed < 0 and seed is not None:
            param.random_seed = seed
        from caffe.nccl import world
        self._solver = RunnerSolver(param, device=_mode.device(), solver_path=filename,
                                    world=world())
        self._net = Net._wrap(self._solver.net)
        self._test_nets = [Net._wrap(t) for t in self._solver.test_nets]

    def __del__(self) -> None:
        solver = getattr(self, "_solver", None)
        if solver is not None:
            try:
                solver.close()
            except Exception:
                pass

    @property
    def net(self) -> Net:
        """The training net."""
        return self._net

    @property
    def test_nets(self) -> list[Net]:
        """The test nets (sharing the training net's parameters)."""
        return self._test_nets

    @property
    def iter(self) -> int:
        return self._solver.iter

    @property
    def param(self) -> caffe_pb2.SolverParameter:
        return self._solver.param

    def step(self, iters: int) -> None:
        """Train ``iters`` iterations (tests, display and snapshots as the solver file says)."""
        self._solver.step(int(iters))

    def solve(self, resume_file: str | None = None) -> None:
        """Train to max_iter, optionally restoring a .solverstate first."""
        self._solver.solve(resume=resume_file)

    def restore(self, state_file: str) -> None:
        self._solver.restore(state_file)

    def snapshot(self) -> None:
        """Write ``<prefix>_iter_<N>.caffemodel`` and ``.solverstate``."""
        self._solver.snapshot()

    def add_callback(self, on_start: Any, on_gradients_ready: Callable[[], None] | None = None) -> None:
        """Call ``on_start()`` at the start of every iteration (after a test pass, if any) and
        ``on_gradients_ready()`` once its gradients are computed, before the update; or, given a
        ``caffe.NCCL``, average the gradients over the solvers there (pycaffe's two overloads)."""
        if on_gradients_ready is None:          # add_callback(nccl)
            on_start, on_gradients_ready = on_start.on_start, on_start.on_gradients_ready
        self._solver.add_callback(on_start, on_gradients_ready)

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use the training net's parameters."""
        net._net.share_weights(self._solver.net)


class SGDSolver(Solver):
    _type = "SGD"


class NesterovSolver(SGDSolver):
    _type = "Nesterov"


class AdaGradSolver(SGDSolver):
    _type = "AdaGrad"


class RMSPropSolver(SGDSolver):
    _type = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    _type = "AdaDelta"


class AdamSolver(SGDSolver):
    _type = "Adam"


_SOLVERS = {c._type: c for c in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,
                                 AdaDeltaSolver, AdamSolver)}


def get_solver(filename: str) -> SGDSolver:
    """The solver the file's ``type`` names (SGD by default), like Caffe's SolverRegistry."""
    from netdef.prototxt import read_solver
    from runner.solver.updates import solver_type
    cls = _SOLVERS[solver_type(read_solver(os.fspath(filename)))]
    return cls(filename)
