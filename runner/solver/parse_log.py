"""Parse a Caffe (or nbcaffe) training log with the regular expressions of Caffe's
tools/extra/parse_log.py: rows of (NumIters, Seconds, LearningRate, <train outputs>) and
(NumIters, Seconds, LearningRate, <test outputs>).

Two deliberate differences from parse_log.py: NumIters is an int (parse_log.py writes 0.0), and
LearningRate is the rate of the row's own iteration. Caffe logs ``Iteration N, lr = X`` after
the train outputs of iteration N, so parse_log.py's column lags one display interval and its
first row is NaN; here each row takes the rate logged for its iteration, else the last one logged
before it.
"""
from __future__ import annotations

import bisect
import datetime
import os
import re

from netdef.errors import DataError

REGEX_ITERATION = re.compile(r"Iteration (\d+)")
REGEX_TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def extract_datetime(line: str, year: int) -> datetime.datetime:
    """Time stamp of a glog line ``I0210 13:39:22.381027 ...`` (raises ValueError if not one)."""
    parts = line.strip().split()
    month, day = int(parts[0][1:3]), int(parts[0][3:5])
    stamp = parts[1]
    pos = stamp.rfind(".")
    h, m, s = (int(x) for x in stamp[:pos].split(":"))
    return datetime.datetime(year, month, day, h, m, s, int(stamp[pos + 1:]))


def parse_log(path: str) -> tuple[list[dict], list[dict]]:
    """Log file -> (train rows, test rows); each row a dict NumIters, Seconds, LearningRate and the
    named outputs (e.g. loss, accuracy), as parse_log.py builds them."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: log file not found")
    year = datetime.datetime.fromtimestamp(os.path.getmtime(path)).year
    train, test = [], []
    train_row = test_row = None
    iteration, lr, start, last = -1, float("nan"), None, None
    lr_at: dict[int, float] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for line in lines:
        if start is None and "Solving" in line:
            try:
                start = last = extract_datetime(line, year)
            except (ValueError, IndexError):
                pass
    if start is None:
        raise DataError(f"{path}: no 'Solving' line: not a Caffe training log")
    for line in lines:
        m = REGEX_ITERATION.search(line)
        if m:
            iteration = int(m.group(1))
        if iteration == -1:
            continue
        try:
            t = extract_datetime(line, year)
        except (ValueError, IndexError):
            continue
        if t.month < last.month:
            year += 1
            t = extract_datetime(line, year)
        last = t
        seconds = (t - start).total_seconds()
        m = REGEX_LEARNING_RATE.search(line)
        if m:
            lr = float(m.group(1))
            lr_at[iteration] = lr
        for regex, rows, kind in ((REGEX_TRAIN_OUTPUT, train, "train"), (REGEX_TEST_OUTPUT, test, "test")):
            m = regex.search(line)
            if not m:
                continue
            row = train_row if kind == "train" else test_row
            if row is None or row["NumIters"] != iteration:
                if row is not None:
                    rows.append(row)
                row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": lr}
            row[m.group(2)] = float(m.group(3))
            if kind == "train":
                train_row = row
            else:
                test_row = row
    if train_row is not None:
        train.append(train_row)
    if test_row is not None:
        test.append(test_row)
    if lr_at:
        known = sorted(lr_at)
        for row in train + test:
            it = row["NumIters"]
            j = bisect.bisect_right(known, it)
            row["LearningRate"] = lr_at[known[j - 1] if j else known[0]]
    return train, test
