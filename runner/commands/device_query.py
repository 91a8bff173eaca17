"""``nbcaffe device-query``: Caffe's ``caffe device_query``: the CUDA device's properties (via
numba.cuda) when a GPU is present; otherwise says so and describes the CPU backend."""
from __future__ import annotations

import argparse
import os
import platform


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default="0", help="device id (Caffe's -gpu; default 0)")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_cpu() -> list[str]:
    """Lines describing the cpu backend and this machine."""
    import numpy as np
    lines = ["CPU backend: numpy (BLAS) + numba.njit loops, float32",
             f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores",
             f"numpy {np.__version__}"]
    try:
        import numba
        lines.append(f"numba {numba.__version__}, threads {numba.config.NUMBA_NUM_THREADS}")
    except ImportError:
        pass
    return lines


def query(gpu: int = 0) -> list[str]:
    """Property lines of CUDA device ``gpu`` (Caffe's device_query fields numba exposes), or the
    no-GPU description."""
    try:
        from numba import config, cuda
    except ImportError:
        return ["No CUDA support (numba-cuda not installed).", *describe_cpu()]
    if config.ENABLE_CUDASIM:
        return ["CUDA simulator active (NUMBA_ENABLE_CUDASIM=1): no real GPU is used; the cuda "
                "backend runs kernels in Python (slow, for tests).", *describe_cpu()]
    try:
        available = cuda.is_available()
    except Exception:  # driver missing or broken
        available = False
    if not available:
        return ["No CUDA GPU found: nbcaffe will use the cpu backend (pass --device cpu, or no -gpu).",
                *describe_cpu()]
    devs = list(cuda.list_devices())
    if not 0 <= gpu < len(devs):
        from netdef.errors import CaffeError
        raise CaffeError(f"-gpu {gpu}: there are {len(devs)} CUDA device(s) (ids 0..{len(devs) - 1})")
    cuda.select_device(gpu)
    d = cuda.get_current_device()
    free, total = cuda.current_context().get_memory_info()
    cc = d.compute_capability
    name = d.name.decode() if isinstance(d.name, bytes) else d.name
    a = lambda attr: getattr(d, attr, "n/a")  # noqa: E731
    return [
        "Querying GPUs " + str(gpu),
        f"Device id:                     {gpu}",
        f"Major revision number:         {cc[0]}",
        f"Minor revision number:         {cc[1]}",
        f"Name:                          {name}",
        f"Total global memory:           {total}",
        f"Free global memory:            {free}",
        f"Total shared memory per block: {a('MAX_SHARED_MEMORY_PER_BLOCK')}",
        f"Total registers per block:     {a('MAX_REGISTERS_PER_BLOCK')}",
        f"Warp size:                     {a('WARP_SIZE')}",
        f"Maximum threads per block:     {a('MAX_THREADS_PER_BLOCK')}",
        "Maximum dimension of block:    "
        f"{a('MAX_BLOCK_DIM_X')}, {a('MAX_BLOCK_DIM_Y')}, {a('MAX_BLOCK_DIM_Z')}",
        f"Maximum dimension of grid:     {a('MAX_GRID_DIM_X')}, {a('MAX_GRID_DIM_Y')}, {a('MAX_GRID_DIM_Z')}",
        f"Clock rate:                    {a('CLOCK_RATE')}",
        f"Total constant memory:         {a('TOTAL_CONSTANT_MEMORY')}",
        f"Number of multiprocessors:     {a('MULTIPROCESSOR_COUNT')}",
        f"Kernel execution timeout:      {'Yes' if a('KERNEL_EXEC_TIMEOUT') == 1 else 'No'}",
    ]


def run(args) -> int:
    from netdef.errors import CaffeError
    try:
        gpu = int(str(args.gpu).split(",")[0]) if str(args.gpu) not in ("all", "") else 0
    except ValueError:
        raise CaffeError(f"-gpu {args.gpu!r}: expected a device id") from None
    for line in query(max(gpu, 0)):
        print(line)
    return 0
