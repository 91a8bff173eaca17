"""Stage ``time``: ``nbcaffe time`` on AlexNet exactly as a user runs it (issue 17's last target).

1. ``nbcaffe time -model <AlexNet> --device cuda -iterations N``: Caffe's per-layer benchmark block
   (every layer synchronised) and the replayed forward-backward line; the stage keeps
   ``time_alexnet_cuda_fb_ms`` (Caffe's "Average Forward-Backward") and
   ``time_alexnet_cuda_fb_replay_ms`` (the line "with replayed launches (as training runs)").
2. ``nbcaffe time -model <AlexNet> --compare cpu,cuda --batch 64,128,256 -iterations M``: the
   CPU-vs-GPU table, a row per batch as the command prints it (table ``time_compare``; scalars
   ``time_alexnet_b<B>_cpu_ms``, ``_cuda_ms``, ``_speedup`` and the seconds for 20 iterations,
   ``time_alexnet_b<B>_cpu_s20`` / ``_cuda_s20``, the unit of Caffe's published table: CPU
   64/124/257 s, K40 7.5/14.5/28.5 s at batch 64/128/256).

The net is Caffe's ``bvlc_alexnet/train_val.prototxt`` with its Data layers replaced by an Input
layer (``bench/netprep.py``; the machine has no LMDB), TRAIN phase (dropout on, as Caffe's timing).
Both commands run in this process through ``runner.cli.main`` (the same argument parsing and output
as the ``nbcaffe`` executable) after ``enable_kernel_cache``, so the kernels the earlier stages
compiled load from Numba's disk cache instead of compiling again; their output is copied to the
stage log line by line and parsed as it comes, so a stage stopped by its timeout keeps the rows
already printed.

The cpu backend gets every core of the machine (``NBCAFFE_CPU_THREADS`` = ``os.cpu_count()``
unless set): the CPU column is our numpy/OpenBLAS backend on the GPU machine's cores, recorded as
``time_cpu_threads`` and ``time_cpu_model``. Iterations: ``NBCAFFE_BENCH_TIME_ITERS`` (per-layer
block, default 10) and ``NBCAFFE_BENCH_TIME_COMPARE_ITERS`` (default 2: a batch-256 CPU iteration
takes seconds). The dry run uses the shrunken LeNet (batch 2; ``--compare`` at batch 1 and 2): the
command's code path is the same for any net, and AlexNet in the simulator takes minutes per pass.

Run: ``python -m bench.bench_time``.
"""
from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import sys
from collections.abc import Callable
from typing import Any

from bench.common import DRY, WORK, Stage, enable_kernel_cache, log, main_guard, size

NET = size("alexnet", "lenet")
BATCH = size(256, 2)                         # the per-layer block's batch
COMPARE_BATCHES = size("64,128,256", "1,2")   # the dry run: two rows, to see them streamed
ITERS = int(os.environ.get("NBCAFFE_BENCH_TIME_ITERS", size(10, 1)))
COMPARE_ITERS = int(os.environ.get("NBCAFFE_BENCH_TIME_COMPARE_ITERS", size(2, 1)))

_FB = re.compile(r"Average Forward-Backward: ([0-9.eE+-]+) ms")
_FB_REPLAY = re.compile(r"Average Forward-Backward with replayed launches[^:]*: ([0-9.eE+-]+) ms")


class _Lines(io.TextIOBase):
    """A text stream that copies everything to ``sink`` and calls ``on_line`` with each complete
    line as it is written (the CLI's output parsed while the command runs)."""

    def __init__(self, sink: Any, on_line: Callable[[str], None]):
        self.sink, self.on_line, self.pending = sink, on_line, ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.sink.write(s)
        self.pending += s
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.on_line(line)
        return len(s)

    def flush(self) -> None:
        self.sink.flush()


def _cli(argv: list[str], on_line: Callable[[str], None]) -> int:
    """``nbcaffe`` with ``argv`` in this process; stdout and stderr (the glog lines) go to the
    stage log and, line by line, to ``on_line``."""
    from runner.cli import main
    log("$ nbcaffe " + " ".join(argv))
    out = _Lines(sys.stdout, on_line)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(argv)
    sys.stdout.flush()
    return rc


def per_layer(st: Stage, model: str) -> None:
    """Caffe's per-layer block on cuda; the forward-backward lines kept as scalars."""
    def on_line(line: str) -> None:
        m = _FB_REPLAY.search(line)
        if m:
            st.put(f"time_{NET}_cuda_fb_replay_ms", float(m.group(1)))
            return
        m = _FB.search(line)
        if m:
            st.put(f"time_{NET}_cuda_fb_ms", float(m.group(1)))

    rc = _cli(["time", "-model", model, "--device", "cuda", "-iterations", str(ITERS)], on_line)
    if rc != 0:
        st.note(f"nbcaffe time --device cuda: exit code {rc}")


def compare(st: Stage, model: str) -> None:
    """The CPU-vs-GPU table, each row recorded as the command prints it."""
    header: list[str] = []

    def on_line(line: str) -> None:
        cells = line.split("\t")
        if cells[0] == "batch":
            header[:] = cells
            return
        if not header or len(cells) != len(header) or not cells[0].isdigit():
            return
        row: dict[str, Any] = dict(zip(header, cells))
        for k, v in row.items():
            try:
                row[k] = int(v) if k == "batch" else float(v.rstrip("x"))
            except ValueError:
                pass
        st.row("time_compare", row)
        b = cells[0]
        for d in ("cpu", "cuda"):
            if f"{d} ms" in row:
                st.put(f"time_{NET}_b{b}_{d}_ms", row[f"{d} ms"])
            key = next((k for k in row if k.startswith(f"{d} s/")), None)
            if key:
                st.put(f"time_{NET}_b{b}_{d}_s20", row[key])
        speed = next((v for k, v in row.items() if k.startswith("speed-up")), None)
        if speed is not None:
            st.put(f"time_{NET}_b{b}_speedup", speed)

    rc = _cli(["time", "-model", model, "--compare", "cpu,cuda", "--batch", COMPARE_BATCHES,
               "-iterations", str(COMPARE_ITERS)], on_line)
    if rc != 0:
        st.note(f"nbcaffe time --compare: exit code {rc}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def body(st: Stage) -> None:
    from bench.netprep import synthetic_net
    if not DRY:
        os.environ.setdefault("NBCAFFE_CPU_THREADS", str(os.cpu_count() or 1))
    st.put("time_cpu_threads", int(os.environ.get("NBCAFFE_CPU_THREADS", "1")))
    st.put("time_cpu_model", _cpu_model())
    st.put("time_kernel_cache", enable_kernel_cache())
    st.put("time_net", NET)
    st.put("time_iterations", ITERS)
    st.put("time_compare_iterations", COMPARE_ITERS)
    model = str(synthetic_net(NET, BATCH, directory=str(WORK), shrink=DRY))
    st.guard("nbcaffe time --device cuda", per_layer, st, model)
    if st.time_left() < 20:
        st.note("nbcaffe time --compare: skipped (stage time budget)")
        return
    st.guard("nbcaffe time --compare", compare, st, model)


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("time"), body))
