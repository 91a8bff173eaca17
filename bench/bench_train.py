"""Stage ``train``: one full training iteration (forward, backward, SGD update) of LeNet (batch 64)
and AlexNet (batch 256), our runner (``runner.Net`` on the cuda backend driven by
``runner.solver.Solver``) against the same nets in PyTorch eager with Caffe's semantics
(``bench/torch_nets.py``), on synthetic inputs (the Data layers replaced by an Input layer, see
``bench/netprep.py``).

Per net:
1. **Validation** (no speed for a wrong net): a copy of the net with dropout ratio 0 and a small batch
   runs one Solver step (weight decay 0); the torch model loaded with the same initial weights runs
   one ``train_step`` on the same data. Compared: the loss (relative error) and the weight change of
   every parameter blob (relative Frobenius error of ``w_after - w_before``, which is
   -lr * lr_mult * grad on the first step: it checks forward, backward and update at once).
2. **Timing**: ``solver.step(5)`` / 5 (Caffe's iteration: clear diffs, forward, backward, loss to the
   host, update) and torch's ``zero_grad/forward/backward/step``, after warm-up iterations (Numba JIT,
   cuDNN autotune), median over repetitions, each synchronised.
3. **Launch overhead**: kernel launches per iteration (counted by wrapping Numba's launch call), and
   the cost of one tiny launch (a 1-element ``kernels.fill.scal``) against a tiny torch op; launches
   x that cost is the iteration's Python/launch floor.
4. **Per-layer times** (AlexNet, like ``caffe time``): each layer's forward and backward, synchronised.

Compare with the classic figure: Caffe on a Tesla K40 trained AlexNet at 1.425 s per iteration at
batch 256 (``bench/report.py`` prints the ratio).

Run: ``python -m bench.bench_train``. ``NBCAFFE_BENCH_TRAIN_DEVICE=cpu`` runs our side on the cpu
backend (a dry-run aid while the cuda backend is missing).
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from bench.common import (
    DRY,
    Stage,
    enable_kernel_cache,
    log,
    main_guard,
    missing,
    size,
    sync,
    time_fn,
    torch_device,
    torch_mod,
)
from runner.backend.replay import LaunchCounter

BASE_LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 0.0005
TOL_LOSS = 1e-4      # relative error of the loss
TOL_DELTA = 2e-3     # relative Frobenius error of each parameter's first-step change
OUR_DEVICE = os.environ.get("NBCAFFE_BENCH_TRAIN_DEVICE", "cuda")
STEPS = 5    # iterations per timed call: solver.step(5), as training runs (its per-call setup amortised)

# (name, timed batch, validation batch); AlexNet first: it is the headline, and its JIT compiles
# nearly every kernel LeNet needs, so LeNet is quick after it
NETS = [("alexnet", size(256, 2), size(8, 2)), ("lenet", size(64, 2), size(16, 2))]


def _solver_param(net_param, weight_decay: float = WEIGHT_DECAY):
    from proto import caffe_pb2
    sp = caffe_pb2.SolverParameter()
    sp.net_param.CopyFrom(net_param)
    sp.base_lr = BASE_LR
    sp.momentum = MOMENTUM
    sp.weight_decay = weight_decay
    sp.lr_policy = "fixed"
    sp.max_iter = 1_000_000
    sp.display = 0
    sp.snapshot = 0
    sp.random_seed = 1
    return sp


class _QuietLog:
    """Swallows the Solver's glog lines (the benchmark prints its own)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _make_solver(net_param, weight_decay: float = WEIGHT_DECAY):
    from runner.solver.solver import Solver
    sp = _solver_param(net_param, weight_decay)
    try:
        return Solver(sp, device=OUR_DEVICE, log=_QuietLog())
    except TypeError:
        return Solver(sp, device=OUR_DEVICE)


def _inputs(shape: tuple[int, ...], batch: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    x = r.standard_normal((batch, *shape[1:]), dtype=np.float32)
    y = r.integers(0, classes, batch).astype(np.float32)
    return x, y


def _feed(net, x: np.ndarray, y: np.ndarray) -> None:
    net.blobs["data"].data[...] = x.reshape(net.blobs["data"].shape)
    net.blobs["label"].data[...] = y.reshape(net.blobs["label"].shape)


def _params_host(net) -> dict[str, list[np.ndarray]]:
    """Host copies of every parameter blob (read-only sync: the device copy stays the master)."""
    def get(b):
        return np.array(b.host_data() if hasattr(b, "host_data") else b.data, copy=True)
    return {name: [get(b) for b in blobs] for name, blobs in net.params.items()}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = float(np.linalg.norm(b))
    e = float(np.linalg.norm(a - b)) / max(d, 1e-30)
    return e if np.isfinite(e) else float("inf")


def validate(st: Stage, name: str, batch: int) -> dict[str, Any]:
    """One Solver step of the dropout-free net vs one torch step from the same weights and data."""
    from bench.netprep import synthetic_param
    from bench.torch_nets import CaffeTorchNet, caffe_sgd, train_step
    torch = torch_mod()
    param = synthetic_param(name, batch, dropout_ratio=0.0, shrink=DRY)
    # no weight decay here: the first step's change is then -lr*lr_mult*gradient exactly, so a wrong
    # gradient cannot hide behind the decay term (the decay path is the solver_update kernels' tests)
    solver = _make_solver(param, weight_decay=0.0)
    net = solver.net
    x, y = _inputs(net.blobs["data"].shape, batch, _classes(param), seed=11)
    _feed(net, x, y)
    before = _params_host(net)
    solver.step(1)
    ours_loss = float(getattr(solver, "smoothed_loss", float("nan")))
    after = _params_host(net)

    model = CaffeTorchNet(param).to(torch_device())
    model.load_from(before)
    opt = caffe_sgd(model, BASE_LR, MOMENTUM, 0.0)
    dev = torch_device()
    loss = float(train_step(model, opt, torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)))
    # the same step in float64: the judge. A deep net's first-layer gradient carries float32
    # rounding from every layer above it, so torch FP32 itself is off by some amount; ours passes
    # when it is within TOL_DELTA of float64, or no worse than 3x torch FP32's own error.
    model64 = CaffeTorchNet(param).to(dev).double()
    model64.load_from(before)
    opt64 = caffe_sgd(model64, BASE_LR, MOMENTUM, 0.0)
    train_step(model64, opt64, torch.from_numpy(x).to(dev).double(), torch.from_numpy(y).to(dev))
    worst, worst_name, worst_torch, worst_ratio = 0.0, "", 0.0, -1.0
    for lname, mod in model.params_by_layer.items():
        mod64 = model64.params_by_layer[lname]
        for i, pname in enumerate(("weight", "bias")):
            if not hasattr(mod, pname):
                continue
            b = before[lname][i]
            t_after = getattr(mod, pname).detach().cpu().numpy().reshape(b.shape)
            x_after = getattr(mod64, pname).detach().cpu().numpy().reshape(b.shape)
            e = _rel(after[lname][i] - b, x_after - b)            # ours vs float64
            e_torch = _rel(t_after - b, x_after - b)              # torch FP32 vs float64
            ratio = e / max(TOL_DELTA, 3 * e_torch)               # > 1: ours fails here
            if ratio > worst_ratio:
                worst, worst_name, worst_torch, worst_ratio = e, f"{lname}[{i}]", e_torch, ratio
    loss_err = abs(ours_loss - loss) / max(abs(loss), 1e-30)
    ok = loss_err <= TOL_LOSS and worst_ratio <= 1.0
    res = {"val_batch": batch, "loss_ours": ours_loss, "loss_torch": loss, "loss_rel_err": loss_err,
           "worst_delta_rel_err": worst, "worst_param": worst_name,
           "worst_param_torch_fp32_rel_err": worst_torch, "valid": ok}
    log(f"train {name}: validation loss {ours_loss:.6f} vs torch {loss:.6f} (rel {loss_err:.1e}); "
        f"worst update rel err vs float64 {worst:.1e} at {worst_name} (torch FP32 there: "
        f"{worst_torch:.1e}) -> {'ok' if ok else 'MISMATCH'}")
    if not ok:
        st.note(f"{name}: validation MISMATCH (loss rel err {loss_err:.2e}, worst update rel err "
                f"{worst:.2e} at {worst_name}); timings below are of a net that disagrees with torch")
    return res


def _classes(param) -> int:
    ips = [la for la in param.layer if la.type == "InnerProduct"]
    return int(ips[-1].inner_product_param.num_output)


def time_ours(st: Stage, name: str, batch: int) -> dict[str, Any]:
    """Median ms per iteration of ``solver.step(STEPS)`` at ``batch``, with replay (the default) and
    without; launches per iteration; per-layer times (AlexNet) or a profile (LeNet)."""
    from bench.netprep import synthetic_param
    param = synthetic_param(name, batch, shrink=DRY)
    t0 = time.perf_counter()
    solver = _make_solver(param)
    net = solver.net
    x, y = _inputs(net.blobs["data"].shape, batch, _classes(param), seed=12)
    _feed(net, x, y)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if DRY:                 # the simulator: ~1 s per launch, so count launches on the first step
        with LaunchCounter() as lc:
            solver.step(1)
        first_s = time.perf_counter() - t0
    else:
        solver.step(1)      # JIT compile of every kernel the net uses (not timed)
        sync()
        first_s = time.perf_counter() - t0
        with LaunchCounter() as lc:
            solver.step(1)
            sync()
    replay = solver.executor if solver.executor.replays else None
    graph_ms = n_graphs = None
    if DRY:     # that first step is the dry run's one timing (nothing to compile in the simulator)
        solver.step(1)          # (a third step: the first replayed one, exercising the path)
        t = {"ms": first_s * 1e3, "wall_ms": first_s * 1e3, "reps": 1}
        te = dict(t)
    else:
        budget = max(2.0, st.time_left() / 6)
        t = _per_iteration(time_fn(lambda: solver.step(STEPS), warmup=1, min_reps=3, max_reps=10,
                                   target_s=1.0, max_s=budget))
        te = t
        if replay is not None:          # the same solver with replay off: the eager path's time
            from runner.executor import EagerExecutor
            solver.executor = EagerExecutor(net)
            te = _per_iteration(time_fn(lambda: solver.step(STEPS), warmup=1, min_reps=3,
                                        max_reps=10, target_s=1.0, max_s=budget))
            solver.executor = replay
        if name == "lenet" and replay is not None and not getattr(replay, "graphs", True):
            # replayed segments as CUDA graphs (runner/backend/replay.py; off by default until measured)
            replay.graphs = True
            tg = _per_iteration(time_fn(lambda: solver.step(STEPS), warmup=1, min_reps=3,
                                        max_reps=10, target_s=1.0, max_s=budget))
            replay.graphs = False
            n_graphs = sum(seg.graph is not None for seg in replay._segments.values())
            graph_ms = tg["ms"]
            log(f"train {name}: {tg['ms']:.2f} ms/iter with CUDA graphs ({n_graphs} segments "
                f"captured)")
        if name == "lenet" and st.time_left() > 15:
            st.guard("lenet profile", _profile, st, name, solver)
    res = {"batch": batch, "iter_ms": t["ms"], "iter_wall_ms": t["wall_ms"], "reps": t["reps"],
           "iter_ms_graphs": graph_ms, "graph_segments": n_graphs,
           "iter_ms_eager": te["ms"], "replay": replay is not None,
           "replayed_segments": getattr(replay, "replayed", 0),
           "replay_notes": "; ".join(getattr(replay, "notes", []) or []),
           "images_per_s": batch / t["ms"] * 1e3, "launches_per_iter": lc.count,
           "setup_s": setup_s, "first_iter_s": first_s}
    log(f"train {name}: ours {t['ms']:.2f} ms/iter with replay ({res['images_per_s']:.0f} img/s), "
        f"{te['ms']:.2f} ms/iter eager, {lc.count} launches, first iteration (JIT) {first_s:.1f}s"
        + (f"; replay notes: {res['replay_notes']}" if res["replay_notes"] else ""))
    if (name == "alexnet" or DRY) and st.time_left() > 10:
        st.guard(f"{name} per-layer times", _per_layer, st, name, net)
    return res


def _per_iteration(t: dict[str, Any]) -> dict[str, Any]:
    """time_fn's result for ``solver.step(STEPS)`` as per-iteration times."""
    return {**t, "ms": t["ms"] / STEPS, "wall_ms": t["wall_ms"] / STEPS,
            "min_ms": t.get("min_ms", t["ms"]) / STEPS}


def _profile(st: Stage, name: str, solver) -> None:
    """Where a replayed iteration's time goes: (1) the host, a cProfile of 20 iterations (top
    functions by own time, in bench.log); (2) the GPU, each replayed launch timed alone with an
    event pair and a synchronisation (table ``<name>_ops``: ms per kernel name, summed)."""
    import cProfile
    import io
    import pstats

    from numba import cuda
    pr = cProfile.Profile()
    pr.enable()
    solver.step(20)
    sync()
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
    log(f"{name} host profile, 20 iterations (cProfile, replay on):\n" + buf.getvalue()[-6000:])
    replay = solver.executor if solver.executor.replays else None
    if replay is None:
        return
    per: dict[str, list[float]] = {}
    for key, seg in replay._segments.items():
        for op in seg.ops:
            e0, e1 = cuda.event(), cuda.event()
            e0.record()
            op()
            e1.record()
            e1.synchronize()
            nm = f"{key[0]}:{getattr(op, 'name', type(op).__name__)}"
            per.setdefault(nm, []).append(cuda.event_elapsed_time(e0, e1))
    for nm, ms in sorted(per.items(), key=lambda kv: -sum(kv[1])):
        st.row(f"{name}_ops", {"op": nm, "count": len(ms), "ms": round(sum(ms), 4)})
    total = sum(sum(v) for v in per.values())
    log(f"{name}: replayed ops alone (event per launch) {total:.3f} ms in {sum(map(len, per.values()))} "
        f"launches; top: " + ", ".join(f"{k} {sum(v):.3f}" for k, v in
                                      sorted(per.items(), key=lambda kv: -sum(kv[1]))[:8]))


def _per_layer(st: Stage, name: str, net) -> None:
    """Caffe's ``time``: each layer's forward then (in reverse) backward, synchronised, after a warm
    pass (none in the dry run); table ``<name>_layers``."""
    layers, bottoms, tops = net.layers, net.bottom_vecs, net.top_vecs
    need, prop = net.need_backward_flags, net.bottom_need_backward
    names = list(net.layer_dict)
    fwd = [0.0] * len(layers)
    bwd = [0.0] * len(layers)
    passes = 1 if DRY else 2
    for rep in range(passes):
        last = rep == passes - 1
        for i, layer in enumerate(layers):
            sync()
            t0 = time.perf_counter()
            layer.forward(bottoms[i], tops[i])
            sync()
            if last:
                fwd[i] = (time.perf_counter() - t0) * 1e3
        for i in range(len(layers) - 1, -1, -1):
            if not need[i]:
                continue
            sync()
            t0 = time.perf_counter()
            layers[i].backward(tops[i], prop[i], bottoms[i])
            sync()
            if last:
                bwd[i] = (time.perf_counter() - t0) * 1e3
    for i, n in enumerate(names):
        st.row(f"{name}_layers", {"layer": n, "type": type(layers[i]).__name__, "fwd_ms": fwd[i],
                                  "bwd_ms": bwd[i]})


def time_torch(name: str, batch: int) -> dict[str, Any]:
    """Median ms of one torch eager training iteration of the same net."""
    from bench.netprep import synthetic_param
    from bench.torch_nets import CaffeTorchNet, caffe_sgd, train_step
    torch = torch_mod()
    param = synthetic_param(name, batch, shrink=DRY)
    model = CaffeTorchNet(param).to(torch_device())
    opt = caffe_sgd(model, BASE_LR, MOMENTUM, WEIGHT_DECAY)
    x, y = _inputs(model.shapes["data"], batch, _classes(param), seed=12)
    xd = torch.from_numpy(x).to(torch_device())
    yd = torch.from_numpy(y).to(torch_device())

    def step():
        loss = train_step(model, opt, xd, yd)
        return float(loss)     # the loss to the host each iteration, as Caffe's solver does

    reps = dict(warmup=1, min_reps=1, max_reps=1) if DRY else dict(warmup=3, min_reps=5, max_reps=30,
                                                                    target_s=1.0)
    t = time_fn(step, **reps)
    log(f"train {name}: torch {t['ms']:.2f} ms/iter")
    res = {"torch_iter_ms": t["ms"], "torch_images_per_s": batch / t["ms"] * 1e3}
    if not DRY:
        torch.cuda.empty_cache()
    return res


def launch_overhead(st: Stage) -> None:
    """µs per tiny launch: ours (kernels.fill.scal on 1 element) and torch (mul_ on 1 element)."""
    torch = torch_mod()
    n = size(2000, 20)
    t = torch.ones(1, device=torch_device())
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        t.mul_(1.0)
    sync()
    st.put("torch_launch_overhead_us", round((time.perf_counter() - t0) / n * 1e6, 2))
    why = missing("kernels.fill", "scal")
    if why:
        st.note(f"launch overhead (ours): skipped: {why}")
        return
    from numba import cuda

    from kernels import fill
    a = cuda.to_device(np.ones(1, np.float32))
    fill.scal(a, 1.0)     # compile
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fill.scal(a, 1.0)
    sync()
    st.put("launch_overhead_us", round((time.perf_counter() - t0) / n * 1e6, 2))
    log(f"launch overhead: ours {st.data['scalars']['launch_overhead_us']} us, torch "
        f"{st.data['scalars']['torch_launch_overhead_us']} us per tiny op")
    if OUR_DEVICE == "cuda" and not missing("runner.backend.cuda", "CudaBackend"):
        # one backend op on 1 element: what every layer pays before any work (dispatch + launch)
        from runner.backend import get_backend
        be = get_backend("cuda")
        x = be.to_device(np.ones((1, 1, 1, 1), np.float32))
        y = be.zeros((1, 1, 1, 1))
        be.relu_fwd(x, y)
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            be.relu_fwd(x, y)
        sync()
        st.put("tiny_layer_op_us", round((time.perf_counter() - t0) / n * 1e6, 2))
        log(f"tiny backend op (relu_fwd on 1 element): {st.data['scalars']['tiny_layer_op_us']} us")
        # the same launch pre-bound by runner.backend.replay: what a replayed iteration pays per launch
        from runner.backend.replay import Recorder
        with Recorder() as rec:
            be.relu_fwd(x, y)
        if rec.unsafe is None and len(rec.ops) == 1:
            op = rec.ops[0]
            op()
            sync()
            t0 = time.perf_counter()
            for _ in range(n):
                op()
            sync()
            st.put("replayed_launch_us", round((time.perf_counter() - t0) / n * 1e6, 2))
            log(f"replayed launch (pre-bound relu_fwd): {st.data['scalars']['replayed_launch_us']} us")
        else:
            st.note(f"replayed launch: not measured ({rec.unsafe or len(rec.ops)} ops)")


def body(st: Stage) -> None:
    st.put("train_kernel_cache", enable_kernel_cache())
    st.guard("launch overhead", launch_overhead, st)
    why = None
    if OUR_DEVICE == "cuda":
        why = missing("runner.backend.cuda", "CudaBackend")
        if why:
            why = f"runner cuda backend missing ({why})"
    if why is None:
        why = missing("runner.solver.solver", "Solver") or missing("runner.net", "Net")
    if why:
        st.note(f"ours: skipped: {why}")
    for name, batch, vbatch in NETS:
        st.put(f"{name}_batch", batch)
        row: dict[str, Any] = {"net": name, "batch": batch}
        if not why and st.time_left() > 15:
            if DRY or st.time_left() > 45:
                v = st.guard(f"{name} validation", validate, st, name, vbatch)
                if v:
                    row.update(v)
            else:    # the timing is the headline; validation needs a second net and its JIT
                st.note(f"{name} validation: skipped (stage time budget), timing not validated")
            if DRY and name == "alexnet":
                st.note("alexnet ours timing: not run in the dry run (the simulator runs ~1 s per "
                        "launch; validation above exercised the net, lenet the timing path)")
            elif st.time_left() > 10:
                o = st.guard(f"{name} ours", time_ours, st, name, batch)
                if o:
                    row.update(o)
                    st.put(f"{name}_iter_ms", round(o["iter_ms"], 3))
                    st.put(f"{name}_iter_ms_eager", round(o["iter_ms_eager"], 3))
                    if o.get("iter_ms_graphs") is not None:
                        st.put(f"{name}_iter_ms_graphs", round(o["iter_ms_graphs"], 3))
                    st.put(f"{name}_launches_per_iter", o["launches_per_iter"])
            else:
                st.note(f"{name} ours: skipped (stage time budget)")
        if st.time_left() > 5:
            tt = st.guard(f"{name} torch", time_torch, name, batch)
            if tt:
                row.update(tt)
                st.put(f"torch_{name}_iter_ms", round(tt["torch_iter_ms"], 3))
        else:
            st.note(f"{name} torch: skipped (stage time budget)")
        if "iter_ms" in row and "torch_iter_ms" in row:
            row["speedup_vs_torch"] = row["torch_iter_ms"] / row["iter_ms"]
        if "iter_ms" in row and "launch_overhead_us" in st.data["scalars"]:
            row["launch_floor_ms"] = row["launches_per_iter"] * st.data["scalars"]["launch_overhead_us"] / 1e3
        st.row("train", row)


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("train"), body))
