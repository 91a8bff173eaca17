"""``nbcaffe plot-log LOG -o out.png [--x iters|seconds]``: parse a Caffe/nbcaffe training log with
Caffe's parse_log.py regexes and plot training loss and test outputs (needs matplotlib: the
``plot`` extra, ``pip install nbcaffe[plot]``). ``--csv PREFIX`` also writes PREFIX.train.csv /
PREFIX.test.csv like parse_log.py."""
from __future__ import annotations

import argparse
import csv
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", help="training log (stderr of nbcaffe/caffe train)")
    p.add_argument("-o", "--output", default=None, help="PNG to write")
    p.add_argument("--x", default="iters", choices=("iters", "seconds"), help="x axis")
    p.add_argument("--csv", default=None, help="also write PREFIX.train.csv and PREFIX.test.csv")


def _write_csv(path: str, rows: list[dict]) -> None:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def run(args) -> int:
    from netdef.errors import CaffeError
    from runner.solver.parse_log import parse_log
    train, test = parse_log(args.log)
    if args.csv:
        _write_csv(args.csv + ".train.csv", train)
        _write_csv(args.csv + ".test.csv", test)
    if not args.output:
        if not args.csv:
            raise CaffeError("plot-log: give -o out.png (and/or --csv PREFIX)")
        return 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CaffeError("plot-log needs matplotlib: pip install 'nbcaffe[plot]' (or pip install "
                         "matplotlib); --csv PREFIX works without it") from None
    xkey = "NumIters" if args.x == "iters" else "Seconds"
    fig, ax = plt.subplots(figsize=(8, 5))
    names = sorted({k for r in train for k in r} - {"NumIters", "Seconds", "LearningRate"})
    for n in names:
        pts = [(r[xkey], r[n]) for r in train if n in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"train {n}")
    ax.set_xlabel("iterations" if args.x == "iters" else "seconds")
    ax.set_ylabel("train output")
    tnames = sorted({k for r in test for k in r} - {"NumIters", "Seconds", "LearningRate"})
    if tnames:
        ax2 = ax.twinx()
        for n in tnames:
            pts = [(r[xkey], r[n]) for r in test if n in r]
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], "--o", markersize=3, label=f"test {n}")
        ax2.set_ylabel("test output")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="center right")
    else:
        ax.legend()
    ax.set_title(os.path.basename(args.log))
    tmp = args.output + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}")
    return 0
