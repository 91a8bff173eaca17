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
from netdef.geometry import ConvGeometry, PoolGeometry
from runner.backend.base import Backend

__all__ = ["Backend", "ConvGeometry", "PoolGeometry", "get_backend", "select_cuda_device", "BACKENDS",
           "PRECISIONS", "cuda_problem", "select_gpu"]

BACKENDS = ("cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
_cuda_device = 0   # the CUDA device the cuda backend runs on (select_cuda_device)
_cuda_made = False


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
    """Make GPU ``device_id`` the cuda backend's device (Caffe's -gpu N / device_id,
    ``select_cuda_device``) and return its name; ResourceError when there is no such GPU. In the
    simulator: its one fake device."""
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
    select_cuda_device(device_id)
    return _name(getattr(cuda.gpus[device_id], "name", "simulated GPU"))


def _name(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


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
        problem = cuda_problem()
        if problem is not None:
            from netdef.errors import ResourceError
            raise ResourceError(f"device 'cuda' was asked for, but {problem}; use device='cpu'")
        from numba import cuda

        from runner.backend.cuda import CudaBackend
        global _cuda_made
        if _cuda_device:
            cuda.select_device(_cuda_device)
        _cuda_made = True
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
            raise CaffeError(f"precision {precision} asked of a {name.name} backend running "
                             f"{name.precision}")
        return name
    return _make(str(name).lower(), np.dtype(dtype).name, precision or "fp32")


def select_cuda_device(index: int) -> None:
    """Make the cuda backend run on CUDA device ``index`` (Caffe's SetDevice). Only before the
    cuda backend is first created, or naming the device it already runs on: its buffers and
    kernels live there. ValueError for a device that does not exist or a late switch."""
    global _cuda_device
    index = int(index)
    if index == _cuda_device:
        return
    from numba import cuda
    n = len(cuda.gpus)
    if not 0 <= index < n:
        raise ValueError(f"CUDA device {index} does not exist ({n} device(s) visible)")
    if _cuda_made:
        raise ValueError(f"cannot move the cuda backend to device {index}: it already runs on "
                         f"device {_cuda_device}; select the device before the first GPU net")
    _cuda_device = index
