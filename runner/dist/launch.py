"""``-gpu`` lists and the launch of one process per device.

``nbcaffe train -gpu 0,1`` (or ``-gpu all``) on one machine runs itself again under ``mpiexec``,
one rank per listed GPU, through the same code path as a user's ``mpiexec -n 2 nbcaffe train
-gpu 0,1 ...``: each rank finds its device as ``gpus[local_rank]`` and makes it the only visible
one before CUDA starts. ``mpiexec`` is taken from PATH, or from beside the Python interpreter
(where the ``mpich`` wheel of the ``dist`` extra installs it), so a pip install is enough.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from netdef.errors import CaffeError
from runner.dist.world import DIST_EXTRA


def device_count() -> int:
    """CUDA devices the driver reports (0 without a driver), without initialising Numba."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def parse_gpus(spec: str | None) -> list[int]:
    """Caffe's -gpu value as device ids: "" or "-1": none; "all": every device; "0,1": those."""
    spec = (spec or "").strip()
    if spec in ("", "-1"):
        return []
    if spec == "all":
        n = device_count()
        if n == 0:
            raise CaffeError("-gpu all: no CUDA device found")
        return list(range(n))
    try:
        ids = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise CaffeError(f"-gpu {spec}: expected device ids such as 0 or 0,1, or all") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise CaffeError(f"-gpu {spec}: device ids must be distinct and >= 0")
    return ids


def use_device(gpu: int) -> None:
    """Make ``gpu`` this process's only visible CUDA device (before CUDA is initialised)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def find_mpiexec() -> str | None:
    """``mpiexec`` on PATH or beside this Python (the mpich wheel's)."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return shutil.which("mpiexec") or (here if os.access(here, os.X_OK) else None)


def relaunch(n: int, argv: Sequence[str]) -> int:
    """Run ``python -m runner <argv>`` as ``n`` MPI ranks on this machine; its exit status."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise CaffeError(f"training on {n} GPUs starts one process per GPU with mpiexec, and none "
                         f"was found; install it with {DIST_EXTRA}")
    try:
        import mpi4py  # noqa: F401 - the ranks need it; say so here rather than n times
    except ImportError:
        raise CaffeError(f"training on {n} GPUs needs mpi4py; install it with {DIST_EXTRA}") from None
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "runner", *argv]
    return subprocess.call(cmd)
