"""The SASS of the tensor-core GEMM's fast path (one interior K-tile of a warp), counted with
nvdisasm on the sm_90 cubin, no GPU needed: v2 must issue its 32 ``HMMA.1688.F32.TF32`` and 12
``LDSM`` (4 + 2 ldmatrix per k-step, 2 k-steps) within a bounded number of instructions, and fewer
than v1 (scalar fragment loads, 2-D addressing). BENCHMARKS.md's prediction for issue 18 rests on
these counts (227 and 302 when written).

The path: the K-tile loop (the backward branch whose body holds the HMMAs) walked from its head,
falling through every conditional branch and following every unconditional one, to the backward
branch: conversion and shared stores, the barrier, the whole-K-tile loads of an interior block
(the not-taken side of the bounds test; in v1 also one side of its transposition branches), the
mma steps. Compiled in a subprocess without the CUDA simulator (this file run as a script), as
tests/test_sass.py does.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fast_path(name: str) -> dict[str, int]:
    """Counts of one fast-path K-tile of kernels.gemm_tc kernel ``name`` (first signature)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import kernel_report as kr
    import sass_report as sr

    from kernels import gemm_tc as T
    kr._offline_device_functions()
    kernel, sigs = T.KERNELS[name][:2]
    ins, labels = sr.disassemble(sr.cubin(kernel, sigs[0]))
    best = None
    for addr, text in ins:                      # the backward branch whose body has the most HMMA
        m = sr._TARGET.search(text)
        if m and labels.get(m.group(1), addr) < addr:
            lo = labels[m.group(1)]
            n = sum("HMMA" in t for a, t in ins if lo <= a <= addr)
            if best is None or n > best[0]:
                best = (n, lo, addr)
    _, lo, hi = best
    where = {a: k for k, (a, _) in enumerate(ins)}
    path, k = [], where[lo]
    while len(path) < 20000:
        addr, text = ins[k]
        path.append(text)
        if addr == hi:
            break
        m = sr._TARGET.search(text)
        k = where[labels[m.group(1)]] if (m and re.match(r"BRA\b", text)) else k + 1
    return {"instructions": len(path), "hmma": sum("HMMA" in t for t in path),
            "ldsm": sum(t.startswith("LDSM") for t in path), "lds": sum(sr.opcode(t) == "LDS" for t in path),
            "ldg": sum(sr.opcode(t).startswith("LDG") for t in path)}


def _counts(*names: str) -> dict[str, dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, *names], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    if "nvdisasm not found" in proc.stdout + proc.stderr:
        pytest.skip("nvdisasm is not installed (pip install nvidia-cuda-nvdisasm)")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_v2_fast_path_budget():
    got = _counts("gemm_tc_v1_tf32_128_128_16", "gemm_tc_v2_tf32_128_128_16")
    v1, v2 = got["gemm_tc_v1_tf32_128_128_16"], got["gemm_tc_v2_tf32_128_128_16"]
    assert v2["hmma"] == v1["hmma"] == 32, got        # 4 x 4 mma tiles x 2 k-steps per warp
    assert v2["ldsm"] == 12 and v2["lds"] == 0, got   # (4 A + 2 B) ldmatrix.x4 per k-step
    assert v1["lds"] == 48 and v1["ldsm"] == 0, got   # (4 x 4 + 4 x 2) scalar loads per k-step
    assert v2["ldg"] == v1["ldg"] == 16, got          # 128 x 16 words of A and of B / 256 threads
    assert v2["instructions"] <= 240, got             # 227 when written (351 before flat offsets)
    assert v2["instructions"] <= v1["instructions"] - 50, got   # 302 when written


if __name__ == "__main__":
    print(json.dumps({n: fast_path(n) for n in sys.argv[1:]}))
