"""glog-style log lines, as Caffe writes them (and as Caffe's tools/extra/parse_log.py reads them):

    I1128 05:30:00.123456  1234 solver.cpp:218] Iteration 100 (7.2 iter/s, 13.9s/100 iters), loss = 0.2

Severity letter, month+day, wall time with microseconds, the process id right-aligned in 5
columns, ``file:line]``, the message. Lines go to stderr (like glog) and to an optional log file.
Numbers are formatted like C++ ``ostream <<`` with its default precision (``%g``, 6 digits).
"""
from __future__ import annotations

import datetime
import os
import sys
from typing import TextIO


def fmt(x) -> str:
    """A number as ``std::ostream << float`` prints it (6 significant digits, %g style)."""
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


class GLog:
    """Writes glog-formatted lines to ``stream`` (default stderr) and an optional file."""

    def __init__(self, stream: TextIO | None = None, path: str | None = None, quiet: bool = False):
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.file = open(path, "a", encoding="utf-8") if path else None
        self.pid = os.getpid()
        self.write = None   # optional callable(text) replacing the print to ``stream`` (tqdm.write)

    def line(self, msg: str, src: str = "solver.cpp", lineno: int = 0, severity: str = "I") -> str:
        """Format one log line (without writing it)."""
        now = datetime.datetime.now()
        return (f"{severity}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {self.pid:5d} "
                f"{src}:{lineno}] {msg}")

    def __call__(self, msg: str, src: str = "solver.cpp", lineno: int = 0, severity: str = "I") -> None:
        """Write one line (``msg`` may hold several lines: each gets the prefix)."""
        for part in str(msg).split("\n"):
            text = self.line(part, src, lineno, severity)
            if not self.quiet:
                if self.write is not None:
                    self.write(text)
                else:
                    print(text, file=self.stream, flush=True)
            if self.file:
                self.file.write(text + "\n")
                self.file.flush()

    def warning(self, msg: str, src: str = "solver.cpp", lineno: int = 0) -> None:
        self(msg, src, lineno, "W")

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
