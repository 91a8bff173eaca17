"""Stage ``gemm``: our SGEMM kernels (kernels/gemm.py) against cuBLAS FP32 (torch, TF32 off).

Shapes: square 1024/2048/4096, and the im2col GEMMs of AlexNet's five convolutions at batch 256
(forward M=Cout/g, N=chunk*OH*OW, K=Cin/g*kh*kw; the two backward GEMMs too, see bench/alexnet.py),
with the images-per-column-buffer chunk that kernels/conv.py uses.

Order (most important first, each item under the stage's time budget):

1. per shape: validate ``gemm()`` (the promoted kernel + ``select_config``) against cuBLAS on fresh
   random data (relative Frobenius error <= TOL), then time both: GFLOP/s = 2*M*N*K / time and % of
   cuBLAS;
2. autotune table: every kernel in ``gemm.KERNELS`` (v1, v2, and each later version x every tile in
   ``CONFIGS``) on the square and the forward conv shapes, each validated before it is timed; the
   best per shape, and what ``select_config`` chose.

JIT compilation of two dozen register-blocked kernels takes longer than timing them, so the sweep
runs in ``SWEEP_WORKERS`` processes that compile their share of the kernels in parallel (CPU only:
one tiny launch each), wait for each other, then time one at a time (a lock: only one process uses
the GPU while a measurement runs; a barrier per shape keeps the shapes in priority order). If the
worker processes cannot start, the sweep runs serially in this process.

Run: ``python -m bench.bench_gemm`` (dry run: NBCAFFE_BENCH_DRY=1, tiny shapes, simulator).
"""
from __future__ import annotations

import os
import time
from typing import Any

from bench.common import DRY, Stage, log, main_guard, missing, size, time_fn, torch_mod
from bench.devarrays import empty_pair, rand_pair, rel_err_dev

TOL = 1e-4    # relative Frobenius error allowed against cuBLAS (fp32 with K <= ~1e6 gives ~1e-6)
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


def measure_kernel(p: Problem, kname: str | None, reps: dict, cublas_ms: float | None) -> dict[str, Any]:
    """Validate, then time, kernel ``kname`` (None: the public ``gemm``) on problem ``p``; the row."""
    from kernels import gemm as kg
    a, b, c, ta, tb = p.a, p.b, p.c, p.ta, p.tb
    if kname is None:
        def fn():
            kg.gemm(ta, tb, 1.0, a, b, 0.0, c)
    else:
        def fn():
            kg.gemm_with(kname, ta, tb, 1.0, a, b, 0.0, c)
    p.ct.fill_(float("nan"))
    fn()   # first call: JIT compile if needed (outside any timed region) and the result to validate
    err = rel_err_dev(c, p.ref)
    row: dict[str, Any] = {"shape": p.label, "M": p.m, "N": p.n, "K": p.k,
                           "trans": f"{'T' if ta else 'N'}{'T' if tb else 'N'}",
                           "kernel": kname or f"gemm() -> {kg.kernel_for(p.m, p.n, p.k)}", "rel_err": err}
    if not err <= TOL:
        row["status"] = f"WRONG (rel_err {err:.2e} > {TOL})"
        return row
    t = time_fn(fn, **reps)
    row.update(ms=t["ms"], gflops=p.flops / t["ms"] / 1e6, reps=t["reps"], status="ok")
    if cublas_ms:
        row["pct_cublas"] = 100.0 * cublas_ms / t["ms"]
    return row


# ----------------------------------------------------------------------------------- sweep workers
def _compile(names: list[str]) -> None:
    """JIT-compile kernels ``names`` with one tiny launch each (C-contiguous operands, the types every
    later launch uses, so no recompilation happens inside the timed sweep)."""
    from kernels import gemm as kg
    p = Problem("tiny", 8, 8, 8, False, False)
    for name in names:
        kg.gemm_with(name, False, False, 1.0, p.a, p.b, 0.0, p.c)
    from bench.common import sync
    sync()


def _sweep_worker(wid: int, names: list[str], sweep: list[Shape], cublas_ms: dict[str, float],
                  deadline: float, barrier, lock, queue) -> None:
    """Worker process: compile ``names``, then per shape (barrier between shapes) validate+time each
    of them while holding ``lock``; rows and notes go to ``queue``; ("done", wid) at the end."""
    import threading
    try:
        t0 = time.time()
        _compile(names)
        queue.put(("log", f"worker {wid}: compiled {len(names)} kernels in {time.time() - t0:.1f}s"))
    except Exception as e:  # noqa: BLE001 - reported; this worker's kernels are skipped
        queue.put(("note", f"autotune worker {wid}: compile failed: {type(e).__name__}: {str(e)[:200]}"))
        names = []
    for i, (label, m, n, k, ta, tb, _) in enumerate(sweep):
        try:   # the first wait covers the others' compilation; a dead worker costs one timeout
            barrier.wait(timeout=max(1.0, min(deadline - time.time(), 90.0 if i == 0 else 30.0)))
        except threading.BrokenBarrierError:
            pass    # a worker died or timed out: go on, the lock still serialises the GPU
        with lock:
            if not names:
                continue
            if time.time() > deadline - 3:
                queue.put(("note", f"autotune {label}: {', '.join(names)} skipped (stage time budget)"))
                continue
            try:
                p = Problem(label, m, n, k, ta, tb)
            except Exception as e:  # noqa: BLE001
                queue.put(("note", f"autotune {label}: operands failed: {type(e).__name__}: {e}"))
                continue
            for name in names:
                if name == "gemm_v1" and m * n * k > 2048 ** 3:
                    continue   # naive kernel: seconds per call at 4096^3; its 2048 row tells enough
                if time.time() > deadline - 3:
                    queue.put(("note", f"autotune {label} {name}: skipped (stage time budget)"))
                    continue
                try:
                    queue.put(("row", measure_kernel(p, name, SWEEP_REPS, cublas_ms.get(label))))
                except Exception as e:  # noqa: BLE001
                    queue.put(("note", f"autotune {label} {name}: failed: {type(e).__name__}: "
                                       f"{str(e)[:200]}"))
            del p
            if not DRY:
                torch_mod().cuda.empty_cache()
    queue.put(("done", wid))


def _sweep_parallel(st: Stage, names: list[str], sweep: list[Shape], cublas_ms: dict[str, float]) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    ctx = mp.get_context("spawn")          # never fork a process that holds a CUDA context
    nw = max(1, min(SWEEP_WORKERS, len(names)))
    groups = [names[i::nw] for i in range(nw)]
    deadline = time.time() + st.time_left() - 2
    barrier = ctx.Barrier(nw)
    lock = ctx.Lock()
    q = ctx.Queue()
    procs = [ctx.Process(target=_sweep_worker, args=(i, g, sweep, cublas_ms, deadline, barrier, lock, q),
                         daemon=True) for i, g in enumerate(groups)]
    for pr in procs:
        pr.start()
    log(f"autotune: {len(names)} kernels in {nw} worker processes")
    done: set[int] = set()
    while len(done) < nw:
        try:
            kind, item = q.get(timeout=0.5)
        except queue_mod.Empty:
            for wid, pr in enumerate(procs):
                if wid not in done and not pr.is_alive():
                    st.note(f"autotune worker {wid} ({', '.join(groups[wid])}) exited without finishing "
                            f"(exit code {pr.exitcode})")
                    done.add(wid)
            if time.time() >= deadline + 2:
                st.note(f"autotune: {nw - len(done)} worker(s) still running at the stage budget: stopped")
                break
            continue
        if kind == "row":
            st.row("gemm_autotune", item)
            if "status" in item and item["status"] != "ok":
                st.note(f"{item['shape']} {item['kernel']}: validation failed, rel_err={item['rel_err']:.3e}")
        elif kind == "note":
            st.note(item)
        elif kind == "log":
            log(item)
        elif kind == "done":
            done.add(item)
    for pr in procs:
        pr.join(timeout=2)
        if pr.is_alive():
            pr.kill()


def _sweep_serial(st: Stage, names: list[str], sweep: list[Shape], cublas_ms: dict[str, float]) -> None:
    for label, m, n, k, ta, tb, _ in sweep:
        if st.time_left() < 6:
            st.note(f"autotune {label}: skipped (stage time budget)")
            continue
        p = Problem(label, m, n, k, ta, tb)
        for kname in names:
            if st.time_left() < 6:
                st.note(f"autotune {label} {kname}: skipped (stage time budget)")
                continue
            if kname == "gemm_v1" and m * n * k > 2048 ** 3:
                continue
            row = st.guard(f"autotune {label} {kname}", measure_kernel, p, kname, SWEEP_REPS,
                           cublas_ms.get(label))
            if row is not None:
                st.row("gemm_autotune", row)
        del p


def body(st: Stage) -> None:
    why = missing("kernels.gemm", "gemm", "gemm_with", "KERNELS", "kernel_for")
    if why:
        st.note(f"skipped: {why}")
        st.finish("skipped")
        return
    from kernels import gemm as kg
    torch = torch_mod()
    cublas_ms: dict[str, float] = {}
    st.put("gemm_promoted", getattr(kg, "PROMOTED", "?"))
    st.put("gemm_square_max", max(s[1] for s in shapes() if s[0].startswith("sq")))
    st.put("gemm_kernels", len(kg.KERNELS))

    # 1. promoted kernel vs cuBLAS on every shape
    for label, m, n, k, ta, tb, _ in shapes():
        if st.time_left() < 8:
            st.note(f"{label}: skipped (stage time budget)")
            continue
        p = st.guard(f"{label} operands", Problem, label, m, n, k, ta, tb)
        if p is None:
            continue
        tc = st.guard(f"{label} cublas", measure_cublas, p)
        if tc is None:
            continue
        cublas_ms[label] = tc["ms"]
        row = st.guard(f"{label} gemm()", measure_kernel, p, None, REPS, tc["ms"])
        del p
        if row is None:
            continue
        if row.get("status") != "ok":
            st.note(f"{label} {row['kernel']}: validation failed, rel_err={row['rel_err']:.3e}: not timed")
        row["cublas_ms"] = tc["ms"]
        row["cublas_gflops"] = 2.0 * m * n * k / tc["ms"] / 1e6
        st.row("gemm_vs_cublas", row)
        log(f"gemm {label:12s} M={m} N={n} K={k}: ours {row.get('gflops', float('nan')):8.0f} GFLOP/s "
            f"cuBLAS {row['cublas_gflops']:8.0f} GFLOP/s ({row.get('pct_cublas', float('nan')):.0f}%) "
            f"err {row['rel_err']:.1e}")
        key = label[2:] if label.startswith("sq") else label
        if "gflops" in row:
            st.put(f"sgemm_{key}_gflops", round(row["gflops"], 1))
        st.put(f"cublas_{key}_gflops", round(row["cublas_gflops"], 1))
    if not DRY:
        torch.cuda.empty_cache()

    # 2. autotune table: every kernel x the sweep shapes
    sweep = sweep_shapes()
    names = list(kg.KERNELS)
    if st.time_left() < 15:
        st.note("autotune: skipped (stage time budget)")
        return
    try:
        if SWEEP_WORKERS > 1:
            _sweep_parallel(st, names, sweep, cublas_ms)
        else:
            _sweep_serial(st, names, sweep, cublas_ms)
    except (OSError, RuntimeError, ImportError) as e:
        st.note(f"autotune: worker processes failed ({type(e).__name__}: {e}); serial sweep")
        _sweep_serial(st, names, sweep, cublas_ms)

    rows = st.data["tables"].get("gemm_autotune", [])
    for label, m, n, k, _, _, _ in sweep:
        timed = [r for r in rows if r["shape"] == label and "gflops" in r]
        if not timed:
            continue
        b = max(timed, key=lambda r: r["gflops"])
        chosen = kg.kernel_for(m, n, k)
        chosen_row = next((r for r in timed if r["kernel"] == chosen), None)
        st.row("gemm_best", {"shape": label, "M": m, "N": n, "K": k, "best_kernel": b["kernel"],
                             "best_gflops": b["gflops"], "pct_cublas": b.get("pct_cublas"),
                             "select_config_kernel": chosen,
                             "select_config_gflops": chosen_row["gflops"] if chosen_row else None,
                             "kernels_timed": len(timed)})
        log(f"autotune {label}: best {b['kernel']} {b['gflops']:.0f} GFLOP/s of {len(timed)} timed; "
            f"select_config -> {chosen}")
        if label.startswith("sq"):
            st.put(f"sgemm_{label[2:]}_best_gflops", round(b["gflops"], 1))
            st.put(f"sgemm_{label[2:]}_best_kernel", b["kernel"])


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("gemm"), body))
