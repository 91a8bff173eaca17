"""The SASS of GEMM v9's fast path stays shorter than v7's (tools/sass_report.py, no GPU needed).

v9 exists to cut the global->shared staging of every K-tile (flat offsets advanced by one add
instead of ``row * pitch + column`` with transposition selects per load). Counted in the machine
code ptxas emits for sm_90: one pass of the 128-bit fast path of the 128x128x8 main loop. Needs
nvdisasm (the ``nvidia-cuda-nvdisasm`` wheel, in the ``test`` extra); runs in a subprocess without
the CUDA simulator, like tests/test_ptx.py.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fast_paths(*names: str) -> dict[str, tuple[int, int]]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "sass_report.py"), "gemm", *names,
                           "--fast-path"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if "nvdisasm not found" in proc.stdout + proc.stderr:
        pytest.skip("nvdisasm is not installed (pip install nvidia-cuda-nvdisasm)")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out: dict[str, tuple[int, int]] = {}
    current = None
    for line in proc.stdout.splitlines():
        m = re.match(r"(gemm_\w+): ", line)
        if m:
            current = m.group(1)
        m = re.search(r"fast path, one pass: (\d+) instructions, (\d+) FFMA", line)
        if m and current:
            out[current] = (int(m.group(1)), int(m.group(2)))
    return out


def test_v9_fast_path_issues_fewer_instructions_than_v7():
    got = _fast_paths("gemm_v7_128_128_8", "gemm_v9_128_128_8")
    (n7, f7), (n9, f9) = got["gemm_v7_128_128_8"], got["gemm_v9_128_128_8"]
    assert f7 == f9 == 512                  # one K-tile: 128x128 outputs x 8 k / 256 threads
    assert n9 <= n7 - 10, (n7, n9)          # BENCHMARKS.md: 620 -> 605
    assert f9 / n9 >= 0.84, (n9, f9)
