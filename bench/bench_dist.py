"""CPU scaling of data-parallel training: 2 MPI ranks x 1 thread against 1 rank x 1 thread at the
same per-rank batch (LeNet by default), alternating the two so load changes hit both.

Each run trains ``--steps`` timed iterations after ``--warmup`` (our Solver over the synthetic
net of ``bench/netprep.py``: an Input layer of random data, so no data loading is timed) and
reports images/s over all ranks. The 2-rank run also reports, per iteration, the time spent
starting the gradient exchanges (packing + MPI_Iallreduce), the time spent waiting for them
before the update (what backward did not hide), and the time one blocking MPI_Allreduce of all
the gradients takes alone: hidden share = 1 - wait / blocking.

    env -u OPENBLAS_CORETYPE python bench/bench_dist.py --net lenet --batch 64 --reps 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "NBCAFFE_CPU_THREADS": "1"}


def worker(args: argparse.Namespace) -> None:
    """One rank: time ``args.steps`` iterations; rank 0 prints a JSON line."""
    import numpy as np

    from bench.bench_cpu_train import feed, our_solver
    from bench.netprep import synthetic_param
    s = our_solver(synthetic_param(args.net, args.batch))
    w = s.world
    rng = np.random.default_rng(w.rank)
    shape = s.net.blobs["data"].shape
    feed(s.net, rng.random(shape, dtype=np.float32), rng.integers(0, 10, shape[0]).astype(np.float32))
    s.step(args.warmup)
    r = s.reducer
    if r is not None:
        r.comm_seconds = r.wait_seconds = 0.0
    w.barrier()
    t0 = time.perf_counter()
    s.step(args.steps)
    w.barrier()
    ms = (time.perf_counter() - t0) * 1e3 / args.steps
    out = {"ranks": w.size, "batch": args.batch, "iter_ms": ms,
           "images_per_s": w.size * args.batch / ms * 1e3}
    if r is not None:
        from mpi4py import MPI
        n = sum(p.blob.count for p in s.net.learnable_params)
        buf = np.ones(n, np.float32)
        w.barrier()
        t1 = time.perf_counter()
        for _ in range(args.steps):
            w.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        blocking = (time.perf_counter() - t1) * 1e3 / args.steps
        out.update(start_ms=r.comm_seconds * 1e3 / args.steps, wait_ms=r.wait_seconds * 1e3 / args.steps,
                   blocking_allreduce_ms=blocking, buckets=len(r.buckets), gradient_floats=n,
                   hidden_share=max(0.0, 1.0 - (r.wait_seconds * 1e3 / args.steps) / blocking))
    if w.is_root:
        print(json.dumps(out), flush=True)
    s.close()


def _run(ranks: int, args: argparse.Namespace) -> dict:
    from runner.dist.launch import find_mpiexec
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--net", args.net,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if ranks > 1:
        cmd = [find_mpiexec(), "-n", str(ranks), *cmd]
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(ONE_THREAD, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="lenet")
    ap.add_argument("--batch", type=int, default=64, help="per rank")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5, help="alternating 1-rank / 2-rank runs")
    ap.add_argument("--out", default=None, help="write the runs and medians as JSON here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from bench.bench_cpu_train import cpu_model
    runs: dict[int, list[dict]] = {1: [], 2: []}
    load = []
    for _ in range(args.reps):
        for ranks in (1, 2):
            load.append(os.getloadavg()[0])
            runs[ranks].append(_run(ranks, args))
    med = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    two = runs[2]
    summary = {
        "machine": cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "net": args.net, "batch_per_rank": args.batch, "steps": args.steps, "reps": args.reps,
        "images_per_s_1rank": med[1], "images_per_s_2ranks": med[2], "ratio": med[2] / med[1],
        "start_ms": statistics.median(r["start_ms"] for r in two),
        "wait_ms": statistics.median(r["wait_ms"] for r in two),
        "blocking_allreduce_ms": statistics.median(r["blocking_allreduce_ms"] for r in two),
        "hidden_share": statistics.median(r["hidden_share"] for r in two),
        "iter_ms_1rank": statistics.median(r["iter_ms"] for r in runs[1]),
        "iter_ms_2ranks": statistics.median(r["iter_ms"] for r in two),
        "load_avg_1min_seen": [min(load), max(load)], "runs": runs,
    }
    print(f"{summary['machine']}, {args.net} batch {args.batch}/rank, {args.reps} alternating runs of "
          f"{args.steps} steps: 1 rank {med[1]:.0f} img/s, 2 ranks {med[2]:.0f} img/s, ratio "
          f"{summary['ratio']:.2f}x; per iteration: exchange start {summary['start_ms']:.2f} ms, wait "
          f"{summary['wait_ms']:.2f} ms, blocking all-reduce alone {summary['blocking_allreduce_ms']:.2f} "
          f"ms, hidden {100 * summary['hidden_share']:.0f}%; load {min(load):.1f}-{max(load):.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
