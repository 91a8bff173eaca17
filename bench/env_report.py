"""Stage ``env``: what machine and software the numbers come from.

Records the GPU (name, SMs, clocks, memory bus from the CUDA driver through Numba; nvidia-smi's line),
the versions of python/torch/numba/numba-cuda/cuda-bindings/cuda-core/protobuf/numpy/cupy/triton and
where numba-cuda was imported from (our wheel in /tmp/site-nc or the image's), and the napkin-math
peaks used by the other stages:

- FP32 peak = SMs x 128 FP32 lanes/SM x 2 FLOP (FMA) x max SM clock (Hopper: 128 FP32 cores per SM);
- DRAM peak = 2 (DDR) x memory clock x bus width / 8 (HBM3/HBM3e).

Run: ``python -m bench.env_report`` (dry run: the simulator, peaks left empty).
"""
from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata as md
import platform
import shutil
import subprocess

from bench.common import DRY, Stage, log, main_guard


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "-"


def _smi() -> str:
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    q = "name,driver_version,clocks.max.sm,clocks.max.mem,clocks.sm,memory.total,power.limit,pstate"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"nvidia-smi failed: {e}"


def _smi_max_sm_khz(line: str) -> int | None:
    """Max SM clock in kHz from our nvidia-smi query line (third field, "1980 MHz"), if any."""
    parts = [p.strip() for p in line.split("\n")[0].split(",")]
    if len(parts) > 2 and parts[2].endswith("MHz"):
        try:
            return int(float(parts[2].split()[0]) * 1000)
        except ValueError:
            return None
    return None


def body(st: Stage) -> None:
    st.put("date", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    st.put("python", platform.python_version())
    for dist in ("torch", "numba", "numba-cuda", "llvmlite", "cuda-bindings", "cuda-core",
                 "cuda-pathfinder", "protobuf", "numpy", "cupy-cuda13x", "cupy-cuda12x", "triton"):
        st.put(f"version_{dist.replace('-', '_')}", _version(dist))
    for mod in ("numba.cuda", "google.protobuf", "proto.caffe_pb2"):
        try:
            m = importlib.import_module(mod)
            st.put(f"import_{mod.replace('.', '_')}", getattr(m, "__file__", "?") or "?")
        except Exception as e:  # noqa: BLE001 - an import failure is what this stage reports
            st.put(f"import_{mod.replace('.', '_')}", f"FAILED: {type(e).__name__}: {e}")
    if DRY:
        st.put("device", "CPU dry run (Numba CUDA simulator, torch CPU baseline)")
        return
    st.put("nvidia_smi", _smi())
    from numba import cuda
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    st.put("device", name)
    st.put("compute_capability", ".".join(map(str, dev.compute_capability)))

    def attr(n: str):
        try:
            return int(getattr(dev, n))
        except Exception:  # noqa: BLE001 - attribute absent in this driver/numba version
            return None

    sms = attr("MULTIPROCESSOR_COUNT")
    clock_khz = attr("CLOCK_RATE") or _smi_max_sm_khz(st.data["scalars"].get("nvidia_smi", ""))
    mem_khz = attr("MEMORY_CLOCK_RATE")
    bus = attr("GLOBAL_MEMORY_BUS_WIDTH")
    st.put("sm_count", sms)
    st.put("sm_clock_mhz", clock_khz / 1e3 if clock_khz else None)
    st.put("mem_clock_mhz", mem_khz / 1e3 if mem_khz else None)
    st.put("mem_bus_bits", bus)
    st.put("l2_bytes", attr("L2_CACHE_SIZE"))
    st.put("smem_per_block_optin", attr("MAX_SHARED_MEMORY_PER_BLOCK_OPTIN"))
    if sms and clock_khz:
        st.put("fp32_peak_gflops", round(sms * 128 * 2 * clock_khz / 1e6, 1))
    if mem_khz and bus:
        st.put("dram_peak_gbps", round(2 * mem_khz * 1e3 * bus / 8 / 1e9, 1))
    import torch
    st.put("torch_cuda", torch.version.cuda)
    st.put("cudnn", torch.backends.cudnn.version())
    st.put("torch_device", torch.cuda.get_device_name(0))
    free, total = torch.cuda.mem_get_info()
    st.put("gpu_mem_total_gib", round(total / 2**30, 1))
    log(f"env: {name}, {sms} SMs, {clock_khz} kHz, fp32 peak {st.data['scalars'].get('fp32_peak_gflops')} "
        f"GFLOP/s, DRAM peak {st.data['scalars'].get('dram_peak_gbps')} GB/s")


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("env"), body))
