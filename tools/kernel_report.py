"""Compile every kernel of kernels/ to PTX (sm_90), check it, and write docs/kernels.md.

For every module ``kernels/<name>.py`` (private ``_*.py`` helpers excluded) this imports the module,
reads its ``KERNELS`` dict and, for every kernel x signature, runs
``numba.cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))`` (with the kernel's own fastmath /
launch_bounds options), then links the PTX with nvJitLink (``-arch=sm_90 -verbose``) and parses the
ptxas info log for registers, shared memory and spill bytes.

Checks (``tests/test_ptx.py`` asserts them; this script exits 1 when one fails):
- no fp64 instruction (``add/mul/fma/cvt/... .f64``) in a float32 kernel -- a bare Python float
  literal in float32 arithmetic promotes to double. A kernel may opt out with a third element in
  its ``KERNELS`` entry: ``(kernel, signatures, {"allow_fp64": True})``; signatures that mention
  float64 are not checked either;
- no local memory (``.local`` declarations, ``ld.local``/``st.local``): per-thread arrays must
  live in registers;
- no register spills reported by ptxas.

``KERNELS`` format: ``{name: (kernel, [signature, ...])}`` or ``{name: (kernel, [sigs], meta)}``.

Results are cached per (kernel module source, private helper sources, numba-cuda version) in
``.pytest_cache/nbcaffe-ptx/`` so a rerun after editing one module recompiles only that module.

Usage::

    python tools/kernel_report.py                 # check all, write docs/kernels.md
    python tools/kernel_report.py --json out.json --no-docs    # what tests/test_ptx.py runs
    python tools/kernel_report.py --no-cache gemm pool         # only these modules, fresh

Must run WITHOUT the CUDA simulator (the script removes NUMBA_ENABLE_CUDASIM before importing numba);
no GPU is needed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_DIR = ROOT / "kernels"
CACHE_DIR = ROOT / ".pytest_cache" / "nbcaffe-ptx"
DOCS = ROOT / "docs" / "kernels.md"
CC = (9, 0)
ARCH = "sm_90"
CHECK_VERSION = 2   # bump when the checks or the row format change (invalidates the cache)

# an fp64 instruction: opcode with a .f64 type suffix (add.f64, fma.rn.f64, cvt.rn.f32.f64, ...)
_FP64 = re.compile(r"^\s*(?:@!?%p\d+\s+)?[a-z]+(?:\.[a-z0-9]+)*\.f64\b", re.M)
_LOCAL = re.compile(r"\.local\b")
# tensor-core instructions (recorded per row as "tensor_ops": {instruction: count})
_TENSOR_OPS = re.compile(r"^\s*(?:@!?%p\d+\s+)?((?:mma|ldmatrix)\.sync[\w.]*)", re.M)


def kernel_modules() -> list[str]:
    """Names of the public kernel modules (``kernels/<name>.py`` without a leading underscore)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(KERNEL_DIR)])
                  if not m.name.startswith("_"))


def _entries(module) -> list[tuple[str, object, list, dict]]:
    out = []
    for name, entry in getattr(module, "KERNELS", {}).items():
        kernel, sigs = entry[0], list(entry[1])
        meta = dict(entry[2]) if len(entry) > 2 else {}
        out.append((name, kernel, sigs, meta))
    return out


def _source_key(modname: str) -> str:
    h = hashlib.sha256()
    h.update(f"check-v{CHECK_VERSION}".encode())
    for path in [KERNEL_DIR / f"{modname}.py", *sorted(KERNEL_DIR.glob("_*.py"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    import numba
    h.update(numba.__version__.encode())
    try:
        from importlib.metadata import version
        h.update(version("numba-cuda").encode())
    except Exception:  # pragma: no cover - metadata missing
        pass
    return h.hexdigest()[:24]


def link_info(ptx: str) -> str:
    """ptxas info log of linking ``ptx`` for sm_90 with nvJitLink (-verbose)."""
    from cuda.bindings import nvjitlink
    handle = nvjitlink.create(2, [f"-arch={ARCH}".encode(), b"-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel.ptx")
        try:
            nvjitlink.complete(handle)
        except nvjitlink.nvJitLinkError as exc:
            size = nvjitlink.get_error_log_size(handle)
            buf = bytearray(size)
            nvjitlink.get_error_log(handle, buf)
            raise RuntimeError(f"nvJitLink failed: {exc}: {bytes(buf).decode(errors='replace')}") from exc
        size = nvjitlink.get_info_log_size(handle)
        buf = bytearray(size)
        nvjitlink.get_info_log(handle, buf)
        return bytes(buf).decode(errors="replace")
    finally:
        nvjitlink.destroy(handle)


def parse_info(info: str) -> dict:
    """Registers, shared memory and spill bytes from a ptxas/nvJitLink info log."""
    res = {"regs": None, "smem": None, "spill_stores": None, "spill_loads": None, "lmem": None}
    m = re.search(r"[Uu]sed (\d+) registers", info)
    if m:
        res["regs"] = int(m.group(1))
    m = re.search(r"(\d+) bytes smem", info)
    if m:
        res["smem"] = int(m.group(1))
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
    if m:
        res["spill_stores"], res["spill_loads"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"(\d+) bytes lmem", info)
    if m:
        res["lmem"] = int(m.group(1))
    return res


def _doc_line(obj) -> str:
    """First paragraph of a docstring, joined into one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _offline_device_functions() -> None:
    """Let non-inlined ``@cuda.jit(device=True)`` functions compile without a GPU.

    numba-cuda compiles a called device function for ``get_current_device().compute_capability``,
    which needs the CUDA driver; without one, report the target cc instead (compile_ptx targets
    the same cc). With a driver present nothing is patched.
    """
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv.error import CudaSupportError
    try:
        dispatcher.get_current_device()
    except CudaSupportError:
        class _Offline:
            compute_capability = CC
        dispatcher.get_current_device = lambda: _Offline()


def check_kernel(kernel, sig, meta: dict) -> dict:
    """Compile one kernel x signature and return the measurements and the list of problems."""
    from numba import cuda
    opts = getattr(kernel, "targetoptions", {})
    kw = {k: opts[k] for k in ("fastmath", "launch_bounds", "lineinfo") if opts.get(k)}
    t0 = time.perf_counter()
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC, **kw)
    info = link_info(ptx)
    res = parse_info(info)
    res["seconds"] = round(time.perf_counter() - t0, 2)
    ops = _TENSOR_OPS.findall(ptx)
    res["tensor_ops"] = {op: ops.count(op) for op in sorted(set(ops))}
    problems = []
    fp64 = [] if (meta.get("allow_fp64") or "float64" in str(sig)) else _FP64.findall(ptx)
    if fp64:
        problems.append(f"{len(fp64)} fp64 instruction(s), e.g. {fp64[0].strip()!r}")
    local = [ln.strip() for ln in ptx.splitlines() if _LOCAL.search(ln)]
    if local:
        problems.append(f"local memory: {len(local)} line(s), e.g. {local[0]!r}")
    if res["spill_stores"] or res["spill_loads"]:
        problems.append(f"register spills: {res['spill_stores']} bytes stores, "
                        f"{res['spill_loads']} bytes loads")
    if res["regs"] is None:
        problems.append("no register count in the nvJitLink info log")
    res["problems"] = problems
    return res


def _cache_file(modname: str) -> Path:
    return CACHE_DIR / f"{modname}-{_source_key(modname)}.json"


def _load_cache(modname: str) -> list[dict] | None:
    path = _cache_file(modname)
    return json.loads(path.read_text()) if path.is_file() else None


def _store_cache(modname: str, rows: list[dict]) -> None:
    """Cache a module's rows unless something failed to import/compile (may be transient)."""
    if any(p.startswith(("compile failed", "import failed")) for r in rows for p in r.get("problems", [])):
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for old in CACHE_DIR.glob(f"{modname}-*.json"):
        old.unlink()
    path = _cache_file(modname)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)


def check_names(modname: str, names: list[str] | None = None) -> list[dict]:
    """Compile and check the kernels ``names`` (default: all) of ``kernels.<modname>``."""
    try:
        module = importlib.import_module(f"kernels.{modname}")
    except Exception as exc:
        return [{"module": modname, "kernel": "<import>", "sig": "", "doc": "",
                 "problems": [f"import failed: {type(exc).__name__}: {exc}"]}]
    if not hasattr(module, "KERNELS"):   # an empty dict is fine: a module composing other kernels
        return [{"module": modname, "kernel": "<none>", "sig": "", "doc": "",
                 "problems": ["module defines no KERNELS dict"]}]
    rows = []
    for name, kernel, sigs, meta in _entries(module):
        if names is not None and name not in names:
            continue
        for sig in sigs:
            row = {"module": modname, "kernel": name, "sig": format_sig(sig),
                   "doc": _doc_line(kernel.py_func) if hasattr(kernel, "py_func") else ""}
            if not hasattr(kernel, "py_func"):
                row["problems"] = [f"{name} is not a @cuda.jit kernel ({type(kernel).__name__})"]
            else:
                try:
                    row.update(check_kernel(kernel, sig, meta))
                except Exception as exc:
                    row["problems"] = [f"compile failed: {type(exc).__name__}: {str(exc)[:500]}"]
            rows.append(row)
    return rows


def _check_task(task: tuple[str, list[str] | None]) -> list[dict]:
    return check_names(*task)


TASK_KERNELS = 4   # kernels per parallel task (a module's kernels are spread over the workers)


def check_modules(modules: list[str], use_cache: bool = True, jobs: int = 2) -> list[dict]:
    """Rows for every kernel x signature of ``modules``, from the cache where the module's source
    is unchanged, else compiled (in ``jobs`` worker processes when > 1)."""
    done: dict[str, list[dict]] = {}
    tasks: list[tuple[str, list[str] | None]] = []
    for modname in modules:
        cached = _load_cache(modname) if use_cache else None
        if cached is not None:
            done[modname] = cached
            continue
        try:
            names = list(getattr(importlib.import_module(f"kernels.{modname}"), "KERNELS", {}))
        except Exception:
            names = []
        if not names:
            tasks.append((modname, None))     # import error / no KERNELS: reported by check_names
        for i in range(0, len(names), TASK_KERNELS):
            tasks.append((modname, names[i:i + TASK_KERNELS]))
    if jobs > 1 and len(tasks) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=jobs, initializer=_offline_device_functions) as pool:
            results = list(pool.map(_check_task, tasks))
    else:
        _offline_device_functions()
        results = [_check_task(t) for t in tasks]
    fresh: dict[str, list[dict]] = {}
    for (modname, _), rows in zip(tasks, results):
        fresh.setdefault(modname, []).extend(rows)
    for modname, rows in fresh.items():
        if use_cache:
            _store_cache(modname, rows)
        done[modname] = rows
    return [row for modname in modules for row in done.get(modname, [])]


def format_sig(sig) -> str:
    """Compact signature text: ``(f32[:, ::1], i32)`` for a signature string or numba signature."""
    from numba import types
    from numba.core.typing import templates

    if isinstance(sig, str):
        from numba.core import sigutils
        args, _ = sigutils.normalize_signature(sig)
    elif isinstance(sig, templates.Signature):
        args = sig.args
    else:
        args = tuple(sig)
    short = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "uint32": "u32",
             "uint64": "u64", "boolean": "bool"}
    parts = []
    for a in args:
        if isinstance(a, types.Array):
            dims = [":"] * a.ndim
            if a.layout == "C" and a.ndim:
                dims[-1] = "::1"
            elif a.layout == "F" and a.ndim:
                dims[0] = "::1"
            parts.append(f"{short.get(str(a.dtype), str(a.dtype))}[{', '.join(dims)}]")
        else:
            parts.append(short.get(str(a), str(a)))
    return "(" + ", ".join(parts) + ")"


def write_docs(rows: list[dict], path: Path = DOCS) -> None:
    """Write the kernel table and per-module descriptions to ``path`` (temp file + os.replace)."""
    lines = [
        "# nbcaffe kernels",
        "",
        "Generated by `python tools/kernel_report.py` (do not edit by hand; rerun after changing a",
        "kernel). Every kernel in a module's `KERNELS` dict is compiled with",
        "`numba.cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))` and linked for sm_90 with nvJitLink;",
        "`tests/test_ptx.py` fails on fp64 instructions in float32 kernels, local memory or spills.",
        "regs: registers per thread; smem: static shared memory per block (bytes); spills: spill",
        "store/load bytes. Signatures abbreviate float32 as f32, int32 as i32; `[:, ::1]` is",
        "C-contiguous, `[:, :]` any strides.",
        "",
        "| module | kernel | signature | regs | smem | spills | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spills = "" if r.get("spill_stores") is None else f"{r['spill_stores']}/{r['spill_loads']}"
        status = "" if not r.get("problems") else " **FAIL: " + "; ".join(r["problems"]) + "**"
        doc = (r.get("doc") or "").replace("|", "\\|")
        lines.append(f"| {r['module']} | `{r['kernel']}` | `{r['sig']}` | {r.get('regs', '')} | "
                     f"{r.get('smem', '')} | {spills} | {doc}{status} |")
    lines += ["", "## Modules", ""]
    for modname in sorted({r["module"] for r in rows} | set(kernel_modules())):
        try:
            doc = inspect.getdoc(importlib.import_module(f"kernels.{modname}")) or ""
        except Exception as exc:
            doc = f"(import failed: {exc})"
        lines += [f"### kernels/{modname}.py", "", doc, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="kernel modules to check (default: all)")
    parser.add_argument("--json", help="write the per-kernel results to this JSON file")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/kernels.md")
    parser.add_argument("--no-cache", action="store_true", help="recompile everything")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and "numba" in sys.modules:
        print("kernel_report: run without NUMBA_ENABLE_CUDASIM=1", file=sys.stderr)
        return 2
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    modules = args.modules or kernel_modules()
    t0 = time.perf_counter()
    rows = check_modules(modules, use_cache=not args.no_cache, jobs=args.jobs)
    if args.json:
        tmp = Path(args.json + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        os.replace(tmp, args.json)
    if not args.no_docs and not args.modules:
        write_docs(rows)
    bad = [r for r in rows if r.get("problems")]
    for r in bad:
        print(f"FAIL {r['module']}.{r['kernel']} {r['sig']}: {'; '.join(r['problems'])}")
    print(f"{len(rows)} kernel signatures in {len(modules)} modules checked in "
          f"{time.perf_counter() - t0:.1f} s; {len(bad)} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
