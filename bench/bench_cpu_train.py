"""CPU training benchmark: our cpu backend vs PyTorch (CPU), same nets, same thread count.

One training iteration = Caffe's Solver step: clear diffs, forward, backward, SGD update (momentum
0.9, weight decay 5e-4, lr_mult/decay_mult as in the prototxt). Nets: LeNet (batch 64) and AlexNet
(batch 8 by default: this is a 2-core machine), with the same number of threads on both sides
(``--threads``, default all cores: torch.set_num_threads, our OpenBLAS via NBCAFFE_CPU_THREADS,
numba's threads), Caffe's prototxts from ``bench/nets/`` with the Data
layers replaced by an Input layer of random data (``bench/netprep.py``); the torch side is
``bench/torch_nets.CaffeTorchNet`` built from the same NetParameter (Caffe semantics).

Validation first: with dropout 0 and the same initial weights, one step of each must give the same
loss and the same weight change (relative error printed). Then timing: warm-up iterations, then
``--reps`` timed iterations each, alternating ours and torch (so load changes on a shared machine hit
both), median (and min) in ms, and the ratio ours / torch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_cpu_train.py [--nets lenet,alexnet]
        [--alexnet-batch 8] [--reps 10] [--warmup 2] [--threads N] [--json out.json]

torch is a benchmark-only dependency (``pip install torch``); it is not needed by nbcaffe.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def our_solver(param, lr: float = 0.01):
    """A Solver over ``param`` (a NetParameter with an Input layer), cpu, fixed lr, no tests/logs."""
    import io

    from proto import caffe_pb2 as pb
    from runner.solver.glog import GLog
    from runner.solver.solver import Solver
    sp = pb.SolverParameter(base_lr=lr, momentum=0.9, weight_decay=0.0005, lr_policy="fixed",
                            max_iter=10**9, display=0, snapshot=0, snapshot_after_train=False,
                            random_seed=0)
    sp.net_param.CopyFrom(param)
    return Solver(sp, device="cpu", log=GLog(stream=io.StringIO()))


def feed(net, data: np.ndarray, label: np.ndarray) -> None:
    net.blobs["data"].data = data
    net.blobs["label"].data = label


def fed_solver(param, seed: int):
    """``our_solver(param)`` with random data in [0, 1) and labels 0-9 fed; (solver, data, label)."""
    rng = np.random.default_rng(seed)
    s = our_solver(param)
    shape = s.net.blobs["data"].shape
    data = rng.random(shape, dtype=np.float32)
    label = rng.integers(0, 10, shape[0]).astype(np.float32)
    feed(s.net, data, label)
    return s, data, label


def validate(name: str, batch: int) -> dict:
    """One step on both sides with dropout 0 and shared initial weights: loss and weight change."""
    import torch

    from bench.netprep import synthetic_param
    from bench.torch_nets import CaffeTorchNet, caffe_sgd, train_step
    param = synthetic_param(name, batch, dropout_ratio=0.0)
    s, data, label = fed_solver(param, 0)
    before = {k: [np.array(b.data) for b in v] for k, v in s.net.params.items()}
    model = CaffeTorchNet(param, "TRAIN")
    model.load_from(before)
    opt = caffe_sgd(model, 0.01, 0.9, 0.0005)
    s.step(1)
    ours_loss = float(s.net.last_loss)
    t_loss = float(train_step(model, opt, torch.from_numpy(data), torch.from_numpy(label)).detach())
    worst = 0.0
    with torch.no_grad():
        for lname, mod in model.params_by_layer.items():
            for i, pname in enumerate(("weight", "bias")):
                if not hasattr(mod, pname):
                    continue
                dt = getattr(mod, pname).detach().numpy().reshape(-1) - before[lname][i].reshape(-1)
                do = np.asarray(s.net.params[lname][i].data).reshape(-1) - before[lname][i].reshape(-1)
                err = float(np.linalg.norm(do - dt) / max(np.linalg.norm(dt), 1e-30))
                worst = max(worst, err)
    s.close()
    return {"loss_ours": ours_loss, "loss_torch": t_loss,
            "loss_rel_err": abs(ours_loss - t_loss) / max(abs(t_loss), 1e-30),
            "update_rel_err_worst": worst}


def timed_pair(fa, fb, warmup: int, reps: int) -> tuple[dict, dict]:
    """Time ``fa`` and ``fb`` alternately (a, b, a, b, ...) so that load changes on a shared
    machine hit both sides alike; median and min ms of each."""
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(reps):
        for fn, ts in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    return ({"median_ms": statistics.median(ta), "min_ms": min(ta), "reps": reps},
            {"median_ms": statistics.median(tb), "min_ms": min(tb), "reps": reps})


def bench(name: str, batch: int, warmup: int, reps: int) -> dict:
    import torch

    from bench.netprep import synthetic_param
    from bench.torch_nets import CaffeTorchNet, caffe_sgd, train_step
    param = synthetic_param(name, batch)
    s, data, label = fed_solver(param, 1)
    model = CaffeTorchNet(param, "TRAIN")
    opt = caffe_sgd(model, 0.01, 0.9, 0.0005)
    td, tl = torch.from_numpy(data), torch.from_numpy(label)
    ours, theirs = timed_pair(lambda: s.step(1), lambda: train_step(model, opt, td, tl), warmup, reps)
    s.close()
    return {"net": name, "batch": batch, "ours": ours, "torch": theirs,
            "ratio_ours_over_torch": ours["median_ms"] / theirs["median_ms"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", default="lenet,alexnet")
    ap.add_argument("--lenet-batch", type=int, default=64)
    ap.add_argument("--alexnet-batch", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_cpu_train needs torch (benchmark-only): pip install torch", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    os.environ["NBCAFFE_CPU_THREADS"] = str(args.threads)   # our cpu backend's BLAS threads
    import numba
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
            "torch": torch.__version__, "numpy": np.__version__, "numba": numba.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"# CPU training benchmark: {info['cpu']}, {info['cores']} cores, {args.threads} threads "
          f"each side; torch {info['torch']}, numpy {info['numpy']}, numba {info['numba']}")
    results = []
    for name in [n for n in args.nets.split(",") if n]:
        batch = args.lenet_batch if name == "lenet" else args.alexnet_batch
        if not args.no_validate:
            v = validate(name, min(batch, 4))
            print(f"{name}: validation (batch {min(batch, 4)}, dropout 0): loss ours {v['loss_ours']:.6f} "
                  f"torch {v['loss_torch']:.6f} (rel err {v['loss_rel_err']:.2e}); weight change worst "
                  f"rel err {v['update_rel_err_worst']:.2e}")
            if v["loss_rel_err"] > 1e-3 or v["update_rel_err_worst"] > 1e-2:
                print(f"{name}: VALIDATION FAILED: not timing a net that computes something else")
                results.append({"net": name, "validation": v, "failed": True})
                continue
        r = bench(name, batch, args.warmup, args.reps)
        if not args.no_validate:
            r["validation"] = v
        results.append(r)
        print(f"{name} batch {batch}: ours {r['ours']['median_ms']:.1f} ms/iter (min "
              f"{r['ours']['min_ms']:.1f}), torch {r['torch']['median_ms']:.1f} ms/iter (min "
              f"{r['torch']['min_ms']:.1f}), ours/torch = {r['ratio_ours_over_torch']:.2f}x")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
