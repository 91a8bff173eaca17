"""The Solver: Caffe's training loop (solver.cpp + sgd_solver.cpp) on a runner.Net.

    solver = Solver("lenet_solver.prototxt", device="cpu")
    solver.solve(resume="lenet_iter_5000.solverstate")   # or solver.step(100)

One iteration (Solver::Step): clear parameter diffs; test every ``test_interval`` iterations
(and at 0 unless ``test_initialization: false``); ``iter_size`` forward/backward passes whose
parameter diffs accumulate; smoothed loss over ``average_loss`` iterations; display lines; then
ApplyUpdate: lr from the policy, global gradient clip, and per parameter Normalize (1/iter_size),
Regularize, the type's rule, ``w -= update`` (numpy on cpu, kernels.solver_update on cuda); then
snapshots every ``snapshot`` iterations. Signals (SIGINT/SIGHUP) request stop or snapshot.

Exact resume: batches and random crops/mirrors are functions of (seed, batch index) and the
solver seeks every data layer to the batch index implied by the restored iteration, so N
iterations straight and N/2 + restore + N/2 give the same weights bit for bit on cpu.
"""
from __future__ import annotations

import functools
import glob
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netdef.errors import SolverError, WeightsError
from proto import caffe_pb2 as pb
from runner.dist.world import World
from runner.solver import updates
from runner.solver.glog import GLog, fmt
from runner.solver.lr_policy import LearningRate

if TYPE_CHECKING:
    from runner.dist.gradients import GradientReducer

ACTIONS = ("stop", "snapshot", "none")


@dataclass
class SnapshotRecord:
    """A snapshot this run wrote (or resumed from). ``good`` once a finite loss was computed with
    its weights: the NaN stop names the last good one."""
    iter: int
    model: str
    state: str
    weights_finite: bool
    good: bool = False


def check_solver(p: pb.SolverParameter, where: str | None = None) -> str:
    """Every check Caffe's Solver and SGDSolver constructors make on a SolverParameter, run
    before any net is built (``nbcaffe inspect`` runs them too); returns the solver type name.
    SolverError names the file and the field."""
    pre = f"{where}: " if where else ""
    try:
        kind = updates.solver_type(p)
        updates.check_params(kind, p)
        LearningRate(p)                       # lr_policy and its fields
    except SolverError as e:
        raise SolverError(f"{pre}{e}") from None
    if p.iter_size < 1:
        raise SolverError(f"{pre}iter_size must be >= 1, got {p.iter_size}")
    if p.average_loss < 1:
        raise SolverError(f"{pre}average_loss should be non-negative and >= 1, got {p.average_loss}")
    if p.snapshot_format not in (pb.SolverParameter.BINARYPROTO, pb.SolverParameter.HDF5):
        raise SolverError(f"{pre}unknown snapshot_format {p.snapshot_format}")
    for fname in ("snapshot", "display", "test_interval", "max_iter"):
        if getattr(p, fname) < 0:
            raise SolverError(f"{pre}{fname} must be >= 0, got {getattr(p, fname)}")
    for i, n in enumerate(p.test_iter):
        if n <= 0:
            raise SolverError(f"{pre}test_iter must be > 0 for each test net: test net #{i} has "
                              f"test_iter: {n} (to train without testing, remove the test nets' "
                              "test_iter and test_interval)")
    return kind


def read_extra(text: str, path: str) -> dict:
    """nbcaffe's record in a .solverstate (``netdef.weights`` EXTRA_FIELD: JSON with the data
    streams and the weights' finiteness) as a dict; {} when absent; SolverError when damaged."""
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except ValueError:
        extra = None
    if not isinstance(extra, dict) or not isinstance(extra.get("streams", {}), dict):
        raise SolverError(f"{path}: its nbcaffe record (data stream positions) is damaged; the "
                          "file is corrupt")
    return extra


def snapshot_prefix(p: pb.SolverParameter, solver_path: str | None) -> str:
    """snapshot_prefix as Caffe writes it: relative to the working directory; empty: the solver
    file's path without its extension (UpgradeSnapshotPrefixProperty); a prefix naming a folder
    ('snaps/' or an existing directory) gets the solver file's stem appended."""
    prefix = p.snapshot_prefix
    stem = Path(solver_path).with_suffix("") if solver_path else Path("solver")
    if not prefix:
        return str(stem)
    if prefix.endswith("/") or os.path.isdir(prefix):
        return str(Path(prefix) / stem.name)
    return prefix


class Solver:
    """Caffe's SGDSolver family (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) driving a train
    net and its test nets. See the module docstring."""

    def __init__(self, solver, device: str = "cpu", stages: tuple[str, ...] = (), level: int = 0,
                 log: GLog | None = None, solver_path: str | None = None,
                 replay: bool | None = None, world: World | None = None,
                 precision: str | None = None):
        """``solver``: path to a solver prototxt, or a caffe_pb2.SolverParameter (with
        ``solver_path`` its file for relative net paths). ``stages``/``level`` are added to the
        train net's state (Caffe's -stage/-level). ``replay``: record and replay the steady-state
        launches on cuda (runner/backend/replay.py); None = on unless NBCAFFE_REPLAY=0.
        ``world``: the processes of a data-parallel run (runner/dist; default: the MPI world when
        started by mpiexec, else this process alone). ``precision``: the cuda backend's GEMM input
        format (runner.backend; None = fp32)."""
        from netdef.prototxt import read_solver, solver_nets
        if isinstance(solver, (str, os.PathLike)):
            solver_path = str(solver)
            if not os.path.isfile(solver_path):
                raise SolverError(f"{solver_path}: solver file not found")
            solver = read_solver(Path(solver_path))
        self.param: pb.SolverParameter = solver
        self.solver_path = solver_path
        self.world = world if world is not None else World.from_environment()
        self.log = log or GLog()
        if not self.world.is_root:           # rank 0 logs, tests and snapshots (Caffe's root solver)
            self.log = GLog(quiet=True)
        self.device = device
        p = self.param
        self.type = check_solver(p, solver_path)
        self.rule = updates.RULES[self.type]
        self.snapshot_prefix = snapshot_prefix(p, solver_path)
        self.log(f"Initializing solver from parameters: \n{p}".rstrip())
        self.seed = int(p.random_seed) if p.random_seed >= 0 else None
        if self.world.size > 1 and self.world.connected:   # every rank: the same nets, same seed
            self.seed = self.world.bcast(self.seed if self.seed is not None
                                         else int(np.random.SeedSequence().entropy % 2**31))
        if stages or level:
            p.train_state.level = int(level)
            p.train_state.stage.extend(stages)
        from runner.net import Net
        nets = solver_nets(p, solver_path)
        self.log(f"Creating training net from {nets.train_source}")
        self.net = Net(nets.train, "TRAIN", device=device, seed=self._net_seed(0),
                       base_dir=nets.train_dir, log=self.log, precision=precision)
        self.test_nets = []
        for i, (tp, src, d) in enumerate(zip(nets.tests, nets.test_sources, nets.test_dirs)):
            if not self.world.is_root:
                break
            self.log(f"Creating test net (#{i}) specified by {src}")
            tn = Net(tp, "TEST", device=device, seed=self._net_seed(i + 1), base_dir=d, log=self.log,
                     precision=precision)
            tn.share_weights(self.net)
            self.test_nets.append(tn)
        self.backend = self.net.backend
        # eager, or on cuda the launches recorded once and replayed (runner/backend/replay.py)
        self.executor = self.backend.executor(self.net, replay)
        self.params = list(self.net.learnable_params)
        n_hist = self.rule.history
        # Caffe's history_ layout: all first histories, then (AdaDelta/Adam) all second ones
        self.history = [self.backend.zeros(tuple(prm.blob.shape)) for _ in range(n_hist)
                        for prm in self.params]
        self.iter = 0
        self.lr_policy = LearningRate(p, self.log)
        self.losses: list[float] = []
        self.smoothed_loss = 0.0
        self.requested_early_exit = False
        self.last_snapshot: str | None = None
        self.snapshots: list[SnapshotRecord] = []
        self._restored_streams: dict | None = None
        self._requests: list[tuple[str, str | None]] = []
        self.sigint_effect = "stop"
        self.sighup_effect = "snapshot"
        self.sigterm_effect = "stop"
        self.progress = None
        self.test_results: list[dict] = []
        self.callbacks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._notes_logged = 0
        self.reducer: GradientReducer | None = None
        self._params_synced = True
        if self.world.size > 1 and self.world.connected:   # (pycaffe connects later: caffe.NCCL)
            self._distribute()
        if self.world.is_root:               # only rank 0 writes snapshots
            self._check_snapshot_prefix()
        self.log("Solver scaffolding done.")

    def _distribute(self, hooks: bool = True) -> None:
        """Data-parallel run: each rank reads its share of every batch (runner.data.sources), and
        the gradients are averaged over the ranks before each update, the exchange overlapped
        with backward (runner.dist.gradients). ``hooks=False`` leaves registering the reducer to
        the caller (pycaffe's ``solver.add_callback(nccl)``, ``net.after_backward(nccl)``)."""
        from runner.dist.gradients import GradientReducer
        w, p = self.world, self.param
        for layer in self.net.layers:
            layer.set_shard(w.rank, w.size)
        self.reducer = GradientReducer(w, self.net, overlap=p.iter_size == 1)
        self._params_synced = False
        if hooks:
            self.executor.after_backward = self.reducer.after_backward
            self.add_callback(self.reducer.on_start, self.reducer.on_gradients_ready)
        self.log(f"Data-parallel training on {w.size} processes: effective batch {w.size} x the "
                 f"prototxt's batch, gradients averaged over the ranks")

    def _check_snapshot_prefix(self) -> None:
        """Caffe's CheckSnapshotWritePermissions (a probe file beside the snapshots; we create the
        folder, Caffe asks the user to), then the absolute snapshot path, logged once: the prefix
        is relative to the working directory, as in Caffe. Unfinished ``*.tmp`` files a killed
        run left behind under this prefix are removed, and said so."""
        p = self.param
        if not (p.snapshot or p.snapshot_after_train):
            return
        probe = self._filename(".tempfile")
        try:
            Path(probe).parent.mkdir(parents=True, exist_ok=True)
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as e:
            raise SolverError(f"Cannot write to snapshot prefix '{p.snapshot_prefix}' "
                              f"({os.path.abspath(self.snapshot_prefix)}): {e.strerror}. Make sure "
                              "that the directory exists and is writable.") from None
        self.log(f"Snapshots go to {os.path.abspath(self.snapshot_prefix)}_iter_<N>.caffemodel"
                 f"{'.h5' if p.snapshot_format == pb.SolverParameter.HDF5 else ''}")
        stale = sorted(glob.glob(glob.escape(self.snapshot_prefix) + "_iter_*.tmp"))
        for f in stale:
            os.remove(f)
        if stale:
            self.log(f"Removed {len(stale)} unfinished snapshot file(s) of a stopped run: "
                     f"{', '.join(stale)}")

    # ------------------------------------------------------------------ setup helpers
    def _net_seed(self, i: int):
        return None if self.seed is None else self.seed + 1000003 * i

    def add_callback(self, on_start: Callable[[], None], on_gradients_ready: Callable[[], None]) -> None:
        """Call ``on_start()`` at every iteration after the diffs are cleared (and the test pass,
        if any) and ``on_gradients_ready()`` after its forward/backward passes, before the update
        (Caffe's Solver::Callback, pycaffe's ``add_callback``)."""
        self.callbacks.append((on_start, on_gradients_ready))

    # ------------------------------------------------------------------ signals
    def set_actions(self, sigint: str = "stop", sighup: str = "snapshot", sigterm: str = "stop") -> None:
        """What SIGINT / SIGHUP / SIGTERM do while solving: 'stop' (snapshot then stop),
        'snapshot', 'none' (Caffe's -sigint_effect / -sighup_effect; -sigterm_effect is ours: a
        batch scheduler's normal stop)."""
        for v in (sigint, sighup, sigterm):
            if v not in ACTIONS:
                raise SolverError(f"invalid signal effect {v!r} (stop, snapshot or none)")
        self.sigint_effect, self.sighup_effect, self.sigterm_effect = sigint, sighup, sigterm

    def request(self, action: str, reason: str | None = None) -> None:
        """Ask the loop to 'stop' or 'snapshot' after the current iteration (what signals do);
        ``reason`` (e.g. 'SIGTERM') is logged when the loop acts on it."""
        if action != "none":
            self._requests.append((action, reason))

    def _install_signals(self):
        old = {}

        def handler(effect, name):
            return lambda signum, frame: self.request(effect, name)
        for name, effect in (("SIGINT", self.sigint_effect), ("SIGHUP", self.sighup_effect),
                             ("SIGTERM", self.sigterm_effect)):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                old[sig] = signal.signal(sig, handler(effect, name))
            except ValueError:  # not the main thread
                pass
        return old

    def _requested_action(self) -> str:
        if not self._requests:
            return "none"
        action, reason = self._requests.pop(0)
        if reason:
            what = "snapshotting and stopping" if action == "stop" else "snapshotting"
            self.log(f"Received {reason}: {what} after iteration {self.iter}")
        return action

    # ------------------------------------------------------------------ data positions
    def _tests_before(self, it: int) -> int:
        """How many test passes a run from 0 performs before iteration ``it``'s training step."""
        ti = self.param.test_interval
        if not ti or not self.test_nets:
            return 0
        n = (it - 1) // ti + 1 if it > 0 else 0   # k in [0, it) with k % ti == 0
        if not self.param.test_initialization and n:
            n -= 1
        return n

    def _sync_data(self) -> None:
        """Seek every data layer to the batch a run from iteration 0 would be at now."""
        for layer in self.net.layers:
            layer.seek(self.iter * self.param.iter_size)
        n_tests = self._tests_before(self.iter)
        for i, tn in enumerate(self.test_nets):
            for layer in tn.layers:
                layer.seek(n_tests * self.param.test_iter[i])
        # counter-based random layers (Dropout: runner/layers/dropout.py): their state is a stream
        # counter that advances by one every TRAIN forward, so a run from 0 is at iter * iter_size
        passes = self.iter * self.param.iter_size
        for layer in self.net.layers:
            if isinstance(layer.get_rng_state(), int):
                layer.set_rng_state(passes)
        if self._restored_streams is not None:
            self._apply_stream_states(self._restored_streams)
            self._restored_streams = None

    # ------------------------------------------------------------------ the loop
    def solve(self, resume: str | None = None) -> None:
        """Caffe's Solver::Solve: optional restore, step to max_iter, final snapshot / display /
        test (numpy's overflow warnings silenced throughout, as in ``step``)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._solve(resume)

    def _solve(self, resume: str | None) -> None:
        self.log(f"Solving {self.net.name}")
        self.log(f"Learning Rate Policy: {self.param.lr_policy}")
        self.requested_early_exit = False
        if resume:
            self.log(f"Restoring previous solver status from {resume}")
            self.restore(resume)
        start_iter = self.iter
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            self.log("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            loss = self.world.mean(self._forward_loss(self.net))
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            self.log(f"Iteration {self.iter}, loss = {fmt(self.smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0 and self.world.is_root:
            self.test_all()
        self.log("Optimization Done.")

    def _forward_loss(self, net) -> float:
        return float(net.forward_loss())

    def _loss_weights(self, net) -> list[tuple[str, float]]:
        w = net.blob_loss_weights
        return [(name, w.get(name, 0.0)) for name in net.outputs]

    def _update_smoothed_loss(self, loss: float, start_iter: int, average_loss: int) -> None:
        if len(self.losses) < average_loss:
            self.losses.append(loss)
            n = len(self.losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self.losses[idx]) / average_loss
            self.losses[idx] = loss

    def step(self, iters: int) -> None:
        """Run ``iters`` training iterations (Caffe's Solver::Step)."""
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + iters
        self.losses, self.smoothed_loss = [], 0.0
        self._sync_data()
        if self.reducer is not None and not self._params_synced:
            self.reducer.broadcast_parameters()
            self._params_synced = True
        old_handlers = self._install_signals()
        t_last, iter_last = time.perf_counter(), self.iter
        # a diverging net overflows on the way to its NaN loss: the loss check says so, once,
        # instead of numpy's RuntimeWarning lines
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        quiet.__enter__()
        try:
            while self.iter < stop_iter:
                self.executor.clear_param_diffs()
                if p.test_interval and self.iter % p.test_interval == 0 and (
                        self.iter > 0 or p.test_initialization):
                    if self.world.is_root:
                        self.test_all()
                    if self.world.bcast(self.requested_early_exit):
                        self.requested_early_exit = True
                        break
                for on_start, _ in self.callbacks:
                    on_start()
                display = bool(p.display) and self.iter % p.display == 0
                loss = 0.0
                for _ in range(p.iter_size):
                    loss += float(self.executor.forward_backward())
                loss = self.world.mean(loss / p.iter_size)
                self._check_loss(loss)
                self._update_smoothed_loss(loss, start_iter, p.average_loss)
                if display:
                    now = time.perf_counter()
                    lapse = now - t_last
                    per_s = (self.iter - iter_last) / (lapse if lapse else 1)
                    self.log(f"Iteration {self.iter} ({fmt(per_s)} iter/s, {fmt(lapse)}s/{p.display} "
                             f"iters), loss = {fmt(self.smoothed_loss)}")
                    t_last, iter_last = now, self.iter
                    self._log_outputs(self.net, "Train", self._train_outputs())
                for _, on_gradients_ready in self.callbacks:
                    on_gradients_ready()
                self.apply_update()
                self._log_replay_notes()
                self.iter += 1
                if self.progress is not None:
                    self.progress.update(1)
                action = self.world.bcast(self._requested_action())
                if (p.snapshot and self.iter % p.snapshot == 0) or action == "snapshot":
                    self.snapshot()
                if action == "stop":
                    self.requested_early_exit = True
                    break
        finally:
            quiet.__exit__(None, None, None)
            for sig, h in old_handlers.items():
                signal.signal(sig, h)

    def _train_outputs(self) -> dict[str, np.ndarray]:
        """The train net's outputs, averaged over the ranks (each computed them on its share)."""
        return {name: np.ravel(self.world.mean(np.asarray(self.net.blobs[name].data, np.float64)))
                for name, _ in self._loss_weights(self.net)}

    def _check_loss(self, loss: float) -> None:
        """A finite loss confirms the snapshots whose weights it was computed with (see
        ``snapshot``); a NaN or infinite one stops training, naming the last good snapshot."""
        if math.isfinite(loss):
            for rec in self.snapshots:
                if rec.iter == self.iter and rec.weights_finite:
                    rec.good = True
            return
        bad = [r for r in self.snapshots if r.iter == self.iter]
        good = [r for r in self.snapshots if r.good]
        if good:
            last = f"{good[-1].state} (resume with -snapshot {good[-1].state})"
        else:
            last = "none in this run"
        note = ""
        if bad:
            note = (f"; {bad[-1].state} holds the weights that gave this loss (not usable)")
        raise SolverError(f"Iteration {self.iter}: the training loss is {fmt(loss)}; stopping. Last "
                          f"good snapshot: {last}{note}. Lower base_lr or check the data.")

    def _log_outputs(self, net, kind: str, values) -> None:
        """``    Train net output #k: name = v (* w = v*w loss)`` for every element of every output."""
        k = 0
        for name, w in self._loss_weights(net):
            vals = np.ravel(net.blobs[name].data) if values is None else values[name]
            for v in vals:
                extra = f" (* {fmt(w)} = {fmt(np.float32(w) * np.float32(v))} loss)" if w else ""
                self.log(f"    {kind} net output #{k}: {name} = {fmt(v)}{extra}")
                k += 1

    def _log_replay_notes(self) -> None:
        """Log, once each, what the executor had to leave eager (runner/backend/replay.py)."""
        notes = self.executor.notes
        for note in notes[self._notes_logged:]:
            self.log(f"replay: {note}")
        self._notes_logged = len(notes)

    # ------------------------------------------------------------------ testing
    def test_all(self) -> None:
        """Run every test net (Caffe's TestAll)."""
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(i)

    def test(self, test_net_id: int = 0) -> dict:
        """Caffe's Solver::Test: ``test_iter`` forward passes of test net ``test_net_id``, mean of
        each output element, logged as ``Test net output #k``. Returns {output name: mean array}."""
        p = self.param
        self.log(f"Iteration {self.iter}, Testing net (#{test_net_id})")
        net = self.test_nets[test_net_id]
        n_iter = p.test_iter[test_net_id]
        sums: dict[str, np.ndarray] = {}
        loss = 0.0
        for _ in range(n_iter):
            action = self._requested_action()
            while action != "none":
                if action == "snapshot":
                    self.snapshot()
                elif action == "stop":
                    self.requested_early_exit = True
                action = self._requested_action()
            if self.requested_early_exit:
                break
            out = net.forward()
            if p.test_compute_loss:
                loss += float(net.last_loss)
            for name in net.outputs:
                v = np.array(out[name], dtype=np.float64).ravel()
                sums[name] = sums[name] + v if name in sums else v
        if self.requested_early_exit:
            self.log("Test interrupted.")
            return {}
        if p.test_compute_loss:
            self.log(f"Test loss: {fmt(loss / n_iter)}")
        means = {n: (s / n_iter).astype(np.float32) for n, s in sums.items()}
        self._log_outputs(net, "Test", means)
        self.test_results.append({"iter": self.iter, "net": test_net_id,
                                  **{n: float(m[0]) if m.size == 1 else m for n, m in means.items()}})
        return means

    # ------------------------------------------------------------------ update
    def learning_rate(self) -> float:
        """Caffe's GetLearningRate at the current iteration (advances multistep state)."""
        return self.lr_policy(self.iter)

    def apply_update(self) -> None:
        """SGDSolver::ApplyUpdate: lr, display of lr, clip, then per parameter the backend op of
        this solver type's rule (normalize / regularize / rule / w -= update), run through the
        executor (replayed on cuda with each step's rate re-bound)."""
        p = self.param
        rate = self.learning_rate()
        if p.display and self.iter % p.display == 0:
            self.log(f"Iteration {self.iter}, lr = {fmt(rate)}")
        self._clip_gradients()
        rule, t = self.rule, self.iter + 1
        op = getattr(self.backend, rule.op)
        constants = rule.constants(p)
        diff_scale = 1.0 / p.iter_size
        steps, rates, decays = [], [], []
        for i, prm in enumerate(self.params):
            local_rate = rule.rate(float(np.float32(rate) * np.float32(prm.lr_mult)), p, t)
            local_decay = float(np.float32(p.weight_decay) * np.float32(prm.decay_mult))
            steps.append(functools.partial(op, prm.blob.dev_data, prm.blob.dev_diff,
                                           *self._history_of(i), local_rate, local_decay=local_decay,
                                           regularization=p.regularization_type,
                                           diff_scale=diff_scale, **constants))
            rates.append(local_rate)
            decays.append(local_decay)
        self.executor.update(steps, rates, (tuple(decays), p.regularization_type, self.type,
                                            diff_scale))

    def _history_of(self, i: int) -> list:
        """Parameter i's history blobs in Caffe's layout (all first histories, then the second)."""
        n = len(self.params)
        return [self.history[i + k * n] for k in range(self.rule.history)]

    def _clip_gradients(self) -> None:
        clip = self.param.clip_gradients
        if clip < 0:
            return
        norm = math.sqrt(self.backend.sumsq_total([prm.blob.dev_diff for prm in self.params]))
        if norm > clip:
            scale = np.float32(clip / norm)
            self.log(f"Gradient clipping: scaling down gradients (L2 norm {fmt(norm)} > {fmt(clip)}) "
                     f"by scale factor {fmt(scale)}")
            for prm in self.params:
                self.backend.scal(float(scale), prm.blob.dev_diff)

    # ------------------------------------------------------------------ snapshots
    def _filename(self, ext: str) -> str:
        return f"{self.snapshot_prefix}_iter_{self.iter}{ext}"

    def snapshot(self) -> str:
        """Write ``<prefix>_iter_<N>.caffemodel`` (or .caffemodel.h5), then the matching
        ``.solverstate`` (.h5), each atomically (netdef.weights), the state last: a state never
        names a model that is not on disk. The state also carries (in a field Caffe ignores)
        every data layer's stream position and seed, and whether the weights were finite.
        Returns the model path. In a data-parallel run only rank 0 writes (every rank holds the
        same weights and history)."""
        from netdef.weights import write_solverstate
        h5 = self.param.snapshot_format == pb.SolverParameter.HDF5
        model = self._filename(".caffemodel.h5" if h5 else ".caffemodel")
        state_path = self._filename(".solverstate.h5" if h5 else ".solverstate")
        if not self.world.is_root:
            return model
        Path(model).parent.mkdir(parents=True, exist_ok=True)
        finite = math.isfinite(self.backend.sumsq_total([prm.blob.dev_data for prm in self.params]))
        if not finite:
            self.log.warning(f"Iteration {self.iter}: the weights are no longer finite; this "
                             "snapshot cannot be resumed from")
        kind = "HDF5" if h5 else "binary proto"
        self.log(f"Snapshotting to {kind} file {model}")
        if h5:
            self.net.save_hdf5(model, diffs=self.param.snapshot_diff)
        else:
            self.net.save(model)
        self.log(f"Snapshotting solver state to {kind} file {state_path}")
        extra = json.dumps({"nbcaffe_extra": 1, "weights_finite": finite,
                            "streams": self._stream_states()}, sort_keys=True)
        write_solverstate(state_path, self.iter, model,
                          [self.backend.to_host(h) for h in self.history], self.lr_policy.current_step,
                          extra=extra)
        self.snapshots.append(SnapshotRecord(self.iter, model, state_path, finite))
        self.last_snapshot = model
        return model

    def _stream_states(self) -> dict:
        """{"train": {layer: state}, "test": [{layer: state} per test net]} of every layer with a
        data stream (``get_stream_state``: Data, ImageData, HDF5Data, MemoryData)."""
        def of(net) -> dict:
            return {layer.name: layer.get_stream_state() for layer in net.layers
                    if hasattr(layer, "get_stream_state")}
        return {"train": of(self.net), "test": [of(tn) for tn in self.test_nets]}

    def _apply_stream_states(self, streams: dict) -> None:
        """Put each data layer back where the snapshot's run had it (after the seeks of
        ``_sync_data``, which cover states written by Caffe or older nbcaffe versions)."""
        for net, states in [(self.net, streams.get("train", {}))] + list(
                zip(self.test_nets, streams.get("test", []))):
            for layer in net.layers:
                if layer.name in states and hasattr(layer, "set_stream_state"):
                    try:
                        layer.set_stream_state(states[layer.name])
                    except (KeyError, TypeError, ValueError, AttributeError):
                        raise SolverError(f"the restored solver state's stream record for layer "
                                          f"'{layer.name}' is damaged ({states[layer.name]!r:.80})"
                                          ) from None

    def _incomplete_pair(self, path: str) -> str:
        """The message for a -snapshot path that does not exist: says when its .caffemodel is
        there (the run stopped between the two files) and names the newest complete pair."""
        msg = f"{path}: solver state not found"
        stem = path[:-len(".h5")] if path.endswith(".h5") else path
        if stem.endswith(".solverstate"):
            base = stem[:-len(".solverstate")]
            h5 = path.endswith(".h5")
            model = base + (".caffemodel.h5" if h5 else ".caffemodel")
            if os.path.isfile(model):
                msg += (f"; its model {model} was written but the state was not (the run stopped "
                        f"while snapshotting): this snapshot pair is incomplete")
            prefix, _, _ = base.rpartition("_iter_")
            if prefix:
                pairs = []
                for cand in glob.glob(glob.escape(prefix) + "_iter_*.solverstate" + (".h5" if h5 else "")):
                    it = cand[len(prefix) + len("_iter_"):].split(".")[0]
                    if it.isdigit():
                        pairs.append((int(it), cand))
                if pairs:
                    msg += f"; the newest complete snapshot is {max(pairs)[1]}"
        return msg

    def restore(self, path: str) -> None:
        """Load a .solverstate (binaryproto or .h5): iter, current_step, history blobs, the
        weights of ``learned_net`` and (nbcaffe's states) the data layers' stream positions. A
        state for another net raises SolverError; so does an incomplete snapshot pair, saying so."""
        from netdef.weights import read_solverstate
        if not os.path.isfile(path):
            raise SolverError(self._incomplete_pair(path))
        try:
            st = read_solverstate(path)
        except WeightsError as e:
            raise SolverError(str(e)) from None
        hist, learned = st.history, st.learned_net
        if len(hist) != len(self.history):
            raise SolverError(f"{path}: has {len(hist)} history blobs but this {self.type} solver on net "
                              f"'{self.net.name}' needs {len(self.history)} (a state for another net "
                              f"or solver type?)")
        for i, (h, mine) in enumerate(zip(hist, self.history)):
            if h.size != int(np.prod(mine.shape)):
                raise SolverError(f"{path}: history blob {i} has {h.size} values, expected "
                                  f"{int(np.prod(mine.shape))} for shape {tuple(mine.shape)} (a state "
                                  f"for another net?)")
        extra = read_extra(st.extra, path)
        model = learned
        if learned:
            if not os.path.isfile(model):
                alt = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(learned))
                if not os.path.isfile(alt):
                    raise SolverError(f"{path}: incomplete snapshot pair: its learned_net {learned} "
                                      f"was not found (nor {alt})")
                model = alt
            try:
                self.net.copy_from(model)
            except WeightsError as e:
                raise SolverError(f"{path}: cannot restore weights: {e}") from None
        for h, mine in zip(hist, self.history):
            self.backend.to_device(h.astype(np.float32).reshape(tuple(mine.shape)), out=mine)
        self.iter = int(st.iter)
        self.lr_policy.current_step = int(st.current_step)
        self._params_synced = False          # a data-parallel run re-broadcasts rank 0's weights
        self._restored_streams = extra.get("streams")
        self.snapshots.append(SnapshotRecord(self.iter, model, path,
                                             bool(extra.get("weights_finite", True))))
        self.log("SGDSolver: restoring history")

    def close(self) -> None:
        """Release the nets' data sources and prefetch threads."""
        for net in [self.net, *self.test_nets]:
            net.close()


__all__ = ["Solver"]
