"""``nbcaffe plot-log LOG [LOG ...] -o out.png [--x iters|seconds] [--chart N] [--csv PREFIX]``:
training curves from Caffe/nbcaffe logs (parsed with Caffe's parse_log.py regexes,
runner.solver.parse_log); also Caffe's own form ``plot-log N out.png LOG [LOG ...]``
(tools/extra/plot_training_log.py: chart type, image, logs).

Default figure: losses on one panel (every train and test output whose name contains "loss"),
accuracies on a panel of their own (outputs containing "acc", axis 0..1 when they fit), any other
outputs on a third; against iterations (integer ticks) or seconds (``--x seconds``). Every series
has its own colour and marker and a legend entry (with several logs the log's name is in it), so
a log with one display point still shows.

``--chart N`` draws one of plot_training_log.py's charts, one line per log:
0 test accuracy vs iters, 1 test accuracy vs seconds, 2 test loss vs iters, 3 test loss vs
seconds, 4 train learning rate vs iters, 5 train learning rate vs seconds, 6 train loss vs iters,
7 train loss vs seconds.

``--csv PREFIX`` writes PREFIX.train.csv and PREFIX.test.csv like parse_log.py (integer
iterations; each row's own learning rate). PNG drawing needs matplotlib (the ``plot`` extra);
``--csv`` works without it.
"""
from __future__ import annotations

import argparse
import csv
import os

CHARTS = {0: ("test", "acc", "iters"), 1: ("test", "acc", "seconds"),
          2: ("test", "loss", "iters"), 3: ("test", "loss", "seconds"),
          4: ("train", "lr", "iters"), 5: ("train", "lr", "seconds"),
          6: ("train", "loss", "iters"), 7: ("train", "loss", "seconds")}
FIELD_TITLE = {"acc": "accuracy", "loss": "loss", "lr": "learning rate"}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
IMAGE_EXTS = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("logs", nargs="+", metavar="LOG",
                   help="training log(s) (stderr of nbcaffe/caffe train); or Caffe's form: "
                        "CHART_TYPE OUT.png LOG [LOG ...]")
    p.add_argument("-o", "--output", default=None, help="image to write (.png, .svg, .pdf)")
    p.add_argument("--x", default="iters", choices=("iters", "seconds"), help="x axis")
    p.add_argument("--chart", type=int, default=None, choices=sorted(CHARTS),
                   help="one of plot_training_log.py's chart types 0-7 (see the module help)")
    p.add_argument("--csv", default=None, help="also write PREFIX.train.csv and PREFIX.test.csv")


def _write_csv(path: str, rows: list[dict]) -> None:
    from netdef.weights import atomic_file
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    atomic_file(path, write)


def _caffe_form(args) -> None:
    """``plot-log N out.png LOG ...`` (plot_training_log.py's argument order) -> --chart/-o."""
    from netdef.errors import CaffeError
    logs = args.logs
    if (len(logs) >= 3 and logs[0].isdigit() and logs[1].lower().endswith(IMAGE_EXTS)
            and not os.path.isfile(logs[0])):
        if int(logs[0]) not in CHARTS:
            raise CaffeError(f"plot-log: chart type {logs[0]} is not one of 0-7")
        if args.output or args.chart is not None:
            raise CaffeError("plot-log: give either CHART_TYPE OUT LOG... or -o/--chart")
        args.chart, args.output, args.logs = int(logs[0]), logs[1], logs[2:]


def _series_kind(name: str) -> str:
    low = name.lower()
    return "loss" if "loss" in low else "acc" if "acc" in low else "other"


def run(args) -> int:
    from netdef.errors import CaffeError
    from runner.solver.parse_log import parse_log
    _caffe_form(args)
    parsed = [(path, *parse_log(path)) for path in args.logs]
    if args.csv:
        if len(parsed) > 1:
            raise CaffeError("plot-log: --csv takes one log")
        _write_csv(args.csv + ".train.csv", parsed[0][1])
        _write_csv(args.csv + ".test.csv", parsed[0][2])
    if not args.output:
        if not args.csv:
            raise CaffeError("plot-log: give -o out.png (and/or --csv PREFIX)")
        return 0
    if not args.output.lower().endswith(IMAGE_EXTS):
        raise CaffeError(f"plot-log: {args.output}: the image must end in "
                         f"{', '.join(IMAGE_EXTS)}")
    fig = build_figure(parsed, args.chart, args.x)
    from netdef.weights import atomic_file
    fmt = os.path.splitext(args.output)[1].lstrip(".").lower()
    atomic_file(args.output, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
    import matplotlib.pyplot as plt
    plt.close(fig)
    print(f"wrote {args.output}")
    return 0


def build_figure(parsed: list[tuple[str, list[dict], list[dict]]], chart: int | None = None,
                 xaxis_arg: str = "iters"):
    """The matplotlib Figure for parsed logs [(path, train rows, test rows)]: Caffe's chart type
    ``chart`` (0-7), or the default panels (see the module docstring)."""
    from netdef.errors import CaffeError
    logs = [p for p, _, _ in parsed]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise CaffeError("plot-log needs matplotlib: pip install 'nbcaffe[plot]' (or pip install "
                         "matplotlib); --csv PREFIX works without it") from None
    several = len(parsed) > 1
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    style = iter(range(10**6))

    def plot(ax, rows, key, xkey, label):
        pts = [(r[xkey], r[key]) for r in rows if key in r]
        k = next(style)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=MARKERS[k % len(MARKERS)],
                markersize=4, linestyle="--" if label.startswith("test") or ": test" in label else "-",
                color=colours[k % len(colours)], label=label)

    if chart is not None:
        phase, field, xaxis = CHARTS[chart]
        xkey = "NumIters" if xaxis == "iters" else "Seconds"
        fig, ax = plt.subplots(figsize=(9, 5))
        drawn = 0
        for path, train, test in parsed:
            rows = train if phase == "train" else test
            names = ["LearningRate"] if field == "lr" else sorted(
                {k for r in rows for k in r} - {"NumIters", "Seconds", "LearningRate"})
            for n in names:
                if field != "lr" and _series_kind(n) != field:
                    continue
                label = os.path.basename(path) + ("" if field == "lr" or len(names) == 1 else f" {n}")
                plot(ax, rows, n, xkey, label)
                drawn += 1
        if not drawn:
            raise CaffeError(f"plot-log: no {phase} {FIELD_TITLE[field]} in "
                             f"{', '.join(logs)}")
        title = f"{phase.capitalize()} {FIELD_TITLE[field]}"
        ax.set_xlabel("Iters" if xaxis == "iters" else "Seconds")
        ax.set_ylabel(title)
        ax.set_title(f"{title} vs. {'Iters' if xaxis == 'iters' else 'Seconds'}")
        axes = [ax]
    else:
        xkey = "NumIters" if xaxis_arg == "iters" else "Seconds"
        series: dict[str, list] = {"loss": [], "acc": [], "other": []}
        for path, train, test in parsed:
            prefix = f"{os.path.basename(path)}: " if several else ""
            for phase, rows in (("train", train), ("test", test)):
                for n in sorted({k for r in rows for k in r} - {"NumIters", "Seconds", "LearningRate"}):
                    series[_series_kind(n)].append((rows, n, f"{prefix}{phase} {n}"))
        panels = [k for k in ("loss", "acc", "other") if series[k]]
        if not panels:
            raise CaffeError(f"plot-log: {', '.join(logs)}: no train or test outputs to plot")
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels) + 0.8), sharex=True,
                                 squeeze=False)
        axes = [a[0] for a in axes]
        for ax, kind in zip(axes, panels):
            for rows, n, label in series[kind]:
                plot(ax, rows, n, xkey, label)
            ax.set_ylabel({"loss": "loss", "acc": "accuracy", "other": "output"}[kind])
            if kind == "acc":
                lo = min(r[n] for rows, n, _ in series[kind] for r in rows if n in r)
                hi = max(r[n] for rows, n, _ in series[kind] for r in rows if n in r)
                if 0 <= lo and hi <= 1:
                    ax.set_ylim(-0.02, 1.02)
        axes[-1].set_xlabel("iterations" if xaxis_arg == "iters" else "seconds")
        axes[0].set_title(", ".join(os.path.basename(p) for p in logs))
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        if xkey == "NumIters":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
