"""Shared machinery of the GPU benchmarks: device mode, timing, validation, incremental results.

Every ``bench/bench_*.py`` module imports this first (it must come before ``numba.cuda``):

- **Mode.** ``NBCAFFE_BENCH_DRY=1`` (set by ``bench/gpu_check.sh --dry-run``) runs everything in Numba's
  CUDA simulator with tiny sizes and PyTorch on the CPU as the baseline, to exercise every code path
  without a GPU. Otherwise the kernels run on the GPU and the baseline is PyTorch CUDA (cuBLAS/cuDNN,
  TF32 off).
- **Timing** (llm.c's ``benchmark_kernel``): ``time_fn`` runs warm-up calls first (the first call of a
  Numba kernel JIT-compiles it, seconds, never inside the timed region), then repeats the call with a
  CUDA event pair around each repetition and reports the median (and min) in ms, plus the median wall
  time measured with ``perf_counter`` around the same repetition (it includes Python launch overhead
  and any host synchronisation). In the dry run only wall time exists.
- **Validation first.** ``rel_err`` is the relative Frobenius error; a benchmark records it before it
  times anything and times nothing whose error is above its tolerance (no speed for a wrong kernel).
- **Incremental results.** ``Stage`` keeps one stage's measurements and rewrites
  ``$BENCH_WORK/<stage>.json`` atomically after every change, so a stage killed by its ``timeout``
  still leaves everything measured before the kill; ``bench/report.py`` merges the stage files.
- **Time budget.** ``Stage.time_left()`` counts down from ``BENCH_BUDGET_S`` (set per stage by
  ``gpu_check.sh`` a few seconds under the stage's hard timeout), so a stage can skip what is left and
  say so instead of being killed.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DRY: bool = os.environ.get("NBCAFFE_BENCH_DRY", "0") == "1"
if DRY:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    os.environ.setdefault("NBCAFFE_DEVICE", "sim")
else:
    os.environ.setdefault("NBCAFFE_DEVICE", "gpu")

# Numba's on-disk kernel cache (see enable_kernel_cache), shared by the stages of one GPU run; read
# by numba-cuda's config when numba.cuda is first imported, so set here, before that import
os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/nbcaffe-numba-cache")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORK = Path(os.environ.get("BENCH_WORK", "/tmp/nbcaffe-bench-work"))

_T0 = time.monotonic()
_BUDGET_S = float(os.environ.get("BENCH_BUDGET_S", "1e9"))


def size(gpu: Any, dry: Any) -> Any:
    """``gpu`` on a real GPU, ``dry`` in the simulator dry run (tiny sizes: the simulator runs each
    CUDA thread as a Python thread)."""
    return dry if DRY else gpu


def log(*parts: Any) -> None:
    """Print one progress line to stdout (the stage's log file) with the seconds since the process
    started, flushed at once."""
    print(f"[+{time.monotonic() - _T0:6.1f}s]", *parts, flush=True)


# --------------------------------------------------------------------------------------------- torch
_torch = None


def torch_mod():
    """Import torch once, configured for FP32 baselines: TF32 off for cuBLAS and cuDNN, cuDNN's
    autotuner on (``cudnn.benchmark``: the baseline gets cuDNN's fastest algorithm per shape)."""
    global _torch
    if _torch is None:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        try:
            torch.set_float32_matmul_precision("highest")
        except (AttributeError, RuntimeError):
            pass
        if DRY:
            torch.set_num_threads(1)
        _torch = torch
    return _torch


def torch_device() -> str:
    """The baseline's device: ``"cuda"`` on the GPU, ``"cpu"`` in the dry run."""
    return "cpu" if DRY else "cuda"


def to_torch(a: np.ndarray):
    """A float32/int host array as a torch tensor on the baseline device."""
    torch = torch_mod()
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch_device())


def sync() -> None:
    """Wait for all work queued by Numba and by torch on the device."""
    if DRY:
        return
    from numba import cuda
    cuda.synchronize()
    if _torch is not None:
        _torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------- numba side
def enable_kernel_cache() -> int | None:
    """Make every kernel in ``kernels/*.KERNELS`` keep its compiled code in Numba's disk cache
    (``NUMBA_CACHE_DIR``), so a kernel JIT-compiled by one stage (or by a GEMM worker process) loads
    in milliseconds in the next stage's process instead of compiling again (the unrolled GEMM
    kernels take 10+ s each). Numba keys entries by signature, compute capability, bytecode and the
    closure's captured values, so each tile configuration has its own entry.

    Cache writes are serialised across processes with an ``flock`` (Numba numbers the data files of
    one function by reading its index: two processes saving different closures of one factory at
    once could otherwise both pick the same file name). A failing cache read or write is reported
    once and treated as a miss: the cache can only make things faster. Returns the number of
    kernels enabled, or None in the dry run or with ``NBCAFFE_BENCH_KERNEL_CACHE=0``."""
    if DRY or os.environ.get("NBCAFFE_BENCH_KERNEL_CACHE", "1") != "1":
        return None
    import fcntl
    import importlib
    import pkgutil

    from numba.cuda.dispatcher import CUDACache

    import kernels
    if not getattr(CUDACache, "_nbcaffe_guarded", False):
        lock_path = Path(os.environ["NUMBA_CACHE_DIR"]) / ".nbcaffe-write.lock"
        save, load = CUDACache.save_overload, CUDACache.load_overload
        warned: list[str] = []

        def _warn(what: str, e: Exception) -> None:
            if what not in warned:
                warned.append(what)
                log(f"kernel cache: {what} failed ({type(e).__name__}: {str(e)[:200]}); treated as a miss")

        def save_overload(self, sig, data):
            try:
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                with open(lock_path, "a") as f:
                    fcntl.flock(f, fcntl.LOCK_EX)
                    try:
                        return save(self, sig, data)
                    finally:
                        fcntl.flock(f, fcntl.LOCK_UN)
            except Exception as e:  # noqa: BLE001 - a cache write is optional
                _warn("write", e)
                return None

        def load_overload(self, sig, target_context):
            try:
                return load(self, sig, target_context)
            except Exception as e:  # noqa: BLE001 - a cache read is optional
                _warn("read", e)
                return None

        CUDACache.save_overload = save_overload
        CUDACache.load_overload = load_overload
        CUDACache._nbcaffe_guarded = True
    count = 0
    for m in pkgutil.iter_modules(kernels.__path__):
        try:
            mod = importlib.import_module(f"kernels.{m.name}")
        except Exception as e:  # noqa: BLE001 - a broken module is the stages' business, not the cache's
            log(f"kernel cache: kernels.{m.name} not imported ({type(e).__name__}: {e})")
            continue
        for _name, entry in getattr(mod, "KERNELS", {}).items():
            k = entry[0]
            if hasattr(k, "enable_caching") and not getattr(k, "_nbcaffe_cached", False):
                k.enable_caching()
                k._nbcaffe_cached = True
                count += 1
    return count


def to_device(a: np.ndarray):
    """A numba device array holding a copy of host array ``a`` (the simulator's fake one in the dry
    run)."""
    from numba import cuda
    return cuda.to_device(np.ascontiguousarray(a))


def device_empty(shape: tuple[int, ...], dtype=np.float32):
    """An uninitialised numba device array (filled with NaN in the dry run so that an unwritten
    output cannot pass validation by luck)."""
    from numba import cuda
    if DRY:
        return cuda.to_device(np.full(shape, np.nan, dtype=dtype) if np.dtype(dtype).kind == "f"
                              else np.zeros(shape, dtype=dtype))
    return cuda.device_array(shape, dtype=dtype)


def device_zeros(shape: tuple[int, ...], dtype=np.float32):
    """A numba device array of zeros."""
    from numba import cuda
    if DRY:
        return cuda.to_device(np.zeros(shape, dtype=dtype))
    arr = cuda.device_array(shape, dtype=dtype)
    _memset0(arr)
    return arr


def _memset0(arr) -> None:
    """Zero a device array in place on the device (no host round trip for large buffers)."""
    torch = torch_mod()
    t = torch.as_tensor(arr, device="cuda")
    t.zero_()
    torch.cuda.synchronize()


def to_host(a) -> np.ndarray:
    """A host numpy copy of a numba device array, a torch tensor or a numpy array."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


# ---------------------------------------------------------------------------------------- validation
def rel_err(actual, expected) -> float:
    """Relative Frobenius error ||actual - expected||_F / ||expected||_F of two same-shape arrays
    (device or host), computed in float64 on the host; NaN or a shape mismatch gives inf."""
    a = np.asarray(to_host(actual), dtype=np.float64)
    e = np.asarray(to_host(expected), dtype=np.float64)
    if a.shape != e.shape:
        a = a.reshape(-1) if a.size == e.size else None
        if a is None:
            return math.inf
        e = e.reshape(-1)
    err = float(np.linalg.norm(a - e) / max(float(np.linalg.norm(e)), 1e-30))
    return err if math.isfinite(err) else math.inf


def rng(seed: int = 0) -> np.random.Generator:
    """The benchmarks' random source (fresh data every run, fixed seed for reproducibility)."""
    return np.random.default_rng(seed)


def randn(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Standard normal float32 host array of ``shape``, times ``scale``."""
    return (rng(seed).standard_normal(shape, dtype=np.float32) * np.float32(scale))


# -------------------------------------------------------------------------------------------- timing
class _Events:
    """CUDA timing events (torch's when torch has CUDA, else Numba's), recorded on the legacy default
    stream that both Numba launches and torch use by default."""

    def __init__(self):
        self.kind = None
        if DRY:
            return
        torch = torch_mod()
        if torch.cuda.is_available():
            self.kind = "torch"
            self.a = torch.cuda.Event(enable_timing=True)
            self.b = torch.cuda.Event(enable_timing=True)
        else:
            from numba import cuda
            self.kind = "numba"
            self.a = cuda.event(timing=True)
            self.b = cuda.event(timing=True)

    def start(self) -> None:
        if self.kind:
            self.a.record()

    def stop_ms(self) -> float | None:
        if self.kind is None:
            return None
        self.b.record()
        self.b.synchronize()
        if self.kind == "torch":
            return float(self.a.elapsed_time(self.b))
        from numba import cuda
        return float(cuda.event_elapsed_time(self.a, self.b))


def time_fn(fn: Callable[[], Any], *, warmup: int = 1, min_reps: int = 3, max_reps: int = 50,
            target_s: float = 0.3, max_s: float | None = None) -> dict[str, float]:
    """Median time of ``fn()`` in ms.

    Runs ``warmup`` untimed calls (JIT compilation, cuDNN autotuning, allocator warm-up), then
    repetitions until ``target_s`` seconds of measured time or ``max_reps``, at least ``min_reps``
    (fewer only if ``max_s`` seconds of wall time are spent first). Each repetition is bracketed by a
    CUDA event pair and by ``perf_counter`` after a device synchronisation.
    Returns ``{"ms": median event ms (wall in the dry run), "min_ms", "wall_ms": median wall ms,
    "reps"}``.
    """
    for _ in range(warmup):
        fn()
    sync()
    ev = _Events()
    gpu_ms: list[float] = []
    wall_ms: list[float] = []
    t_start = time.perf_counter()
    while True:
        sync()
        t0 = time.perf_counter()
        ev.start()
        fn()
        g = ev.stop_ms()
        sync()
        w = (time.perf_counter() - t0) * 1e3
        wall_ms.append(w)
        gpu_ms.append(w if g is None else g)
        n = len(gpu_ms)
        spent = time.perf_counter() - t_start
        if n >= max_reps or (n >= min_reps and sum(gpu_ms) >= target_s * 1e3):
            break
        if max_s is not None and spent >= max_s and n >= 1:
            break
    return {"ms": float(np.median(gpu_ms)), "min_ms": float(np.min(gpu_ms)),
            "wall_ms": float(np.median(wall_ms)), "reps": n}


# ------------------------------------------------------------------------------------------- results
def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else str(f)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` through ``<path>.tmp`` and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


class Stage:
    """One stage's results, saved to ``$BENCH_WORK/<name>.json`` after every change.

    ``scalars``: flat key -> number/str merged into the top level of results.json;
    ``tables``: table name -> list of row dicts (for results.md); ``notes``: free text lines
    (skips, failures with their reason); ``status``: "running" until ``finish``.
    """

    def __init__(self, name: str):
        self.name = name
        self.path = WORK / f"{name}.json"
        self.data: dict[str, Any] = {"stage": name, "status": "running", "dry_run": DRY,
                                     "scalars": {}, "tables": {}, "notes": []}
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def put(self, key: str, value: Any) -> None:
        """Set a top-level scalar (e.g. ``sgemm_4096_gflops``)."""
        self.data["scalars"][key] = value
        self.save()

    def row(self, table: str, row: dict[str, Any]) -> None:
        """Append a row to a named table."""
        self.data["tables"].setdefault(table, []).append(row)
        self.save()

    def note(self, text: str) -> None:
        """Record a skip/failure reason or remark (also printed)."""
        log(f"[{self.name}] {text}")
        self.data["notes"].append(text)
        self.save()

    def time_left(self) -> float:
        """Seconds left of this stage's budget (``BENCH_BUDGET_S`` from process start)."""
        return _BUDGET_S - (time.monotonic() - _T0)

    def finish(self, status: str = "ok") -> None:
        self.data["status"] = status
        self.save()

    def guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)``; on an exception record ``"<what>: failed: <error>"`` as a
        note (the traceback goes to the log) and return None, so one failing item does not end the stage."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a benchmark item's failure is data, reported
            tb = traceback.format_exc(limit=4)
            log(tb)
            self.note(f"{what}: failed: {type(e).__name__}: {str(e)[:300]}")
            return None


def missing(module: str, *names: str) -> str | None:
    """None when ``module`` imports and has every attribute in ``names``; else a short reason such as
    ``"kernels.gemm missing"`` or ``"kernels.conv has no conv_fwd"`` (the stage reports it as a skip)."""
    import importlib
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name.split(".")[0]) and e.name in module:
            return f"{module} missing"
        return f"{module} import failed: {e}"
    except Exception as e:  # noqa: BLE001 - reported as the skip reason
        return f"{module} import failed: {type(e).__name__}: {e}"
    absent = [n for n in names if not hasattr(mod, n)]
    return f"{module} has no {', '.join(absent)}" if absent else None


def main_guard(stage: Stage, body: Callable[[Stage], None]) -> int:
    """Run a stage body, marking the stage ``ok`` or ``error: ...``; always returns 0 unless an
    internal error happened before any result (so gpu_check.sh goes on to the next stage)."""
    try:
        body(stage)
    except Exception as e:  # noqa: BLE001 - recorded in the stage file, visible in the summary
        log(traceback.format_exc())
        stage.note(f"stage error: {type(e).__name__}: {str(e)[:300]}")
        stage.finish(f"error: {type(e).__name__}")
        return 1
    if stage.data["status"] == "running":
        stage.finish("ok")
    return 0
