"""Instruction mix of a kernel's hottest loop in SASS, without a GPU: what the register/spill
report of ``kernel_report.py`` cannot say (how many issue slots a K-tile of a GEMM spends on
address arithmetic, say).

Each kernel is compiled the way ``kernel_report.py`` compiles it (``compile_ptx`` for sm_90 with
its own launch bounds, linked by nvJitLink), disassembled with ``nvdisasm`` (the
``nvidia-cuda-nvdisasm`` wheel: ``pip install -e ".[sass]"``), and its hottest loop -- the
backward branch whose body holds the most FFMA -- is counted: every instruction of the body, and
the opcodes. For a GEMM main loop with a predicated fast path (v7/v9: the whole-tile 128-bit
loads), ``--fast-path`` also counts what one K-tile of that path issues: the loop head up to the
branch after its last ``LDG.E.128``, plus the multiply region that branch jumps to, and its opcodes.

For memory-bound kernels (no FFMA to find), ``--loops`` lists every loop of the kernel (each
backward branch and the body it closes; nested loops show as ranges inside ranges): its
instructions, the bytes its global loads and stores move (from their widths: ``LDG.E`` 4 bytes,
``.64`` 8, ``.128`` 16), shared-memory accesses and barriers, and the instructions issued per 4
bytes of global traffic -- the per-element cost to hold against the issue budget of a kernel that
must run at the copy bandwidth (BENCHMARKS.md, session 4). ``--whole`` counts the whole kernel the
same way (kernels without a loop: one element per thread).

    python tools/sass_report.py gemm gemm_v7_128_128_8 gemm_v9_128_128_8 --fast-path
    python tools/sass_report.py activation relu_fwd_v3 relu_bwd_v3 --loops

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


def fast_path_body(ins, labels, lo: int, hi: int) -> list[str] | None:
    """The instructions of one pass through the loop's 128-bit-load fast path (the loop head up
    to the branch after its last ``LDG.E.128``, then the region that branch jumps to), or None."""
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
    return [t for _, t in head + tail]


def fast_path(ins, labels, lo: int, hi: int) -> tuple[int, int] | None:
    """(instructions, FFMA) of one pass through the loop's 128-bit-load fast path, or None."""
    body = fast_path_body(ins, labels, lo, hi)
    if body is None:
        return None
    return len(body), sum(_ffma(t) for t in body)


_WIDTH = re.compile(r"\.(128|64|U8|S8|U16|S16)\b")


def access_bytes(text: str) -> int:
    """Bytes one thread moves with a load/store instruction (its width suffix; 4 by default)."""
    m = _WIDTH.search(opcode(text))
    return {"128": 16, "64": 8, "U8": 1, "S8": 1, "U16": 2, "S16": 2}[m.group(1)] if m else 4


def loops(ins, labels) -> list[tuple[int, int]]:
    """(first, last) address of every loop: each backward branch and the body it closes, in
    address order (nested loops appear as ranges inside their parents)."""
    found = set()
    for addr, text in ins:
        m = _TARGET.search(text)
        if m and m.group(1) in labels and labels[m.group(1)] <= addr:
            found.add((labels[m.group(1)], addr))
    return sorted(found)


def traffic(body: list[str]) -> dict[str, float]:
    """Instruction count and memory traffic of a straight run of instructions: global bytes
    loaded / stored per thread, shared-memory loads / stores, barriers, and the instructions per
    4 bytes of global traffic (inf when the run touches no global memory)."""
    ops = [opcode(t) for t in body]
    ld = sum(access_bytes(t) for t, o in zip(body, ops) if o.startswith("LDG"))
    st = sum(access_bytes(t) for t, o in zip(body, ops) if o.startswith(("STG", "RED", "ATOMG")))
    words = (ld + st) / 4
    return {"instructions": len(body), "ldg_bytes": ld, "stg_bytes": st,
            "lds": sum(o.startswith("LDS") for o in ops), "sts": sum(o.startswith("STS") for o in ops),
            "bar": sum(o.startswith("BAR") for o in ops),
            "per_word": len(body) / words if words else float("inf")}


def _describe(what: str, body: list[str]) -> str:
    t = traffic(body)
    ops = collections.Counter(opcode(x) for x in body)
    per = "-" if t["per_word"] == float("inf") else f"{t['per_word']:.1f}"
    return (f"  {what}: {t['instructions']} instructions; global {t['ldg_bytes']} B loaded, "
            f"{t['stg_bytes']} B stored per thread ({per} instructions per 4 B); shared "
            f"{t['lds']} loads, {t['sts']} stores; {t['bar']} barriers\n"
            f"    " + ", ".join(f"{k} {v}" for k, v in ops.most_common(10)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="kernel module under kernels/ (e.g. gemm)")
    ap.add_argument("kernels", nargs="+", help="names in that module's KERNELS")
    ap.add_argument("--fast-path", action="store_true", help="count one K-tile of the fast path")
    ap.add_argument("--loops", action="store_true",
                    help="every loop: instructions, global bytes, instructions per 4 B")
    ap.add_argument("--whole", action="store_true", help="the whole kernel counted as --loops does")
    args = ap.parse_args(argv)
    import kernel_report as kr
    kr._offline_device_functions()
    mod = importlib.import_module(f"kernels.{args.module}")
    for name in args.kernels:
        kernel, sigs = mod.KERNELS[name][:2]
        ins, labels = disassemble(cubin(kernel, sigs[0]))
        real = [(a, t) for a, t in ins if opcode(t) != "NOP"]
        if args.loops or args.whole:
            print(f"{name}: {len(real)} instructions (NOPs left out)")
            if args.whole:
                print(_describe("whole kernel", [t for _, t in real]))
            for lo, hi in loops(real, labels) if args.loops else []:
                if lo == hi:
                    continue      # a branch to itself: the trap after the last EXIT
                print(_describe(f"loop {lo:#06x}-{hi:#06x}", [t for a, t in real if lo <= a <= hi]))
            continue
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
                ops = collections.Counter(opcode(t) for t in fast_path_body(ins, labels, lo, hi))
                print("    " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
