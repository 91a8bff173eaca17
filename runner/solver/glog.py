"""glog-style log lines, as Caffe writes them (and as Caffe's tools/extra/parse_log.py reads them):

    I1128 05:30:00.123456  1234 solver.py:218] Iteration 100 (7.2 iter/s, 13.9s/100 iters), loss = 0.2

Severity letter, month+day, wall time with microseconds, the process id right-aligned in 5
columns, ``file:line]`` of the Python line that logged it (glog's tag names the source that
wrote the line; Caffe's log tools match the message text, not the tag), the message. Lines go to
stderr (like glog) and to an optional log file. Numbers are formatted like C++ ``ostream <<``
with its default precision (``%g``, 6 digits).
"""
from __future__ import annotations

import datetime
import os
import sys
from typing import TextIO


def _caller(depth: int) -> str:
    """``file:line`` of the frame ``depth`` levels above the caller of this function."""
    f = sys._getframe(depth + 1)
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


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

    def line(self, msg: str, where: str, severity: str = "I") -> str:
        """Format one log line (without writing it); ``where`` is the ``file:line`` tag."""
        now = datetime.datetime.now()
        return f"{severity}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {self.pid:5d} {where}] {msg}"

    def __call__(self, msg: str, severity: str = "I", depth: int = 1) -> None:
        """Write one line (``msg`` may hold several lines: each gets the prefix), tagged with the
        ``file:line`` of the code ``depth`` frames up (1: whoever called this)."""
        where = _caller(depth)
        for part in str(msg).split("\n"):
            text = self.line(part, where, severity)
            if not self.quiet:
                if self.write is not None:
                    self.write(text)
                else:
                    print(text, file=self.stream, flush=True)
            if self.file:
                self.file.write(text + "\n")
                self.file.flush()

    def warning(self, msg: str) -> None:
        """A ``W`` line, tagged with the caller's file and line."""
        self(msg, "W", depth=2)

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
