"""Soak: SIGKILL a cpu training run at random moments, resume after each kill from the newest
snapshot, and check that the final weights equal an uninterrupted run's, bit for bit.

    PYTHONPATH=. python tools/soak_kill_resume.py [--iters 2000] [--kills 20] [--seed 1] [--out soak.json]

What it does, in a temporary folder:
1. builds a small LMDB (200 records, 1x12x12, 4 classes) and a net with a convolution, pooling,
   Dropout, random crops and mirrors, and a test net; the solver snapshots every 25 iterations
   (so kills often land inside a snapshot);
2. runs ``nbcaffe train`` to ``--iters`` without interruption (the reference);
3. runs it again, killing the process with SIGKILL ``--kills`` times: a quarter of the kills at a
   random time during start-up or restore, the others at random iterations of the run plus a
   random fraction of a second (display every 5 iterations tells where the run is), each time
   resuming with ``-snapshot`` from the newest ``.solverstate`` on disk (the state is written
   after its model, so a state on disk always has its model); then lets the last run finish;
4. compares every parameter blob of the two final ``.caffemodel`` files bitwise.

It prints one JSON line (kills, the iteration each resumed run started from, unfinished ``.tmp``
files seen after kills, whether the weights are equal, wall time) and exits 0 only when the
weights are equal and every resumed run behaved (no traceback). docs/solver.md quotes its last
result.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

NET = """
name: "soak"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 crop_size: 10 mirror: true }
  data_param { source: "db" batch_size: 16 backend: LMDB } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 crop_size: 10 }
  data_param { source: "db" batch_size: 20 backend: LMDB } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool" dropout_param { dropout_ratio: 0.2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """
net: "net.prototxt"
test_iter: 5 test_interval: 250 base_lr: 0.02 momentum: 0.9 weight_decay: 0.0005
lr_policy: "inv" gamma: 0.0001 power: 0.75 display: 5 max_iter: {iters}
snapshot: 25 snapshot_prefix: "{prefix}/soak" random_seed: 11 type: "SGD"
"""


def make_data(folder: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from runner.data.datum import array_to_datum
    from runner.data.db import DBWriter
    rng = np.random.default_rng(0)
    with DBWriter(folder / "db") as w:
        for i in range(200):
            lab = i % 4
            a = np.clip(rng.integers(0, 90, (1, 12, 12)) + lab * 50, 0, 255).astype(np.uint8)
            w.put(b"%08d" % i, array_to_datum(a, lab).SerializeToString())
    (folder / "net.prototxt").write_text(NET)


def train_cmd(solver: str, resume: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "runner", "train", "-solver", solver, "--no-progress"]
    return cmd + (["-snapshot", resume] if resume else [])


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def newest_state(prefix: str) -> tuple[int, str] | None:
    found = []
    for f in glob.glob(prefix + "_iter_*.solverstate"):
        m = re.search(r"_iter_(\d+)\.solverstate$", f)
        if m:
            found.append((int(m.group(1)), f))
    return max(found) if found else None


def last_iteration(log: Path) -> int:
    """The highest 'Iteration N' a train log has reached so far (-1 before any)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return -1
    found = re.findall(r"Iteration (\d+)", text)
    return max(map(int, found)) if found else -1


def weights(path: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from netdef.weights import caffemodel_blobs, read_caffemodel
    return {k: v[1] for k, v in caffemodel_blobs(read_caffemodel(path)).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    ap.add_argument("--out", default=None, help="also write the JSON result here")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="nbcaffe-soak-") as tmp:
        folder = Path(tmp)
        make_data(folder)
        for name in ("ref", "killed"):
            (folder / f"{name}.prototxt").write_text(SOLVER.format(iters=args.iters, prefix=name))
        (folder / "probe.prototxt").write_text(SOLVER.format(iters=0, prefix="probe"))
        t0 = time.time()
        subprocess.run(train_cmd("probe.prototxt", None), cwd=folder, env=env(), capture_output=True)
        startup_s = time.time() - t0
        t0 = time.time()
        ref = subprocess.run(train_cmd("ref.prototxt", None), cwd=folder, env=env(),
                             capture_output=True, text=True)
        run_s = time.time() - t0
        if ref.returncode != 0:
            print(ref.stderr[-2000:], file=sys.stderr)
            return 2
        final = f"_iter_{args.iters}.caffemodel"
        resumed_from, tmp_seen, errors, kill_at = [], [], [], []
        kills = 0
        # kill moments: a quarter during start-up or restore (a random time after launch), the
        # rest at a random iteration of the remaining run plus a random fraction of a second
        targets = sorted(rnd.randrange(1, args.iters) for _ in range(args.kills))
        log = folder / "killed.log"
        for target in targets:
            state = newest_state(str(folder / "killed/soak"))
            start = state[0] if state else 0
            if start >= args.iters:
                break
            resume = os.path.relpath(state[1], folder) if state else None
            resumed_from.append(start)
            if log.exists():
                log.unlink()
            p = subprocess.Popen(train_cmd("killed.prototxt", resume) + ["--log", str(log)],
                                 cwd=folder, env=env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            if rnd.random() < 0.25 or target <= start:
                # before the resumed run trains: at a random time, or as soon as it trains
                deadline = time.time() + rnd.uniform(0.3, startup_s)
                while p.poll() is None and time.time() < deadline and last_iteration(log) <= start:
                    time.sleep(0.02)
                kill_at.append(f"start+{start}")
            else:
                while p.poll() is None and last_iteration(log) < target:
                    time.sleep(0.05)
                time.sleep(rnd.uniform(0, 0.5))
                kill_at.append(str(last_iteration(log)))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            _, err = p.communicate()
            if p.returncode not in (0, -signal.SIGKILL):
                errors.append(err[-600:])
            tmp_seen += [os.path.basename(f) for f in glob.glob(str(folder / "killed/*.tmp"))]
        state = newest_state(str(folder / "killed/soak"))
        if not (state and state[0] >= args.iters):
            resume = os.path.relpath(state[1], folder) if state else None
            resumed_from.append(state[0] if state else 0)
            last = subprocess.run(train_cmd("killed.prototxt", resume), cwd=folder, env=env(),
                                  capture_output=True, text=True)
            if last.returncode != 0:
                errors.append(last.stderr[-600:])
        a = weights(str(folder / ("ref/soak" + final)))
        b = weights(str(folder / ("killed/soak" + final))) if os.path.exists(
            folder / ("killed/soak" + final)) else {}
        equal = bool(b) and a.keys() == b.keys() and all(
            len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in zip(a[k], b[k])) for k in a)
        result = {"iters": args.iters, "kills": kills, "seed": args.seed,
                  "uninterrupted_run_s": round(run_s, 1),
                  "startup_s": round(startup_s, 1), "resumed_from": resumed_from, "killed_at": kill_at,
                  "tmp_files_seen_after_kills": sorted(set(tmp_seen)),
                  "errors": errors, "weights_equal": equal,
                  "wall_s": round(time.time() - t_start, 1)}
    line = json.dumps(result)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")
    return 0 if equal and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
