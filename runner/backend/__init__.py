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

__all__ = ["Backend", "ConvGeometry", "PoolGeometry", "get_backend", "BACKENDS"]

BACKENDS = ("cpu", "cuda")


@functools.cache
def _make(name: str, dtype: str) -> Backend:
    if name == "cpu":
        from runner.backend.cpu import CpuBackend
        return CpuBackend(dtype=np.dtype(dtype))
    if name in ("cuda", "gpu"):
        if np.dtype(dtype) != np.float32:
            raise ValueError("the cuda backend runs float32 only")
        from runner.backend.cuda import CudaBackend
        return CudaBackend()
    raise ValueError(f"unknown device {name!r}; known: {', '.join(BACKENDS)}")


def get_backend(name: str | Backend = "cpu", dtype: Any = np.float32) -> Backend:
    """The backend instance for ``name`` ("cpu" or "cuda"; "gpu" is an alias of "cuda"); a Backend
    instance is returned unchanged. ``dtype`` float64 is for the cpu backend only (gradient checks)."""
    if isinstance(name, Backend):
        return name
    return _make(str(name).lower(), np.dtype(dtype).name)
