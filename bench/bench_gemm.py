"""Stage ``gemm``: our SGEMM kernels (kernels/gemm.py) against cuBLAS FP32 (torch, TF32 off).

Shapes: square 1024/2048/4096, and the im2col GEMMs of AlexNet's five convolutions at batch 256
(forward M=Cout/g, N=chunk*OH*OW, K=Cin/g*kh*kw; the two backward GEMMs too, see bench/alexnet.py),
with the images-per-column-buffer chunk that kernels/conv.py uses.

Order (most important first, each item under the stage's time budget):

1. per shape: validate the public ``gemm()`` -- exactly what the convolutions and the cuda backend
   run, split-K included (``str(gemm.plan(M, N, K))`` names it) -- against cuBLAS on fresh random
   data (relative Frobenius error <= TOL), then time both: GFLOP/s = 2*M*N*K / time and % of cuBLAS;
2. split sweep: on the weight-gradient shapes (``*_bwd_w``: small M x N, K = images x pixels)
   every split-K kernel (``gemm_v6k_*`` / ``gemm_v7k_*`` / ``gemm_v9k_*``) at half, once and twice
   its ``splitk_slices`` count (``gemm.launch(Plan(kernel, slices))``);
3. autotune table: every other kernel in ``gemm.KERNELS`` -- the ones the planner launches and the
   unmeasured candidates -- on the square and the forward conv shapes (``launch(Plan(kernel))``),
   each validated before it is timed.
Then the best plan per shape next to what ``gemm()`` launches; where the best beats it by
``MEASURED_MARGIN`` or more, the log prints the ``gemm.MEASURED`` entry to paste (the planner's
table).

JIT compilation of two dozen register-blocked kernels (the unrolled ones take 10+ s each) costs far
more than timing them, so every measurement of our kernels runs in ``SWEEP_WORKERS`` processes that
compile their share of ``KERNELS`` in parallel (``dispatcher.compile``: nothing runs on the GPU)
while this process times cuBLAS (no JIT here). Then the measurements run in one global priority
order (``plan``: ``gemm()`` on every shape, the split sweep, then the autotune sweep), one process
at a time: a shared turn counter passes from item to item, so only one process uses the GPU while a
measurement runs. If the worker processes cannot start, the plan runs in this process.

Run: ``python -m bench.bench_gemm`` (dry run: NBCAFFE_BENCH_DRY=1, tiny shapes, simulator).
"""
from __future__ import annotations

import os
import time
from typing import Any

from bench.common import DRY, Stage, log, main_guard, missing, size, time_fn, torch_mod
from bench.devarrays import empty_pair, rand_pair, rel_err_dev

TOL = 1e-4    # relative Frobenius error allowed against cuBLAS (fp32 with K <= ~1e6 gives ~1e-6)
MEASURED_MARGIN = 1.05   # a sweep winner this much faster than gemm()'s plan is logged for MEASURED
SWEEP_WORKERS = int(os.environ.get("NBCAFFE_BENCH_GEMM_WORKERS", size(6, 2)))

REPS = dict(warmup=0, min_reps=1, max_reps=1) if DRY else dict(warmup=1, min_reps=3, max_reps=20,
                                                                target_s=0.15)
SWEEP_REPS = REPS if DRY else dict(warmup=1, min_reps=2, max_reps=10, target_s=0.05)

Shape = tuple[str, int, int, int, bool, bool, bool]


def shapes() -> list[Shape]:
    """(label, M, N, K, trans_a, trans_b, sweep) in priority order; ``sweep``: in the autotune table."""
    from bench.alexnet import conv_chunk, conv_layers
    out = []
    for s in size((4096, 2048, 1024), (16,)):
        out.append((f"sq{s}", s, s, s, False, False, True))
    for layer in conv_layers():
        chunk = conv_chunk(layer)
        for kind, (m, n, k, ta, tb) in layer.gemm_shapes(chunk).items():
            out.append((f"{layer.name}_{kind}", m, n, k, ta, tb, kind == "fwd" and not DRY))
    return out


def sweep_shapes() -> list[Shape]:
    """The autotune table's shapes: the largest square first (the headline), then the forward conv
    shapes, then the smaller squares (the dry run: the one tiny square)."""
    all_ = shapes()
    if DRY:
        return [all_[0]]
    sw = [s for s in all_ if s[6]]
    sw.sort(key=lambda s: (0 if s[0] == all_[0][0] else 2 if s[0].startswith("sq") else 1))
    return sw


class Problem:
    """Operands of one GEMM shape on the device: A, B (N(0,1)), C (NaN-filled), and the cuBLAS
    reference ``ref = op(A) @ op(B)`` (TF32 off). ``ours``/``theirs`` views share memory on a GPU."""

    def __init__(self, label: str, m: int, n: int, k: int, ta: bool, tb: bool):
        self.label, self.m, self.n, self.k, self.ta, self.tb = label, m, n, k, ta, tb
        self.a, self.at = rand_pair((k, m) if ta else (m, k), seed=1)
        self.b, self.bt = rand_pair((n, k) if tb else (k, n), seed=2)
        self.c, self.ct = empty_pair((m, n))
        self.aa = self.at.t() if ta else self.at
        self.bb = self.bt.t() if tb else self.bt
        self.ref = self.aa @ self.bb

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k


def measure_cublas(p: Problem) -> dict[str, float]:
    """Median time of cuBLAS (``torch.mm`` into C)."""
    torch = torch_mod()
    return time_fn(lambda: torch.mm(p.aa, p.bb, out=p.ct), **REPS)


def measure_kernel(p: Problem, kname: str, reps: dict, cublas_ms: float | None,
                   how: str = "with", slices: int = 1) -> dict[str, Any]:
    """Validate, then time, one way of computing problem ``p``; the row. ``how``: ``"gemm"`` -- the
    public ``gemm()`` (``kname`` is what its plan launches, for the label only); otherwise
    ``launch(Plan(kname, slices))``."""
    from kernels import gemm as kg
    a, b, c, ta, tb = p.a, p.b, p.c, p.ta, p.tb
    if how == "gemm":
        def fn():
            kg.gemm(ta, tb, 1.0, a, b, 0.0, c)
        label = str(kg.plan(p.m, p.n, p.k))
    else:
        plan_ = kg.Plan(kname, slices)

        def fn():
            kg.launch(plan_, ta, tb, 1.0, a, b, 0.0, c)
        label = str(plan_)
    p.ct.fill_(float("nan"))
    fn()   # first call: JIT compile if needed (outside any timed region) and the result to validate
    err = rel_err_dev(c, p.ref)
    row: dict[str, Any] = {"shape": p.label, "M": p.m, "N": p.n, "K": p.k,
                           "trans": f"{'T' if ta else 'N'}{'T' if tb else 'N'}",
                           "kernel": label, "slices": slices if how == "split" else None,
                           "rel_err": err}
    if not err <= TOL:
        row["status"] = f"WRONG (rel_err {err:.2e} > {TOL})"
        return row
    t = time_fn(fn, **reps)
    row.update(ms=t["ms"], gflops=p.flops / t["ms"] / 1e6, reps=t["reps"], status="ok")
    if cublas_ms:
        row["pct_cublas"] = 100.0 * cublas_ms / t["ms"]
    return row


def _gemm_launches(m: int, n: int, k: int) -> str:
    """The kernel ``gemm()``'s plan launches for (m, n, k): the worker that compiled it measures
    the item."""
    from kernels import gemm as kg
    return kg.plan(m, n, k).kernel


def split_options(m: int, n: int, k: int, kname: str) -> list[int]:
    """Slice counts the split sweep times for kernel ``kname``: half, once and twice its
    ``splitk_slices`` count (at least 2, at most ``SPLITK_MAX``); the dry run: 2 only."""
    from kernels import gemm as kg
    if DRY:
        return [2]
    s = kg.splitk_slices(m, n, k, kname)
    return sorted({max(2, s // 2), max(2, s), min(kg.SPLITK_MAX, max(2, 2 * s))})


# --------------------------------------------------------------------------- the measurement plan
# An item is (index, shape, kernel name, kind, slices): kind "promoted" = the public gemm() (every
# shape, first; the kernel name is what its plan launches), "split" = launch(Plan(kernel, slices))
# with a split kernel (the bwd_w shapes), "sweep" = the autotune table (launch(Plan(kernel)) of
# every other kernel on the sweep shapes).
Item = tuple[int, Shape, str, str, int]


def _is_split(name: str) -> bool:
    return name.startswith(("gemm_v6k_", "gemm_v7k_", "gemm_v9k_"))


def plan(names: list[str]) -> list[Item]:
    """Every measurement in priority order: gemm() on every shape, the split sweep, the autotune."""
    items: list[Item] = []
    for s in shapes():
        items.append((len(items), s, _gemm_launches(s[1], s[2], s[3]), "promoted", 1))
    bwd_w = [s for s in shapes() if s[0].endswith("_bwd_w")]
    for s in bwd_w[:1] if DRY else bwd_w:
        for kname in names:
            if _is_split(kname):
                for slices in split_options(s[1], s[2], s[3], kname):
                    items.append((len(items), s, kname, "split", slices))
    for s in sweep_shapes():
        for kname in names:
            if _is_split(kname) or (kname == "gemm_v1" and s[1] * s[2] * s[3] > 2048 ** 3):
                continue   # split kernels: above / naive kernel: seconds per call, 2048 tells enough
            items.append((len(items), s, kname, "sweep", 1))
    return items


def _measure_item(prob: Problem, kname: str, kind: str, slices: int) -> dict[str, Any]:
    how = {"promoted": "gemm", "split": "split"}.get(kind, "with")
    row = measure_kernel(prob, kname, REPS if kind == "promoted" else SWEEP_REPS, None, how, slices)
    row["kind"] = kind
    row["kname"] = kname
    return row


def _compile(names: list[str]) -> dict[str, float]:
    """JIT-compile kernels ``names`` for the signature every later launch uses (C-contiguous float32
    operands), without running anything on the GPU (``dispatcher.compile``); in the simulator, one
    tiny launch each. Returns seconds per kernel."""
    from kernels import gemm as kg
    secs: dict[str, float] = {}
    tiny = None
    for name in names:
        t0 = time.time()
        kernel, sigs = kg.KERNELS[name]
        if not DRY and hasattr(kernel, "compile"):
            kernel.compile(sigs[0])
        else:
            if tiny is None:
                tiny = Problem("tiny", 8, 8, 8, False, False)
            kg.launch(kg.Plan(name), False, False, 1.0, tiny.a, tiny.b, 0.0, tiny.c)
        secs[name] = round(time.time() - t0, 2)
    return secs


def _worker(wid: int, names: list[str], items: list[Item], deadline: float, turn, cond, queue) -> None:
    """Worker process: compile ``names`` (in parallel with the other workers), then run its items in
    global order: item i starts when ``turn`` reaches i (so only one process uses the GPU at a time,
    in priority order) and passes the turn on when done. Rows/notes/logs go to ``queue``."""
    try:
        from bench.common import enable_kernel_cache
        enable_kernel_cache()      # what this worker compiles is on disk for the later stages
        secs = _compile(names)
        queue.put(("log", f"worker {wid}: compiled {len(names)} kernels in {sum(secs.values()):.1f}s "
                          f"({', '.join(f'{k} {v}s' for k, v in secs.items())})"))
        queue.put(("compile", secs))
        ok = set(names)
    except Exception as e:  # noqa: BLE001 - reported; this worker's items are skipped in turn
        queue.put(("note", f"autotune worker {wid}: compile failed: {type(e).__name__}: {str(e)[:300]}"))
        ok = set()
    prob: Problem | None = None
    for i, shape, kname, kind, slices in items:
        if kname not in names:
            continue
        with cond:
            while turn.value < i:
                if not cond.wait(timeout=max(0.1, deadline + 5 - time.time())) and time.time() > deadline + 5:
                    break
            if turn.value > i:
                continue    # skipped by the main process
        try:
            if kname not in ok:
                queue.put(("note", f"{shape[0]} {kname}: not compiled, skipped"))
            elif time.time() > deadline - 2:
                queue.put(("skip", (i, shape[0], kname)))
            else:
                if prob is None or prob.label != shape[0]:
                    prob = None
                    if not DRY:
                        torch_mod().cuda.empty_cache()
                    prob = Problem(*shape[:6])
                queue.put(("row", _measure_item(prob, kname, kind, slices)))
        except Exception as e:  # noqa: BLE001 - one item's failure is data
            queue.put(("note", f"{shape[0]} {kname}: failed: {type(e).__name__}: {str(e)[:300]}"))
        finally:
            with cond:
                if turn.value == i:
                    turn.value = i + 1
                cond.notify_all()
    queue.put(("done", wid))


def _groups(names: list[str], n: int) -> list[list[str]]:
    """Split kernels over n workers, the slow-to-compile (unrolled, big-tile) ones spread evenly."""
    def cost(name: str) -> int:     # v6/v7/v9 and their split twins have unrolled k loops
        if name == "gemm_v1":
            return 0
        return ("_v4_" not in name) * 4 + ("128" in name)
    groups: list[list[str]] = [[] for _ in range(n)]
    for i, name in enumerate(sorted(names, key=cost, reverse=True)):
        groups[i % n if (i // n) % 2 == 0 else n - 1 - i % n].append(name)
    return [g for g in groups if g]


def run_parallel(st: Stage, names: list[str], items: list[Item], record) -> None:
    """Workers compile in parallel while this process times cuBLAS; then the items run in order."""
    import multiprocessing as mp
    import queue as queue_mod
    ctx = mp.get_context("spawn")          # never fork a process that holds a CUDA context
    groups = _groups(names, max(1, min(SWEEP_WORKERS, len(names))))
    owner = {k: w for w, g in enumerate(groups) for k in g}
    deadline = time.time() + st.time_left() - 2
    turn = ctx.Value("i", -1)
    cond = ctx.Condition()
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, g, items, deadline, turn, cond, q), daemon=True)
             for w, g in enumerate(groups)]
    for pr in procs:
        pr.start()
    log(f"gemm: {len(names)} kernels compiling in {len(groups)} worker processes; {len(items)} items")
    record("cublas")                        # turn -1: this process has the GPU (no JIT here)
    with cond:
        turn.value = 0
        cond.notify_all()
    finished: set[int] = set()
    last_turn, last_change = 0, time.time()
    while len(finished) < len(procs):
        try:
            kind, item = q.get(timeout=0.5)
        except queue_mod.Empty:
            kind, item = None, None
        if kind == "row":
            record("row", item)
        elif kind == "skip":
            record("skip", item)
        elif kind == "note":
            st.note(item)
        elif kind == "log":
            log(item)
        elif kind == "compile":
            for k, v in item.items():
                st.row("gemm_compile_s", {"kernel": k, "seconds": v})
        elif kind == "done":
            finished.add(item)
        with cond:   # items whose owner died: pass the turn on
            while turn.value < len(items):
                t = turn.value
                w = owner.get(items[t][2])
                if w is None or procs[w].is_alive() or w in finished:
                    break
                st.note(f"worker {w} died (exit code {procs[w].exitcode}): {items[t][1][0]} "
                        f"{items[t][2]} skipped")
                turn.value = t + 1
                cond.notify_all()
            if turn.value != last_turn:
                last_turn, last_change = turn.value, time.time()
        for w, pr in enumerate(procs):
            if w not in finished and not pr.is_alive() and turn.value >= len(items):
                finished.add(w)
        if time.time() > deadline + 3:
            st.note(f"gemm: stopped at the stage budget with {len(items) - turn.value} items not run")
            break
        if time.time() - last_change > 120:
            st.note(f"gemm: no progress for 120 s at item {turn.value}: stopped")
            break
    for pr in procs:
        pr.join(timeout=1)
        if pr.is_alive():
            pr.kill()


def run_serial(st: Stage, items: list[Item], record) -> None:
    """The same plan in this process (no worker processes)."""
    record("cublas")
    prob: Problem | None = None
    for i, shape, kname, kind, slices in items:
        if st.time_left() < 4:
            record("skip", (i, shape[0], kname))
            continue
        if prob is None or prob.label != shape[0]:
            prob = None
            prob = st.guard(f"{shape[0]} operands", Problem, *shape[:6])
            if prob is None:
                continue
        row = st.guard(f"{shape[0]} {kname} ({kind})", _measure_item, prob, kname, kind, slices)
        if row is not None:
            record("row", row)


def body(st: Stage) -> None:
    why = missing("kernels.gemm", "gemm", "launch", "plan", "Plan", "KERNELS")
    if why:
        st.note(f"skipped: {why}")
        st.finish("skipped")
        return
    from kernels import gemm as kg
    torch = torch_mod()
    square = max(s[1] for s in shapes() if s[0].startswith("sq"))
    st.put("gemm_square_max", square)
    st.put("gemm_square_plan", str(kg.plan(square, square, square)))
    st.put("gemm_kernels", len(kg.KERNELS))
    # the GEMM kernels (gemm_*); helpers such as splitk_reduce_v1 take other arguments
    names = [n for n in kg.KERNELS if n.startswith("gemm_")]
    items = plan(names)
    cublas: dict[str, dict[str, float]] = {}

    def record(kind: str, item: Any = None) -> None:
        if kind == "cublas":
            for label, m, n, k, ta, tb, _ in shapes():
                if st.time_left() < 10:
                    st.note(f"{label} cublas: skipped (stage time budget)")
                    continue
                p = st.guard(f"{label} operands", Problem, label, m, n, k, ta, tb)
                t = None if p is None else st.guard(f"{label} cublas", measure_cublas, p)
                del p
                if t is not None:
                    cublas[label] = {"ms": t["ms"], "gflops": 2.0 * m * n * k / t["ms"] / 1e6}
                    key = label[2:] if label.startswith("sq") else label
                    st.put(f"cublas_{key}_gflops", round(cublas[label]["gflops"], 1))
            if not DRY:
                torch.cuda.empty_cache()
            return
        if kind == "skip":
            _, label, kname = item
            st.note(f"{label} {kname}: skipped (stage time budget)")
            return
        row = item
        label = row["shape"]
        if label in cublas and "ms" in row:
            row["pct_cublas"] = 100.0 * cublas[label]["ms"] / row["ms"]
        if row.get("status") != "ok":
            st.note(f"{label} {row['kernel']}: validation failed, rel_err={row['rel_err']:.3e}: not timed")
        st.row("gemm_autotune", row)
        if row.get("kind") == "promoted":
            r = dict(row)
            r["kernel"] = f"gemm() -> {row['kernel']}"   # measured through gemm() itself
            if label in cublas:
                r["cublas_ms"] = cublas[label]["ms"]
                r["cublas_gflops"] = cublas[label]["gflops"]
            st.row("gemm_vs_cublas", r)
            key = label[2:] if label.startswith("sq") else label
            if "gflops" in row:
                st.put(f"sgemm_{key}_gflops", round(row["gflops"], 1))
            log(f"gemm {label:12s} M={row['M']} N={row['N']} K={row['K']}: ours "
                f"{row.get('gflops', float('nan')):8.0f} GFLOP/s cuBLAS "
                f"{cublas.get(label, {}).get('gflops', float('nan')):8.0f} GFLOP/s "
                f"({row.get('pct_cublas', float('nan')):.0f}%) err {row['rel_err']:.1e} [{row['kernel']}]")

    try:
        if SWEEP_WORKERS > 1:
            run_parallel(st, names, items, record)
        else:
            run_serial(st, items, record)
    except (OSError, RuntimeError, ImportError, EOFError) as e:
        st.note(f"gemm: worker processes failed ({type(e).__name__}: {e}); running in this process")
        done = {(r["shape"], r.get("kname"), r.get("kind"), r.get("slices") or 1)
                for r in st.data["tables"].get("gemm_autotune", [])}
        run_serial(st, [it for it in items if (it[1][0], it[2], it[3], it[4]) not in done], record)

    rows = st.data["tables"].get("gemm_autotune", [])
    best_shapes = sweep_shapes() + [s for s in shapes() if s[0].endswith("_bwd_w")]
    for label, m, n, k, _, _, _ in best_shapes:
        timed = [r for r in rows if r["shape"] == label and "gflops" in r]
        if not timed:
            continue
        b = max(timed, key=lambda r: r["gflops"])
        public = next((r for r in timed if r.get("kind") == "promoted"), None)
        st.row("gemm_best", {"shape": label, "M": m, "N": n, "K": k, "best_kernel": b["kernel"],
                             "best_slices": b.get("slices"),
                             "best_gflops": b["gflops"], "pct_cublas": b.get("pct_cublas"),
                             "gemm_launches": public["kernel"] if public else str(kg.plan(m, n, k)),
                             "gemm_gflops": public["gflops"] if public else None,
                             "kernels_timed": len(timed)})
        log(f"autotune {label}: best {b['kernel']} {b['gflops']:.0f} GFLOP/s of {len(timed)} timed; "
            f"gemm() -> {kg.plan(m, n, k)}")
        if public and b is not public and b["gflops"] >= MEASURED_MARGIN * public["gflops"]:
            log(f"  MEASURED[({m}, {n}, {k})] = Plan({b['kname']!r}, {b.get('slices') or 1})"
                f"   # {b['gflops'] / public['gflops']:.2f}x gemm()")
        if label.startswith("sq"):
            st.put(f"sgemm_{label[2:]}_best_gflops", round(b["gflops"], 1))
            st.put(f"sgemm_{label[2:]}_best_kernel", b["kernel"])


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("gemm"), body))
