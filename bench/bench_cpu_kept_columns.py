"""CPU benchmark: a training step with convolution columns kept from forward to backward
(``ConvCache``, the default) against the same step recomputing them (budget 0), same net, same
data, same machine, alternating the two so load changes hit both.

Two Solvers over the same synthetic net (``bench/netprep.py``: the prototxt with an Input layer of
random data): the first arms its caches at its first step; then the backend's budget is set to 0,
so the second never keeps anything. Medians of ``--reps`` alternating ``solver.step(1)`` calls.

    env -u OPENBLAS_CORETYPE NBCAFFE_CPU_THREADS=1 python bench/bench_cpu_kept_columns.py \\
        --net lenet --batch 64 --reps 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_cpu_train import cpu_model, fed_solver, feed, our_solver  # noqa: E402


def armed(solver) -> int:
    """How many of the net's convolution inputs keep their columns."""
    return sum(c.armed for layer in solver.net.layers for c in (getattr(layer, "_col_caches", None) or []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="lenet")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    from bench.netprep import synthetic_param
    from runner.backend import get_backend
    be = get_backend("cpu")
    param = synthetic_param(args.net, args.batch)
    kept, data, label = fed_solver(param, 1)
    kept.step(1)                         # arms its caches
    budget, be.keep_columns_bytes = be.keep_columns_bytes, 0
    try:
        recompute = our_solver(param)    # cannot arm: im2col runs again in every backward
        feed(recompute.net, data, label)
        recompute.step(1)
        times: dict[str, list[float]] = {"kept": [], "recompute": []}
        for _ in range(args.reps):
            for key, s in (("kept", kept), ("recompute", recompute)):
                t0 = time.perf_counter()
                s.step(1)
                times[key].append((time.perf_counter() - t0) * 1e3)
    finally:
        be.keep_columns_bytes = budget
    k, r = statistics.median(times["kept"]), statistics.median(times["recompute"])
    print(f"{cpu_model()}, {args.net} batch {args.batch}, {args.reps} alternating steps: "
          f"kept columns {k:.1f} ms ({armed(kept)} inputs kept), recomputed {r:.1f} ms "
          f"({armed(recompute)} kept); ratio {k / r:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
