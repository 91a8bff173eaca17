"""Shared by the fuzz tests (tests/netdef/test_fuzz.py) and their LMDB worker process
(tests/netdef/fuzz_lmdb_worker.py): example counts, byte mutations, outcome tallies.

``NBCAFFE_FUZZ_EXAMPLES=N`` sets every fuzz test's example count (the CI defaults keep the whole
suite near a minute on 2 cores); ``NBCAFFE_FUZZ_REPORT=path.json`` writes the tally of outcomes
(inputs tried, valid, each CaffeError class) when the tests end, for the figures in
docs/netdef.md.
"""
from __future__ import annotations

import json
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from netdef.errors import CaffeError

OUTCOMES: Counter = Counter()


def examples(default: int) -> int:
    """The example count: NBCAFFE_FUZZ_EXAMPLES when set, else the CI default."""
    return int(os.environ.get("NBCAFFE_FUZZ_EXAMPLES") or default)


def fuzz_settings(default: int):
    """Seeded (derandomized), no deadline, no example database: the same inputs every run."""
    return settings(max_examples=examples(default), derandomize=True, deadline=None, database=None,
                    print_blob=True, suppress_health_check=list(HealthCheck))


def record(kind: str, fn) -> None:
    """Run ``fn``; tally 'valid' or the CaffeError subclass it raised. Anything else propagates
    (and fails the test): the only outcomes allowed are a valid result or a CaffeError."""
    try:
        fn()
    except CaffeError as e:
        OUTCOMES[(kind, type(e).__name__)] += 1
        return
    OUTCOMES[(kind, "valid")] += 1


def mutate_bytes(data: bytes, draw) -> bytes:
    """One damage a disk, a copy or a hand edit can do to a binary file: flip bits, overwrite
    bytes, cut it short, cut a piece out, repeat a piece, or insert junk."""
    n = len(data)
    op = draw(st.sampled_from(["flip", "set", "truncate", "cut", "repeat", "insert"]))
    i = draw(st.integers(0, max(n - 1, 0)))
    b = bytearray(data)
    if op == "flip" and n:
        for _ in range(draw(st.integers(1, 8))):
            j = draw(st.integers(0, n - 1))
            b[j] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if op == "set" and n:
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, n - 1))] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        return bytes(b)
    if op == "truncate":
        return data[:i]
    if op == "cut":
        j = draw(st.integers(i, min(n, i + 256)))
        return data[:i] + data[j:]
    if op == "repeat":
        j = draw(st.integers(i, min(n, i + 256)))
        return data[:j] + data[i:j] + data[j:]
    junk = draw(st.binary(min_size=1, max_size=64))
    return data[:i] + junk + data[i:]


def write_report() -> None:
    """Merge this process's tally into NBCAFFE_FUZZ_REPORT (when set)."""
    path = os.environ.get("NBCAFFE_FUZZ_REPORT")
    if not path or not OUTCOMES:
        return
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    for (kind, outcome), n in OUTCOMES.items():
        old.setdefault(kind, {})
        old[kind][outcome] = old[kind].get(outcome, 0) + n
    with open(path + ".tmp", "w") as f:
        json.dump(old, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    OUTCOMES.clear()
