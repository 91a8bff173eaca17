"""``nbcaffe test -model M -weights W [-iterations 50] [-gpu 0]``: Caffe's ``caffe test``. Runs the
net forward ``iterations`` times (phase TEST unless --phase), logs ``Batch k, name = v`` for every
output element, then ``Loss: L`` and each output's mean ``name = v (* w = v*w loss)``."""
from __future__ import annotations

import argparse

import numpy as np

from runner.commands._common import add_device_flags, add_state_flags, make_log, resolve_device, stages_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="net prototxt")
    p.add_argument("--weights", required=True, help="comma-separated .caffemodel files to score")
    p.add_argument("--iterations", type=int, default=50, help="batches to run (default 50)")
    p.add_argument("--phase", default="TEST", choices=("TRAIN", "TEST"), type=str.upper)
    add_device_flags(p)
    add_state_flags(p)
    p.add_argument("--log", default=None, help="also append the log lines to this file")


def score(model: str, weights: list[str], iterations: int, phase: str = "TEST", device: str = "cpu",
          stages: tuple[str, ...] = (), level: int = 0, log=None,
          precision: str | None = None) -> dict[str, np.ndarray]:
    """Caffe's test(): returns {output name: mean over batches} (and logs like Caffe: the Net's
    set-up lines, then the batches). A weights file that sets no layer of the net is an error."""
    from runner.net import Net
    from runner.solver.glog import fmt

    net = Net(model, phase, device=device, stages=stages, level=level, log=log, precision=precision)
    log = log or (lambda *a, **k: None)
    try:
        for w in weights:
            net.copy_from(w, require_match=True)
        log(f"Running for {iterations} iterations.")
        lw = net.blob_loss_weights
        sums: dict[str, np.ndarray] = {}
        loss = 0.0
        for i in range(iterations):
            out = net.forward()
            loss += float(net.last_loss)
            for name in net.outputs:
                v = np.asarray(out[name], dtype=np.float64).ravel()
                for x in v:
                    log(f"Batch {i}, {name} = {fmt(np.float32(x))}")
                sums[name] = sums[name] + v if name in sums else v
        loss /= max(iterations, 1)
        log(f"Loss: {fmt(loss)}")
        means = {n: (s / max(iterations, 1)).astype(np.float32) for n, s in sums.items()}
        for name in net.outputs:
            w = lw.get(name, 0.0)
            for x in means[name]:
                extra = f" (* {fmt(w)} = {fmt(np.float32(w) * x)} loss)" if w else ""
                log(f"{name} = {fmt(x)}{extra}")
        return means
    finally:
        net.close()


def run(args) -> int:
    from netdef.errors import CaffeError
    if args.iterations < 1:
        raise CaffeError("--iterations must be >= 1")
    log = make_log(args)
    try:
        score(args.model, [w for w in args.weights.split(",") if w], args.iterations, args.phase,
              resolve_device(args, None, log), stages_of(args), args.level, log,
              args.precision)
    finally:
        log.close()
    return 0
