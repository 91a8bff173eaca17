"""Instruction mix of a kernel's hottest loop in SASS, without a GPU: what the register/spill
report of ``kernel_report.py`` cannot say (how many issue slots a K-tile of a GEMM spends on
address arithmetic, say).

Each kernel is compiled the way ``kernel_report.py`` compiles it (``compile_ptx`` for sm_90 with
its own launch bounds, linked by nvJitLink), disassembled with ``nvdisasm`` (the
``nvidia-cuda-nvdisasm`` wheel: ``pip install -e ".[sass]"``), and its hottest loop -- the
backward branch whose body holds the most FFMA -- is counted: every instruction of the body, and
the opcodes. For a GEMM main loop with a predicated fast path (v7/v9: the whole-tile 128-bit
loads), ``--fast-path`` also counts what one K-tile of that path issues: the loop head up to the
branch after its last ``LDG.E.128``, plus the multiply region that branch jumps to.

    python tools/sass_report.py gemm gemm_v7_128_128_8 gemm_v9_128_128_8 --fast-path

The counts it gave for v7 and v9 are in BENCHMARKS.md. The SASS shown is for the first signature
of each ``KERNELS`` entry.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?);")
_LABEL = re.compile(r"\.L_x_(\d+):")
_TARGET = re.compile(r"BRA\s+`\(\.L_x_(\d+)\)")


def nvdisasm() -> str:
    """Path of nvdisasm: on PATH, or inside the nvidia-cuda-nvdisasm wheel."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    try:
        import nvidia
        for base in nvidia.__path__:
            for cand in Path(base).glob("*/bin/nvdisasm"):
                return str(cand)
    except ImportError:
        pass
    raise SystemExit("nvdisasm not found: pip install nvidia-cuda-nvdisasm (or put it on PATH)")


def cubin(kernel, sig) -> bytes:
    """sm_90 cubin of one kernel signature (kernel_report's compile options)."""
    import kernel_report as kr
    from cuda.bindings import nvjitlink
    from numba import cuda
    opts = getattr(kernel, "targetoptions", {})
    kw = {k: opts[k] for k in ("fastmath", "launch_bounds", "lineinfo") if opts.get(k)}
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=kr.CC, **kw)
    handle = nvjitlink.create(1, [f"-arch={kr.ARCH}".encode()])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel.ptx")
        nvjitlink.complete(handle)
        buf = bytearray(nvjitlink.get_linked_cubin_size(handle))
        nvjitlink.get_linked_cubin(handle, buf)
        return bytes(buf)
    finally:
        nvjitlink.destroy(handle)


def disassemble(blob: bytes) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(address, instruction) pairs and label -> address of a cubin's SASS."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(blob)
        f.flush()
        text = subprocess.run([nvdisasm(), "-c", f.name], capture_output=True, text=True,
                              check=True).stdout
    ins: list[tuple[int, str]] = []
    labels: dict[str, int] = {}
    pending: str | None = None
    for line in text.splitlines():
        m = _LABEL.match(line.strip())
        if m:
            pending = m.group(1)
            continue
        m = _LINE.search(line)
        if m:
            addr = int(m.group(1), 16)
            ins.append((addr, m.group(2).strip()))
            if pending is not None:
                labels[pending] = addr
                pending = None
    return ins, labels


def _ffma(text: str) -> bool:
    return re.search(r"\bFFMA\b", text) is not None


def opcode(text: str) -> str:
    return re.sub(r"^@!?U?P\w+\s+", "", text).split()[0]


def hottest_loop(ins, labels) -> tuple[int, int]:
    """(first, last) address of the backward branch's body holding the most FFMA."""
    best = (-1, 0, 0)
    for addr, text in ins:
        m = _TARGET.search(text)
        if m and labels.get(m.group(1), addr) < addr:
            lo = labels[m.group(1)]
            n = sum(_ffma(t) for a, t in ins if lo <= a <= addr)
            best = max(best, (n, lo, addr))
    return best[1], best[2]


def fast_path(ins, labels, lo: int, hi: int) -> tuple[int, int] | None:
    """(instructions, FFMA) of one pass through the loop's 128-bit-load fast path, or None."""
    body = [(a, t) for a, t in ins if lo <= a <= hi]
    wide = [k for k, (_, t) in enumerate(body) if "LDG.E.128" in t]
    if not wide:
        return None
    j = next((k for k in range(wide[-1], len(body)) if "BRA" in body[k][1]), None)
    m = None if j is None else _TARGET.search(body[j][1])
    if m is None or m.group(1) not in labels:
        return None
    head = body[:j + 1]
    tail = [(a, t) for a, t in body if a >= labels[m.group(1)]]
    return len(head) + len(tail), sum(_ffma(t) for _, t in tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="kernel module under kernels/ (e.g. gemm)")
    ap.add_argument("kernels", nargs="+", help="names in that module's KERNELS")
    ap.add_argument("--fast-path", action="store_true", help="count one K-tile of the fast path")
    args = ap.parse_args(argv)
    import kernel_report as kr
    kr._offline_device_functions()
    mod = importlib.import_module(f"kernels.{args.module}")
    for name in args.kernels:
        kernel, sigs = mod.KERNELS[name][:2]
        ins, labels = disassemble(cubin(kernel, sigs[0]))
        lo, hi = hottest_loop(ins, labels)
        body = [t for a, t in ins if lo <= a <= hi]
        ops = collections.Counter(opcode(t) for t in body)
        ff = ops.get("FFMA", 0)
        print(f"{name}: {len(ins)} instructions; hottest loop {len(body)} "
              f"({ff} FFMA, {100 * ff / max(1, len(body)):.1f} %)")
        print("  " + ", ".join(f"{k} {v}" for k, v in ops.most_common(12)))
        if args.fast_path:
            fp = fast_path(ins, labels, lo, hi)
            if fp is None:
                print("  fast path: none found (no 128-bit global load in the loop)")
            else:
                print(f"  fast path, one pass: {fp[0]} instructions, {fp[1]} FFMA "
                      f"({100 * fp[1] / fp[0]:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
