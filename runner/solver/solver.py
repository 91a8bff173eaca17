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

import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netdef.errors import CaffeError, SolverError, WeightsError
from proto import caffe_pb2 as pb
from runner.replay import NetReplay, replay_enabled
from runner.solver import updates
from runner.solver.glog import GLog, fmt
from runner.solver.lr_policy import LearningRate

ACTIONS = ("stop", "snapshot", "none")


def _resolve_data_paths(net_param: pb.NetParameter, base_dir: str | None) -> None:
    """Data sources / mean files given relative to the prototxt: Caffe resolves them against the
    working directory; when they do not exist there but do beside the prototxt, use that."""
    from runner.data.sources import resolve_source
    for lp in net_param.layer:
        for field in ("data_param", "image_data_param", "hdf5_data_param"):
            if lp.HasField(field):
                p = getattr(lp, field)
                if p.source:
                    p.source = resolve_source(p.source, base_dir)
        if lp.transform_param.mean_file:
            lp.transform_param.mean_file = resolve_source(lp.transform_param.mean_file, base_dir)


def resolve_data_paths(net_param: pb.NetParameter, source: str | None) -> pb.NetParameter:
    """In place: make the data layers' relative paths work from the prototxt's folder when they
    do not from the working directory. ``source`` is the prototxt path (or None). Returns it."""
    base = None
    if source and os.path.exists(source.split(" (")[0]):
        base = str(Path(source.split(" (")[0]).resolve().parent)
    _resolve_data_paths(net_param, base)
    return net_param


def build_net(net_param: pb.NetParameter, phase: str, device: str = "cpu", seed: int | None = None,
              weights: str | None = None, precision: str | None = None):
    """A runner.Net for ``net_param`` in ``phase`` with the stages/level of its ``state``; data
    layers' top shapes are read from their sources (runner.data.probe)."""
    from runner.data.probe import data_input_shapes
    from runner.net import Net
    stages, level = tuple(net_param.state.stage), int(net_param.state.level)
    shapes = data_input_shapes(net_param, phase, stages, level)
    return Net(net_param, phase=phase, device=device, seed=seed, stages=stages, level=level,
               input_shapes=shapes or None, weights=weights, precision=precision)


def blob_loss_weights(net) -> dict[str, float]:
    """{top blob name: loss weight} for the tops of ``net`` with a non-zero loss weight."""
    out: dict[str, float] = {}
    for layer in net.layers:
        for t, w in zip(net.top_names[layer.name], layer.loss_weights):
            if w:
                out[t] = float(w)
    return out


class Solver:
    """Caffe's SGDSolver family (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) driving a train
    net and its test nets. See the module docstring."""

    def __init__(self, solver, device: str = "cpu", stages: tuple[str, ...] = (), level: int = 0,
                 log: GLog | None = None, solver_path: str | None = None,
                 replay: bool | None = None, precision: str | None = None):
        """``solver``: path to a solver prototxt, or a caffe_pb2.SolverParameter (with
        ``solver_path`` its file for relative net paths). ``stages``/``level`` are added to the
        train net's state (Caffe's -stage/-level). ``replay``: record and replay the steady-state
        launches on cuda (runner/replay.py); None = on unless NBCAFFE_REPLAY=0. ``precision``: the
        cuda backend's GEMM input format (runner.backend; None = fp32)."""
        from netdef.prototxt import read_solver, solver_nets
        if isinstance(solver, (str, os.PathLike)):
            solver_path = str(solver)
            if not os.path.isfile(solver_path):
                raise SolverError(f"{solver_path}: solver file not found")
            solver = read_solver(Path(solver_path))
        self.param: pb.SolverParameter = solver
        self.solver_path = solver_path
        self.log = log or GLog()
        self.device = device
        p = self.param
        self.type = updates.solver_type(p)
        updates.check_params(self.type, p)
        if p.iter_size < 1:
            raise SolverError(f"iter_size must be >= 1, got {p.iter_size}")
        if p.average_loss < 1:
            raise SolverError(f"average_loss should be non-negative and >= 1, got {p.average_loss}")
        self.snapshot_prefix = self._snapshot_prefix()
        if p.snapshot_format not in (pb.SolverParameter.BINARYPROTO, pb.SolverParameter.HDF5):
            raise SolverError(f"unknown snapshot_format {p.snapshot_format}")
        self.log(f"Initializing solver from parameters: \n{p}".rstrip(), "solver.cpp", 48)
        self.seed = int(p.random_seed) if p.random_seed >= 0 else None
        if stages or level:
            p.train_state.level = int(level)
            p.train_state.stage.extend(stages)
        nets = solver_nets(p, solver_path)
        self.log(f"Creating training net from {nets.train_source}", "solver.cpp", 87)
        resolve_data_paths(nets.train, nets.train_source)
        self.net = build_net(nets.train, "TRAIN", device, self._net_seed(0), precision=precision)
        self.test_nets = []
        for i, (tp, src) in enumerate(zip(nets.tests, nets.test_sources)):
            self.log(f"Creating test net (#{i}) specified by {src}", "solver.cpp", 172)
            resolve_data_paths(tp, src)
            tn = build_net(tp, "TEST", device, self._net_seed(i + 1), precision=precision)
            tn.share_weights(self.net)
            self.test_nets.append(tn)
        self.backend = self.net.backend
        # cuda: record the steady-state launches once and replay them (runner/replay.py)
        self.replay = None
        if self.backend.host_mirror and (replay_enabled() if replay is None else replay):
            self.replay = NetReplay(self.net)
        self.params = list(self.net.learnable_params)
        n_hist = updates.HISTORY_BLOBS[self.type]
        # Caffe's history_ layout: all first histories, then (AdaDelta/Adam) all second ones
        self.history = [self.backend.zeros(tuple(prm.blob.shape)) for _ in range(n_hist)
                        for prm in self.params]
        self.iter = 0
        self.lr_policy = LearningRate(p, lambda m: self.log(m, "sgd_solver.cpp", 97))
        self.losses: list[float] = []
        self.smoothed_loss = 0.0
        self.requested_early_exit = False
        self.last_snapshot: str | None = None
        self._requests: list[str] = []
        self.sigint_effect = "stop"
        self.sighup_effect = "snapshot"
        self.progress = None
        self.test_results: list[dict] = []
        self.log("Solver scaffolding done.", "solver.cpp", 57)

    # ------------------------------------------------------------------ setup helpers
    def _net_seed(self, i: int):
        return None if self.seed is None else self.seed + 1000003 * i

    def _snapshot_prefix(self) -> str:
        """snapshot_prefix, or (Caffe's UpgradeSnapshotPrefixProperty) the solver file's name
        without extension; a prefix ending in '/' gets the solver file's stem appended."""
        prefix = self.param.snapshot_prefix
        stem = Path(self.solver_path).with_suffix("") if self.solver_path else Path("solver")
        if not prefix:
            return str(stem)
        if prefix.endswith("/") or os.path.isdir(prefix):
            return str(Path(prefix) / stem.name)
        return prefix

    # ------------------------------------------------------------------ signals
    def set_actions(self, sigint: str = "stop", sighup: str = "snapshot") -> None:
        """What SIGINT / SIGHUP do while solving: 'stop' (snapshot then stop), 'snapshot', 'none'."""
        for v in (sigint, sighup):
            if v not in ACTIONS:
                raise SolverError(f"invalid signal effect {v!r} (stop, snapshot or none)")
        self.sigint_effect, self.sighup_effect = sigint, sighup

    def request(self, action: str) -> None:
        """Ask the loop to 'stop' or 'snapshot' after the current iteration (what signals do)."""
        if action != "none":
            self._requests.append(action)

    def _install_signals(self):
        old = {}

        def handler(effect):
            return lambda signum, frame: self.request(effect)
        for sig, effect in ((signal.SIGINT, self.sigint_effect), (getattr(signal, "SIGHUP", None),
                                                                  self.sighup_effect)):
            if sig is None:
                continue
            try:
                old[sig] = signal.signal(sig, handler(effect))
            except ValueError:  # not the main thread
                pass
        return old

    def _requested_action(self) -> str:
        if not self._requests:
            return "none"
        return self._requests.pop(0)

    # ------------------------------------------------------------------ data positions
    def _data_layers(self, net):
        return [layer for layer in net.layers if hasattr(layer, "seek")]

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
        for layer in self._data_layers(self.net):
            layer.seek(self.iter * self.param.iter_size)
        n_tests = self._tests_before(self.iter)
        for i, tn in enumerate(self.test_nets):
            for layer in self._data_layers(tn):
                layer.seek(n_tests * self.param.test_iter[i])
        self._set_iteration(self.iter)
        # counter-based random layers (Dropout: runner/layers/dropout.py): their state is a stream
        # counter that advances by one every TRAIN forward, so a run from 0 is at iter * iter_size
        passes = self.iter * self.param.iter_size
        for layer in self.net.layers:
            if isinstance(layer.get_rng_state(), int):
                layer.set_rng_state(passes)

    def _set_iteration(self, it: int) -> None:
        """Tell stochastic layers (Dropout) the global pass index so their random streams are a
        function of it (exact resume)."""
        for net in [self.net, *self.test_nets]:
            for layer in net.layers:
                if hasattr(layer, "set_iteration"):
                    layer.set_iteration(it)

    # ------------------------------------------------------------------ the loop
    def solve(self, resume: str | None = None) -> None:
        """Caffe's Solver::Solve: optional restore, step to max_iter, final snapshot / display /
        test."""
        self.log(f"Solving {self.net.name}", "solver.cpp", 306)
        self.log(f"Learning Rate Policy: {self.param.lr_policy}", "solver.cpp", 307)
        self.requested_early_exit = False
        if resume:
            self.log(f"Restoring previous solver status from {resume}", "solver.cpp", 313)
            self.restore(resume)
        start_iter = self.iter
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            self.log("Optimization stopped early.", "solver.cpp", 331)
            return
        if p.display and self.iter % p.display == 0:
            self._set_iteration(self.iter * p.iter_size)
            loss = self._forward_loss(self.net)
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            self.log(f"Iteration {self.iter}, loss = {fmt(self.smoothed_loss)}", "solver.cpp", 345)
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("Optimization Done.", "solver.cpp", 351)

    def _forward_loss(self, net) -> float:
        return float(net.forward_loss())

    def _loss_weights(self, net) -> list[tuple[str, float]]:
        w = blob_loss_weights(net)
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
        old_handlers = self._install_signals()
        t_last, iter_last = time.perf_counter(), self.iter
        try:
            while self.iter < stop_iter:
                self._clear_param_diffs()
                if p.test_interval and self.iter % p.test_interval == 0 and (
                        self.iter > 0 or p.test_initialization):
                    self.test_all()
                    if self.requested_early_exit:
                        break
                display = bool(p.display) and self.iter % p.display == 0
                loss = 0.0
                for i in range(p.iter_size):
                    self._set_iteration(self.iter * p.iter_size + i)
                    loss += float(self.net.forward_backward() if self.replay is None
                                  else self.replay.forward_backward())
                loss /= p.iter_size
                if not math.isfinite(loss):
                    last = self.last_snapshot or "none (no snapshot was written in this run)"
                    raise SolverError(f"Iteration {self.iter}: the training loss is {loss}; stopping. "
                                      f"Last good snapshot: {last}. Lower base_lr or check the data.")
                self._update_smoothed_loss(loss, start_iter, p.average_loss)
                if display:
                    now = time.perf_counter()
                    lapse = now - t_last
                    per_s = (self.iter - iter_last) / (lapse if lapse else 1)
                    self.log(f"Iteration {self.iter} ({fmt(per_s)} iter/s, {fmt(lapse)}s/{p.display} "
                             f"iters), loss = {fmt(self.smoothed_loss)}", "solver.cpp", 243)
                    t_last, iter_last = now, self.iter
                    self._log_outputs(self.net, "Train", None, "solver.cpp", 258)
                self.apply_update()
                self._log_replay_notes()
                self.iter += 1
                if self.progress is not None:
                    self.progress.update(1)
                action = self._requested_action()
                if (p.snapshot and self.iter % p.snapshot == 0) or action == "snapshot":
                    self.snapshot()
                if action == "stop":
                    self.requested_early_exit = True
                    break
        finally:
            for sig, h in old_handlers.items():
                signal.signal(sig, h)

    def _log_outputs(self, net, kind: str, values, src: str, line: int) -> None:
        """``    Train net output #k: name = v (* w = v*w loss)`` for every element of every output."""
        k = 0
        for name, w in self._loss_weights(net):
            vals = np.ravel(net.blobs[name].data) if values is None else values[name]
            for v in vals:
                extra = f" (* {fmt(w)} = {fmt(np.float32(w) * np.float32(v))} loss)" if w else ""
                self.log(f"    {kind} net output #{k}: {name} = {fmt(v)}{extra}", src, line)
                k += 1

    def _log_replay_notes(self) -> None:
        """Log, once each, the stretches replay had to leave eager (runner/replay.py)."""
        if self.replay is None:
            return
        logged = getattr(self, "_replay_logged", 0)
        for note in self.replay.notes[logged:]:
            self.log(f"replay: {note}", "replay.py", 1)
        self._replay_logged = len(self.replay.notes)

    def _clear_param_diffs(self) -> None:
        if self.replay is None:
            self.net.clear_param_diffs()
        else:
            self.replay.clear_param_diffs()

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
        self.log(f"Iteration {self.iter}, Testing net (#{test_net_id})", "solver.cpp", 330)
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
            self.log("Test interrupted.", "solver.cpp", 376)
            return {}
        if p.test_compute_loss:
            self.log(f"Test loss: {fmt(loss / n_iter)}", "solver.cpp", 380)
        means = {n: (s / n_iter).astype(np.float32) for n, s in sums.items()}
        self._log_outputs(net, "Test", means, "solver.cpp", 392)
        self.test_results.append({"iter": self.iter, "net": test_net_id,
                                  **{n: float(m[0]) if m.size == 1 else m for n, m in means.items()}})
        return means

    # ------------------------------------------------------------------ update
    def learning_rate(self) -> float:
        """Caffe's GetLearningRate at the current iteration (advances multistep state)."""
        return self.lr_policy(self.iter)

    def apply_update(self) -> None:
        """SGDSolver::ApplyUpdate: lr, display of lr, clip, then per param normalize / regularize /
        rule / w -= update."""
        p = self.param
        rate = self.learning_rate()
        if p.display and self.iter % p.display == 0:
            self.log(f"Iteration {self.iter}, lr = {fmt(rate)}", "sgd_solver.cpp", 106)
        self._clip_gradients()
        reg_type = p.regularization_type
        if reg_type not in ("L1", "L2"):
            raise SolverError(f"Unknown regularization type: {reg_type!r} (L2 or L1)")
        n = len(self.params)
        cuda = self.backend.host_mirror
        rates = [(float(np.float32(rate) * np.float32(prm.lr_mult)),
                  float(np.float32(p.weight_decay) * np.float32(prm.decay_mult))) for prm in self.params]
        if cuda:
            def one(i: int) -> Callable[[], None]:
                def run() -> None:
                    self._update_cuda(self.params[i], self._history_of(i), rates[i][0], rates[i][1],
                                      reg_type)
                return run
            works = [one(i) for i in range(n)]
            if self.replay is None:
                for w in works:
                    w()
                return
            # the float each parameter's launches take as its rate, re-bound on every replay
            # (Adam: the bias-corrected rate of this step, the only per-step value it takes)
            launch_rates = [r[0] for r in rates]
            if self.type == "Adam":
                from kernels.solver_update import adam_rate
                launch_rates = [float(adam_rate(r, p.momentum, p.momentum2, self.iter + 1))
                                for r in launch_rates]
            self.replay.update(works, launch_rates, (tuple(r[1] for r in rates), reg_type, self.type))
            return
        for i, prm in enumerate(self.params):
            local_rate, local_decay = rates[i]
            hist = self._history_of(i)
            data, diff = prm.blob.dev_data, prm.blob.dev_diff
            updates.normalize(diff, p.iter_size)
            updates.regularize(data, diff, local_decay, reg_type)
            updates.compute_update(self.type, diff, hist, local_rate, p, self.iter)
            data -= diff

    def _history_of(self, i: int) -> list:
        """Parameter i's history blobs in Caffe's layout (all first histories, then the second)."""
        n = len(self.params)
        return [self.history[i + k * n] for k in range(updates.HISTORY_BLOBS[self.type])]

    def _update_cuda(self, prm, hist, local_rate: float, local_decay: float, reg: str) -> None:
        from kernels import solver_update as su
        p = self.param
        w, g = prm.blob.dev_data, prm.blob.dev_diff
        kw = dict(local_decay=local_decay, regularization=reg, diff_scale=1.0 / p.iter_size)
        t = self.type
        if t == "SGD":
            su.sgd_update(w, g, hist[0], local_rate, p.momentum, **kw)
        elif t == "Nesterov":
            su.nesterov_update(w, g, hist[0], local_rate, p.momentum, **kw)
        elif t == "AdaGrad":
            su.adagrad_update(w, g, hist[0], local_rate, p.delta, **kw)
        elif t == "RMSProp":
            su.rmsprop_update(w, g, hist[0], local_rate, p.rms_decay, p.delta, **kw)
        elif t == "AdaDelta":
            su.adadelta_update(w, g, hist[0], hist[1], local_rate, p.momentum, p.delta, **kw)
        else:
            su.adam_update(w, g, hist[0], hist[1], local_rate, p.momentum, p.momentum2, p.delta,
                           self.iter + 1, **kw)

    def _clip_gradients(self) -> None:
        clip = self.param.clip_gradients
        if clip < 0:
            return
        if self.backend.host_mirror:
            from kernels.reduce import sumsq_total
            sumsq = sumsq_total([prm.blob.dev_diff for prm in self.params])
        else:
            sumsq = float(sum(float(np.dot(d.ravel().astype(np.float64), d.ravel()))
                              for d in (prm.blob.dev_diff for prm in self.params)))
        norm = math.sqrt(sumsq)
        if norm > clip:
            scale = np.float32(clip / norm)
            self.log(f"Gradient clipping: scaling down gradients (L2 norm {fmt(norm)} > {fmt(clip)}) "
                     f"by scale factor {fmt(scale)}", "sgd_solver.cpp", 129)
            for prm in self.params:
                self.backend.scal(float(scale), prm.blob.dev_diff)

    # ------------------------------------------------------------------ snapshots
    def _filename(self, ext: str) -> str:
        return f"{self.snapshot_prefix}_iter_{self.iter}{ext}"

    def snapshot(self) -> str:
        """Write ``<prefix>_iter_<N>.caffemodel`` (or .caffemodel.h5) and the matching
        ``.solverstate`` (.h5), each to a temporary name then renamed. Returns the model path."""
        h5 = self.param.snapshot_format == pb.SolverParameter.HDF5
        model = self._filename(".caffemodel.h5" if h5 else ".caffemodel")
        state_path = self._filename(".solverstate.h5" if h5 else ".solverstate")
        Path(model).parent.mkdir(parents=True, exist_ok=True)
        self.log(f"Snapshotting to {'HDF5' if h5 else 'binary proto'} file {model}", "solver.cpp", 445)
        if h5:
            _atomic(model, lambda tmp: self._save_h5_model(tmp))
        else:
            _atomic(model, lambda tmp: self.net.save(tmp))
        self.log(f"Snapshotting solver state to {'HDF5' if h5 else 'binary proto'} file {state_path}",
                 "sgd_solver.cpp", 273)
        hist = [self.backend.to_host(h) if self.backend.host_mirror else h for h in self.history]
        if h5:
            _atomic(state_path, lambda tmp: _write_state_h5(tmp, self.iter, model,
                                                          self.lr_policy.current_step, hist))
        else:
            from netdef.weights import write_solverstate
            write_solverstate(state_path, self.iter, model, [np.asarray(h) for h in hist],
                              self.lr_policy.current_step)
        self.last_snapshot = model
        return model

    def _save_h5_model(self, path: str) -> None:
        import h5py
        with h5py.File(path, "w") as f:
            data = f.create_group("data")
            diff = f.create_group("diff") if self.param.snapshot_diff else None
            for lname, blobs in self.net.params.items():
                g = data.create_group(lname)
                for j, b in enumerate(blobs):
                    g.create_dataset(str(j), data=np.asarray(b.data, dtype=np.float32))
                    if diff is not None:
                        diff.require_group(lname).create_dataset(str(j), data=np.asarray(b.diff))

    def restore(self, path: str) -> None:
        """Load a .solverstate (binaryproto or .h5): iter, current_step, history blobs, and the
        weights of ``learned_net``. A state for another net raises SolverError."""
        if not os.path.isfile(path):
            raise SolverError(f"{path}: solver state not found")
        if path.endswith(".h5"):
            it, learned, step, hist = _read_state_h5(path)
        else:
            from netdef.weights import read_solverstate
            try:
                st = read_solverstate(path)
            except WeightsError as e:
                raise SolverError(str(e)) from None
            it, learned, step, hist = st.iter, st.learned_net, st.current_step, st.history
        if len(hist) != len(self.history):
            raise SolverError(f"{path}: has {len(hist)} history blobs but this {self.type} solver on net "
                              f"'{self.net.name}' needs {len(self.history)} (a state for another net "
                              f"or solver type?)")
        for i, (h, mine) in enumerate(zip(hist, self.history)):
            if h.size != int(np.prod(mine.shape)):
                raise SolverError(f"{path}: history blob {i} has {h.size} values, expected "
                                  f"{int(np.prod(mine.shape))} for shape {tuple(mine.shape)} (a state "
                                  f"for another net?)")
        if learned:
            model = learned
            if not os.path.isfile(model):
                alt = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(learned))
                if not os.path.isfile(alt):
                    raise SolverError(f"{path}: its learned_net {learned} was not found (nor {alt})")
                model = alt
            try:
                self.net.copy_from(model)
            except WeightsError as e:
                raise SolverError(f"{path}: cannot restore weights: {e}") from None
        for h, mine in zip(hist, self.history):
            h = h.astype(np.float32).reshape(tuple(mine.shape))
            if self.backend.host_mirror:
                self.backend.to_device(h, out=mine)
            else:
                mine[...] = h
        self.iter = int(it)
        self.lr_policy.current_step = int(step)
        self.log("SGDSolver: restoring history", "sgd_solver.cpp", 315)

    def close(self) -> None:
        """Stop data prefetch threads."""
        for net in [self.net, *self.test_nets]:
            for layer in net.layers:
                if hasattr(layer, "close"):
                    layer.close()


def _atomic(path: str, write) -> None:
    """Run ``write(tmp)`` then rename tmp to ``path``; remove tmp on failure."""
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_state_h5(path: str, it: int, learned: str, step: int, hist) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        f["iter"] = it
        f["learned_net"] = learned
        f["current_step"] = step
        g = f.create_group("history")
        for i, h in enumerate(hist):
            g.create_dataset(str(i), data=np.asarray(h, dtype=np.float32))


def _read_state_h5(path: str):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            it = int(f["iter"][()])
            learned = f["learned_net"][()]
            learned = learned.decode() if isinstance(learned, bytes) else str(learned)
            step = int(f["current_step"][()])
            g = f["history"]
            hist = [np.asarray(g[str(i)], dtype=np.float32) for i in range(len(g))]
    except (OSError, KeyError) as e:
        raise SolverError(f"{path}: not an HDF5 solver state ({e})") from None
    return it, learned, step, hist


__all__ = ["Solver", "resolve_data_paths", "CaffeError"]
