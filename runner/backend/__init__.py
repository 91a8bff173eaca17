"""Backends: one op interface (``base.Backend``), two implementations.

``get_backend("cpu")`` returns the numpy/numba backend; ``get_backend("cuda")`` the Numba CUDA one
(real GPU, or Numba's simulator when NUMBA_ENABLE_CUDASIM=1). Instances are cached per (name, dtype,
precision). Modules are imported lazily so ``import runner`` stays light.

``precision`` (cuda only): "fp32" (default, as Caffe), or "tf32" / "fp16" / "bf16" -- the GEMMs of
Convolution, Deconvolution and InnerProduct then run on the tensor cores (``kernels.gemm_tc``: inputs
rounded to that format, FP32 accumulation); everything else stays FP32. The cpu backend computes in
FP32 (or FP64) only and refuses the others: emulating TF32 rounding there would cost a pass over both
GEMM operands per call and buy nothing but the GPU's numerics, which the CUDA simulator already gives.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from netdef.errors import CaffeError
from runner.backend.base import Backend, ConvGeometry, PoolGeometry

__all__ = ["Backend", "ConvGeometry", "PoolGeometry", "get_backend", "BACKENDS", "PRECISIONS"]

BACKENDS = ("cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


@functools.cache
def _make(name: str, dtype: str, precision: str) -> Backend:
    if precision not in PRECISIONS:
        raise CaffeError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if name == "cpu":
        if precision != "fp32":
            raise CaffeError(f"precision {precision} runs on the tensor cores: use the cuda backend "
                             f"(the cpu backend computes in fp32)")
        from runner.backend.cpu import CpuBackend
        return CpuBackend(dtype=np.dtype(dtype))
    if name in ("cuda", "gpu"):
        if np.dtype(dtype) != np.float32:
            raise ValueError("the cuda backend runs float32 only")
        from runner.backend.cuda import CudaBackend
        return CudaBackend(precision=precision)
    raise ValueError(f"unknown device {name!r}; known: {', '.join(BACKENDS)}")


def get_backend(name: str | Backend = "cpu", dtype: Any = np.float32,
                precision: str | None = None) -> Backend:
    """The backend instance for ``name`` ("cpu" or "cuda"; "gpu" is an alias of "cuda"); a Backend
    instance is returned unchanged (``precision``, if given, must be its own). ``dtype`` float64 is
    for the cpu backend only (gradient checks). ``precision``: see the module docstring (None:
    "fp32")."""
    if isinstance(name, Backend):
        if precision is not None and precision != name.precision:
            raise CaffeError(f"precision {precision} asked of a {name.name} backend running {name.precision}")
        return name
    return _make(str(name).lower(), np.dtype(dtype).name, precision or "fp32")
