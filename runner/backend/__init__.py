"""Backends: one op interface (``base.Backend``), two implementations.

``get_backend("cpu")`` returns the numpy/numba backend; ``get_backend("cuda")`` the Numba CUDA one
(real GPU, or Numba's simulator when NUMBA_ENABLE_CUDASIM=1). Instances are cached per (name, dtype).
Modules are imported lazily so ``import runner`` stays light.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from netdef.geometry import ConvGeometry, PoolGeometry
from runner.backend.base import Backend

__all__ = ["Backend", "ConvGeometry", "PoolGeometry", "get_backend", "BACKENDS", "cuda_problem",
           "select_gpu"]

BACKENDS = ("cpu", "cuda")


def cuda_problem() -> str | None:
    """None when the cuda backend can run here (a CUDA GPU, or Numba's simulator with
    NUMBA_ENABLE_CUDASIM=1); otherwise what was found instead, in one line."""
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        from numba import cuda
        if cuda.is_available():
            return None
        cuda.current_context()           # raises with the driver's own reason
    except Exception as e:               # numba's CudaSupportError / CudaDriverError, ImportError
        text = " ".join(str(e).split())
        text = text.split("init:", 1)[-1].strip(" :")
        return f"no usable CUDA GPU was found ({text.split('. ')[0].rstrip('.:')})"
    return "no CUDA GPU was found"


def select_gpu(device_id: int) -> str:
    """Make GPU ``device_id`` the current device (Caffe's -gpu N / device_id) and return its name;
    ResourceError when there is no such GPU. In the simulator: its one fake device."""
    from netdef.errors import ResourceError
    problem = cuda_problem()
    if problem is not None:
        raise ResourceError(f"GPU {device_id} was asked for, but {problem}")
    from numba import cuda
    n = len(cuda.gpus)
    if not 0 <= device_id < n:
        names = ", ".join(f"{i}: {_name(getattr(g, 'name', 'simulated GPU'))}"
                          for i, g in enumerate(cuda.gpus))
        raise ResourceError(f"GPU {device_id} was asked for, but this machine has {n} GPU(s) "
                            f"({names})")
    cuda.select_device(device_id)
    return _name(getattr(cuda.get_current_device(), "name", "simulated GPU"))


def _name(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


@functools.cache
def _make(name: str, dtype: str) -> Backend:
    if name == "cpu":
        from runner.backend.cpu import CpuBackend
        return CpuBackend(dtype=np.dtype(dtype))
    if name in ("cuda", "gpu"):
        if np.dtype(dtype) != np.float32:
            raise ValueError("the cuda backend runs float32 only")
        problem = cuda_problem()
        if problem is not None:
            from netdef.errors import ResourceError
            raise ResourceError(f"device 'cuda' was asked for, but {problem}; use device='cpu'")
        from runner.backend.cuda import CudaBackend
        return CudaBackend()
    raise ValueError(f"unknown device {name!r}; known: {', '.join(BACKENDS)}")


def get_backend(name: str | Backend = "cpu", dtype: Any = np.float32) -> Backend:
    """The backend instance for ``name`` ("cpu" or "cuda"; "gpu" is an alias of "cuda"); a Backend
    instance is returned unchanged. ``dtype`` float64 is for the cpu backend only (gradient checks)."""
    if isinstance(name, Backend):
        return name
    return _make(str(name).lower(), np.dtype(dtype).name)
