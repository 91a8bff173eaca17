"""Launch replay: record the kernel launches of a steady-state stretch of work once, then re-issue
them as pre-bound launches, with none of the Python that produced them.

A training iteration of a small net on the cuda backend is bound by host work, not by the GPU:
LeNet at batch 64 issues 55 launches, and each one costs the layer's Python, the backend op, the
kernel module's checks and Numba's dispatch (type inference of every argument, then packing them),
about 150 µs in all, while the GPU needs a few µs per kernel. Caffe's C++ pays ~5 µs per launch.
Replay closes that gap the way CUDA graphs do, without needing a capturable stream:

1. ``Recorder`` (a context manager) hooks Numba's kernel launch (``_Kernel.launch`` on a GPU,
   ``FakeCUDAKernel.__call__`` in the simulator) and its copy/memset entry points. Inside it, the
   work runs normally and every launch is also kept as a ``BoundLaunch``: the compiled kernel, the
   launch configuration and the argument values already packed for the driver. A device-to-device
   copy or memset is kept as a replayable op too. A host<->device transfer inside the recording
   makes it *unsafe* (the Python around a transfer usually decides something from device data),
   and the stretch stays eager.
2. ``Segment.issue()`` re-issues the ops in order. Pre-bound launches skip Numba's dispatch; the
   packed arguments carry raw device pointers, and each ``BoundLaunch`` holds references to its
   arrays so none of them can be freed while the segment exists.

What makes a stretch replayable (``Layer.replayable``, set only on audited layer classes): every
launch's arguments are the same from one iteration to the next (same buffers, same scalars), the
Python around the launches decides nothing from device data, and no host<->device copy happens.
Dropout (a per-iteration counter), data layers (host input), loss layers (read the loss on the
host) and the solver update under a changing learning rate stay eager; ``NetReplay`` runs them
between replayed segments. Segments are re-recorded when a bottom's shape changes.

CUDA graphs (``NBCAFFE_CUDA_GRAPHS=1``, or ``NetReplay.graphs = True``; off by default until a GPU
run measures them): a segment made only of kernel launches whose arguments never change (the
diff clear and every forward/backward stretch; not the update, whose rates are re-bound) is, at its first
replay, re-launched into a ``cuda.core`` GraphBuilder on a side stream (stream capture) and from
then on launched as one graph on the default stream: one driver call per segment instead of one
per kernel, and shorter gaps between the kernels on the GPU. Any failure while capturing leaves
the segment on plain replay (noted once).

Use: ``CudaBackend.executor(net)`` returns a ``NetReplay`` (``NBCAFFE_REPLAY=0`` or ``replay=False``
gives ``runner.executor.EagerExecutor`` instead), which the Solver drives through the executor
interface; the first iteration records, later ones replay. Results are identical to the eager
path (tested bit for bit in the simulator in ``tests/runner/test_replay.py``). ``LaunchCounter``
counts launches through the same hooks (the benches use it).
"""
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kernels._launch import SIMULATOR

_ACTIVE = threading.local()        # per thread: the open Recorders and LaunchCounters (innermost last)
_HOOKED = False


def replay_enabled() -> bool:
    """Replay is on unless ``NBCAFFE_REPLAY`` is ``0`` / ``off`` / ``false``."""
    return os.environ.get("NBCAFFE_REPLAY", "1").strip().lower() not in ("0", "off", "false", "no")


def graphs_enabled() -> bool:
    """Replayed segments become CUDA graphs when ``NBCAFFE_CUDA_GRAPHS`` is ``1`` / ``on`` (and
    not in the simulator, which has no graphs)."""
    flag = os.environ.get("NBCAFFE_CUDA_GRAPHS", "0").strip().lower() in ("1", "on", "true", "yes")
    return flag and not SIMULATOR


class BoundLaunch:
    """One kernel launch with its arguments packed once; ``__call__`` issues it again."""

    __slots__ = ("name", "args", "_call", "_floats", "parts")

    def __init__(self, name: str, args: tuple, call: Callable[[], Any],
                 floats: dict[int, Any] | None = None, parts: tuple | None = None):
        self.name = name
        self.args = args          # keeps every argument (device buffers) alive
        self._call = call
        self._floats = floats or {}   # argument index -> mutable holder of a float scalar
        self.parts = parts        # GPU: (launch function, config, kernel, packed args)

    def __call__(self) -> None:
        self._call()

    def launch_into(self, target: Any) -> None:
        """Issue this launch into ``target`` (a cuda.core stream or GraphBuilder) instead of the
        stream it was recorded on (GPU launches only)."""
        if self.parts is None:
            raise NotReplayable(f"{self.name}: no packed launch to re-target (simulator)")
        launch, config, kernel, packed = self.parts
        launch(target, config, kernel, *packed)

    def float_args(self) -> dict[int, float]:
        """The current value of each floating-point scalar argument, by argument index."""
        return {i: float(h.value) for i, h in self._floats.items()}

    def set_float(self, index: int, value: float) -> None:
        """Re-bind floating-point scalar argument ``index`` (rounded to the kernel's type, as
        the original launch rounded it) for the next re-issue."""
        self._floats[index].value = value

    def __repr__(self) -> str:
        return f"BoundLaunch({self.name})"


class _SimFloat:
    """Simulator: a float argument slot in a replayed call's argument list, keeping its numpy type."""

    __slots__ = ("args", "index", "kind")

    def __init__(self, args: list, index: int):
        self.args, self.index, self.kind = args, index, type(args[index])

    @property
    def value(self) -> float:
        return float(self.args[self.index])

    @value.setter
    def value(self, v: float) -> None:
        self.args[self.index] = self.kind(v)


def _bind_gpu(kernel: Any, args: tuple, griddim: Any, blockdim: Any, stream: Any,
              sharedmem: int) -> BoundLaunch:
    """Pack ``args`` for ``kernel`` exactly as Numba's ``_Kernel.launch`` does, once. Float
    scalars are packed as mutable ctypes values (``c_float``/``c_double``), kept by argument
    index so ``BoundLaunch.set_float`` can change them in place between re-issues."""
    from numba.core import types as nt
    from numba.cuda import dispatcher as nd
    if kernel.debug:
        raise NotReplayable(f"kernel {getattr(kernel, 'entry_name', '?')} was compiled with debug=True")
    cufunc = kernel._codelibrary.get_cufunc()
    retr: list = []
    packed: list = []
    floats: dict[int, Any] = {}
    for index, (t, v) in enumerate(zip(kernel.argument_types, args)):
        start = len(packed)
        kernel._prepare_args(t, v, stream, retr, packed)
        if t in (nt.float32, nt.float64) and len(packed) == start + 1:
            floats[index] = packed[start]
    if retr:        # a host array was passed and auto-copied: not a pure device launch
        raise NotReplayable(f"kernel {getattr(kernel, 'entry_name', '?')} was given a host array")
    if nd.CUDA_CORE_GE_1_0:
        config = nd.LaunchConfig(grid=griddim, block=blockdim, shmem_size=sharedmem,
                                 is_cooperative=kernel.cooperative)
    else:
        config = nd.LaunchConfig(grid=griddim, block=blockdim, shmem_size=sharedmem,
                                 cooperative_launch=kernel.cooperative)
    call = functools.partial(nd.launch, stream, config, cufunc.kernel, *packed)
    return BoundLaunch(getattr(kernel, "entry_name", "kernel"), args, call, floats,
                       parts=(nd.launch, config, cufunc.kernel, tuple(packed)))


def _bind_sim(fake: Any, args: tuple, original: Callable) -> BoundLaunch:
    """Simulator: the configured kernel object is shared (``k[grid, block]`` mutates it), so the
    configuration is captured here and restored before each replayed call."""
    cfg = (fake.grid_dim, fake.block_dim, fake.dynshared_size, fake.stream)
    current = list(args)
    floats = {i: _SimFloat(current, i) for i, v in enumerate(args)
              if isinstance(v, (float, np.floating))}

    def call() -> None:
        fake.grid_dim, fake.block_dim, fake.dynshared_size, fake.stream = cfg
        original(fake, *current)
    return BoundLaunch(getattr(fake.fn, "__name__", "kernel"), args, call, floats)


class NotReplayable(RuntimeError):
    """The recorded work cannot be replayed (the message says why)."""


class _Listening:
    """A context manager that the launch hooks see while it is open, in the thread that opened it
    (``_active(kind)``: this thread's open ones of a kind, innermost last)."""

    kind = ""

    def __enter__(self):
        _install_hooks()
        _active(self.kind).append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active(self.kind).remove(self)


def _active(kind: str) -> list:
    listening = getattr(_ACTIVE, kind, None)
    if listening is None:
        listening = []
        setattr(_ACTIVE, kind, listening)
    return listening


class Recorder(_Listening):
    """Context manager: records replayable ops of the launches made inside it (see module doc)."""

    kind = "recorders"

    def __init__(self) -> None:
        self.ops: list[Callable[[], None]] = []
        self.unsafe: str | None = None

    def mark_unsafe(self, why: str) -> None:
        if self.unsafe is None:
            self.unsafe = why


class LaunchCounter(_Listening):
    """Context manager: ``count`` is the number of kernel launches this thread made inside it
    (top-level launches, not device-function calls), seen through the same hooks as Recorder."""

    kind = "counters"

    def __init__(self) -> None:
        self.count = 0


def _count_launch() -> None:
    for c in _active("counters"):
        c.count += 1


def _recorder() -> Recorder | None:
    """The innermost recorder of the calling thread: launches from other threads (a data
    prefetcher, a user's own) are never recorded into it."""
    stack = _active("recorders")
    return stack[-1] if stack else None


def _install_hooks() -> None:
    """Wrap Numba's launch and transfer entry points once per process; the wrappers do nothing
    extra unless a Recorder or LaunchCounter is active in the calling thread."""
    global _HOOKED
    if _HOOKED:
        return
    if SIMULATOR:
        _hook_simulator()
    else:
        _hook_gpu()
    _HOOKED = True


def _hook_gpu() -> None:
    from numba.cuda import dispatcher as nd
    from numba.cuda.cudadrv import driver as drv

    launch = nd._Kernel.launch

    def launch_hook(self, args, griddim, blockdim, stream=0, sharedmem=0):
        launch(self, args, griddim, blockdim, stream, sharedmem)
        _count_launch()
        rec = _recorder()
        if rec is not None and rec.unsafe is None:
            try:
                rec.ops.append(_bind_gpu(self, tuple(args), griddim, blockdim, stream, sharedmem))
            except NotReplayable as e:
                rec.mark_unsafe(str(e))

    nd._Kernel.launch = launch_hook

    def unsafe(name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            rec = _recorder()
            if rec is not None:
                rec.mark_unsafe(f"{name} inside a replayable stretch")
            return fn(*a, **k)
        return wrapper

    def device_op(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            out = fn(*a, **k)
            rec = _recorder()
            if rec is not None:
                rec.ops.append(functools.partial(fn, *a, **k))
            return out
        return wrapper

    drv.host_to_device = unsafe("host-to-device copy", drv.host_to_device)
    drv.device_to_host = unsafe("device-to-host copy", drv.device_to_host)
    drv.device_to_device = device_op(drv.device_to_device)
    drv.device_memset = device_op(drv.device_memset)


def _hook_simulator() -> None:
    from numba.cuda.simulator import kernel as sk
    from numba.cuda.simulator.cudadrv import devicearray as sda

    call = sk.FakeCUDAKernel.__call__

    def call_hook(self, *args):
        out = call(self, *args)
        if self._device or self.grid_dim is None:      # a device-function call, not a launch
            return out
        _count_launch()
        rec = _recorder()
        if rec is not None:
            rec.ops.append(_bind_sim(self, args, call))
        return out

    sk.FakeCUDAKernel.__call__ = call_hook

    to_host = sda.FakeCUDAArray.copy_to_host
    to_dev = sda.FakeCUDAArray.copy_to_device

    def copy_to_host_hook(self, *a, **k):
        rec = _recorder()
        if rec is not None:
            rec.mark_unsafe("device-to-host copy inside a replayable stretch")
        return to_host(self, *a, **k)

    def copy_to_device_hook(self, ary, *a, **k):
        out = to_dev(self, ary, *a, **k)
        rec = _recorder()
        if rec is not None:
            if isinstance(ary, sda.FakeCUDAArray):
                rec.ops.append(functools.partial(to_dev, self, ary, *a, **k))
            else:
                rec.mark_unsafe("host-to-device copy inside a replayable stretch")
        return out

    sda.FakeCUDAArray.copy_to_host = copy_to_host_hook
    sda.FakeCUDAArray.copy_to_device = copy_to_device_hook


class Segment:
    """Recorded ops plus what to check and touch before re-issuing them.

    ``shapes``: the shapes and buffers of the blobs the work used, after recording (``NetReplay``
    re-records when they differ). ``touch``: blobs whose device copy the work
    uses; before replay each is synced to the device and marked device-newest, as the layers'
    own ``dev_data``/``dev_diff`` accesses would have done.
    """

    __slots__ = ("ops", "shapes", "touch", "unsafe", "slots", "graph", "graph_error")

    def __init__(self, ops: list, shapes: tuple, touch: Sequence[Any], unsafe: str | None):
        self.ops = ops
        self.shapes = shapes
        self.touch = tuple(touch)
        self.unsafe = unsafe
        self.slots: list[list[tuple[BoundLaunch, int]]] | None = None   # see NetReplay.update
        self.graph: _CapturedGraph | None = None
        self.graph_error: str | None = None

    def issue(self, graphs: bool = False) -> None:
        """Re-issue the recorded ops in order (the caller has synced ``touch`` with ``_touch``);
        with ``graphs``, as one CUDA graph where the segment can be captured (see module doc)."""
        if graphs and self.slots is None and self.graph_error is None:
            if self.graph is None:
                try:
                    self.graph = _CapturedGraph(self.ops)
                except Exception as e:  # noqa: BLE001 - any capture failure: plain replay
                    self.graph_error = f"{type(e).__name__}: {e}"
            if self.graph is not None:
                try:
                    self.graph.launch()
                    return
                except Exception as e:  # noqa: BLE001 - refused before it ran: plain replay from now
                    self.graph, self.graph_error = None, f"launch: {type(e).__name__}: {e}"
        for op in self.ops:
            op()


class _CapturedGraph:
    """The launches of a segment captured into one CUDA graph (cuda.core stream capture on a side
    stream, relaxed mode); ``launch()`` runs it on the default stream, in order with the eager
    work around it. Holds the launches (and so their buffers) for as long as it exists."""

    def __init__(self, ops: Sequence[Any]):
        if SIMULATOR:
            raise NotReplayable("the simulator has no CUDA graphs")
        if not ops or not all(isinstance(op, BoundLaunch) and op.parts is not None for op in ops):
            raise NotReplayable("the segment holds a copy or memset, not only kernel launches")
        from numba import cuda
        from numba.cuda.cudadrv import driver as drv
        self.ops = tuple(ops)
        self._side = cuda.stream()                       # capture may not use the legacy stream
        builder = drv._to_core_stream(self._side).create_graph_builder()
        builder.begin_building("relaxed")
        try:
            for op in self.ops:
                op.launch_into(builder)
        finally:
            builder.end_building()
        self._graph = builder.complete()
        self._stream = drv._to_core_stream(0)             # the default stream every launch uses
        self._graph.upload(self._stream)

    def launch(self) -> None:
        self._graph.launch(self._stream)


def _touch(blobs: Sequence[Any]) -> None:
    """Sync each blob's host writes up and mark its device copies newest, as the layers' own
    ``dev_data``/``dev_diff`` accesses do."""
    for b in blobs:
        b._data.device()
        b._diff.device()


def record(work: Callable[[], Any], touch: Sequence[Any], validity: Any) -> Segment:
    """Run ``work()`` under a Recorder; return its Segment (check ``.unsafe``), valid while
    ``validity()`` -- evaluated after the work, which may have reshaped blobs -- holds."""
    with Recorder() as rec:
        work()
    return Segment(rec.ops, validity(), touch, rec.unsafe)


# ------------------------------------------------------------------------------------ nets

def _buffers_key(blobs: Sequence[Any]) -> tuple:
    """Shapes and buffers of ``blobs``: a recorded segment is valid while this compares equal.
    The buffer objects themselves (compared by identity), not their ``id()``: holding them keeps
    a freed buffer's id from being reused by a new one that would then pass for it."""
    return tuple((b.shape, b._data, b._diff) for b in blobs)


def _unique(blobs: Sequence[Any]) -> list:
    seen: dict[int, Any] = {}
    for b in blobs:
        seen.setdefault(id(b), b)
    return list(seen.values())


def _rate_slots(ops: Sequence[Any], bounds: Sequence[int],
                rates: Sequence[float]) -> list[list[tuple[BoundLaunch, int]]] | None:
    """For each parameter i (its launches are ops[bounds[i-1]:bounds[i]]), the (launch, argument
    index) of the one float argument equal to rates[i] in each launch; None when some launch has
    no such argument or more than one (the rate cannot be told apart), or is not a launch."""
    out: list[list[tuple[BoundLaunch, int]]] = []
    start = 0
    for end, r in zip(bounds, rates):
        mine = []
        for op in ops[start:end]:
            if not isinstance(op, BoundLaunch):
                return None
            hits = [i for i, v in op.float_args().items() if v == r]
            if len(hits) != 1:
                return None
            mine.append((op, hits[0]))
        if not mine:
            return None
        out.append(mine)
        start = end
    return out


class NetReplay:
    """The executor interface (``runner.executor``) for a Net on the cuda backend: its
    ``clear_param_diffs``, ``forward_backward`` and the solver's ``update`` with the replayable
    stretches of layers (consecutive layers whose class sets ``replayable``) recorded once and
    replayed.

    Eager layers (data, loss, dropout, anything unaudited) run as in ``Net`` between the replayed
    stretches; the loss is summed the same way. ``notes`` lists, once each, the stretches that
    were found unsafe while recording (they then stay eager) -- the solver logs them.
    """

    replays = True

    def __init__(self, net: Any):
        self.net = net
        self.after_backward: Callable[[int], None] | None = None   # see runner.executor
        self._segments: dict[tuple, Segment] = {}
        self._seen: dict[tuple, Any] = {}       # key -> buffers check of the last eager pass
        self._rates_rebindable = True           # see update()
        self.graphs = graphs_enabled()          # replayed segments as CUDA graphs (module doc)
        self.notes: list[str] = []
        self.replayed = 0           # segments replayed (for tests and benchmarks)
        n = len(net.layers)
        self._fwd_runs = self._runs(range(n))
        self._bwd_runs = self._runs([i for i in range(n - 1, -1, -1) if net.need_backward_flags[i]])

    def _runs(self, order: Sequence[int]) -> list[tuple[bool, list[int]]]:
        """Split a layer order into (replayable?, [indices]) runs."""
        runs: list[tuple[bool, list[int]]] = []
        for i in order:
            ok = bool(getattr(self.net.layers[i], "replayable", False))
            if ok and runs and runs[-1][0]:
                runs[-1][1].append(i)
            else:
                runs.append((ok, [i]))
        return runs

    def _blobs(self, idx: Sequence[int]) -> list:
        net = self.net
        out: list = []
        for i in idx:
            out += net.bottom_vecs[i] + net.top_vecs[i] + list(net.layers[i].blobs)
        return _unique(out)

    def _run(self, tag: str, idx: Sequence[int], blobs: Sequence[Any], work: Callable[[], Any],
             extra: Any = None) -> None:
        """Replay the segment for (tag, idx) if it is recorded and still valid (same buffers and
        shapes, same ``extra``), else run ``work`` under a recorder (a segment found unsafe stays
        eager until its buffers change)."""
        key = (tag, idx[0], idx[-1])
        check = (_buffers_key(blobs), extra)
        _touch(blobs)               # host writes go up here, outside any recording
        seg = self._segments.get(key)
        if seg is not None and seg.shapes == check:
            if seg.unsafe is None:
                seg.issue(self.graphs)
                self.replayed += 1
                if seg.graph_error is not None:
                    note = f"{tag} segment at layer {idx[0]} is not a CUDA graph: {seg.graph_error}"
                    if note not in self.notes:
                        self.notes.append(note)
            else:
                work()
            return
        if self._seen.get(key) != check:
            # first sight of these buffers: run eagerly (JIT compiles, per-shape tables uploaded
            # on first use, blobs reshaped), record on the next pass, in the steady state; the
            # check is taken after the work, since a forward's reshape may reallocate its tops
            work()
            self._seen[key] = (_buffers_key(blobs), extra)
            return
        seg = record(work, blobs, lambda: (_buffers_key(blobs), extra))
        self._segments[key] = seg
        if seg.unsafe is not None:
            names = ([self.net.layers[i].name for i in idx] if tag in ("forward", "backward")
                     else [tag])
            note = f"{tag} of {names[0]}..{names[-1]} runs eagerly: {seg.unsafe}"
            if note not in self.notes:
                self.notes.append(note)

    def clear_param_diffs(self) -> None:
        """Zero every learnable parameter's diff (one replayed segment)."""
        net = self.net
        blobs = [p.blob for p in net.learnable_params]
        if blobs:
            self._run("clear", [0], blobs, net.clear_param_diffs)

    def update(self, works: Sequence[Callable[[], Any]], rates: Sequence[float], static: Any) -> None:
        """The solver's parameter update as one segment: ``works[i]()`` updates parameter i with
        learning rate ``rates[i]``; ``static`` holds every other host value the launches take
        (decay rates, regularization, solver constants).

        When the recording shows each launch of ``works[i]`` taking ``rates[i]`` as exactly one
        float argument (and nothing else equal to it), those argument slots are re-bound on each
        re-issue, so the segment replays under any learning-rate policy. Otherwise (no launch, or
        an ambiguous match) the rates join the validity key: replayed only while they repeat.
        """
        blobs = [p.blob for p in self.net.learnable_params]
        if not blobs:
            return
        rates = tuple(float(r) for r in rates)
        bounds: list[int] = []

        def work() -> None:
            rec = _recorder()
            for w in works:
                w()
                bounds.append(len(rec.ops) if rec is not None else -1)
        if not self._rates_rebindable:      # replayed only while the rates repeat
            self._run("update", [0], blobs, work, extra=(static, rates))
            return
        key = ("update", 0, 0)
        seg = self._segments.get(key)
        if seg is not None and seg.slots is not None and seg.shapes == (_buffers_key(blobs), static):
            _touch(blobs)
            for slots, r in zip(seg.slots, rates):
                for op, index in slots:
                    op.set_float(index, r)
            seg.issue()
            self.replayed += 1
            return
        self._run("update", [0], blobs, work, extra=static)
        new = self._segments.get(key)
        if new is not None and new is not seg and new.unsafe is None:     # just recorded
            new.slots = _rate_slots(new.ops, bounds, rates)
            if new.slots is None:           # the rates cannot be told apart: key on them
                self._rates_rebindable = False
                del self._segments[key]
                self._seen.pop(key, None)

    def forward_backward(self) -> float:
        """Net.forward_backward() (forward, loss, backward) through the Net's own per-layer
        methods, with the replayable stretches replayed."""
        net = self.net
        loss = 0.0
        for replayable, idx in self._fwd_runs:
            if replayable:
                def work(idx=idx) -> None:
                    for i in idx:
                        net.forward_layer(i)
                self._run("forward", idx, self._blobs(idx), work)
            else:
                net.forward_layer(idx[0])
            for i in idx:
                loss += net.layer_loss(i)
        net.last_loss = loss
        net.seed_loss_diffs()
        for replayable, idx in self._bwd_runs:
            if replayable:
                def work(idx=idx) -> None:
                    for i in idx:
                        net.backward_layer(i)
                self._run("backward", idx, self._blobs(idx), work)
            else:
                net.backward_layer(idx[0])
            if self.after_backward is not None:
                for i in idx:
                    self.after_backward(i)
        return loss
