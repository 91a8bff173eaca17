"""Paired device arrays: the same memory seen by our kernels (a numba device array) and by the torch
baseline (a tensor), so validation and timing use one copy of the data.

On a GPU the tensor is allocated by torch on CUDA and our side is a zero-copy numba view of it
(``__cuda_array_interface__``). In the dry run the two are separate copies of the same host values
(the simulator's fake device array and a CPU tensor); outputs are compared after the kernel ran.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.common import DRY, randn, to_host, torch_mod


def as_numba(t: Any) -> Any:
    """A numba device array viewing torch CUDA tensor ``t`` (no copy)."""
    from numba import cuda
    return cuda.as_cuda_array(t.detach())


def pair_from_host(host: np.ndarray) -> tuple[Any, Any]:
    """(ours, tensor) holding the values of ``host`` (float32 or int32)."""
    torch = torch_mod()
    host = np.ascontiguousarray(host)
    if DRY:
        from numba import cuda
        return cuda.to_device(host), torch.from_numpy(host.copy())
    t = torch.from_numpy(host).to("cuda")
    return as_numba(t), t


def rand_pair(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> tuple[Any, Any]:
    """(ours, tensor) of standard normal float32 values times ``scale`` (generated on the device on a
    GPU: large operands need no host round trip)."""
    torch = torch_mod()
    if DRY:
        return pair_from_host(randn(shape, seed, scale))
    g = torch.Generator(device="cuda").manual_seed(seed)
    t = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32)
    if scale != 1.0:
        t.mul_(scale)
    return as_numba(t), t


def empty_pair(shape: tuple[int, ...], dtype: str = "float32") -> tuple[Any, Any]:
    """(ours, tensor) for an output, filled with NaN (float) or -7 (int) so an element the kernel
    never writes fails validation. In the dry run ``ours`` is a separate fake device array; the
    caller compares it after the kernel ran."""
    torch = torch_mod()
    tdt = getattr(torch, dtype)
    t = torch.empty(shape, dtype=tdt, device="cpu" if DRY else "cuda")
    t.fill_(float("nan") if t.is_floating_point() else -7)
    if DRY:
        from numba import cuda
        return cuda.to_device(t.numpy().copy()), t
    return as_numba(t), t


def zeros_pair(shape: tuple[int, ...]) -> tuple[Any, Any]:
    """(ours, tensor) of float32 zeros."""
    torch = torch_mod()
    t = torch.zeros(shape, dtype=torch.float32, device="cpu" if DRY else "cuda")
    if DRY:
        from numba import cuda
        return cuda.to_device(t.numpy().copy()), t
    return as_numba(t), t


def rel_err_dev(ours: Any, ref: Any) -> float:
    """||ours - ref||_F / ||ref||_F for our output (numba array) and a reference tensor, computed on
    the device in float64 on a GPU (no host copy of large outputs); NaN or shape mismatch -> inf."""
    torch = torch_mod()
    if DRY:
        a = np.asarray(to_host(ours), dtype=np.float64)
        e = ref.detach().double().numpy()
    else:
        a = torch.as_tensor(ours, device="cuda")
        e = ref.detach()
    if tuple(a.shape) != tuple(e.shape):
        if math.prod(a.shape) != math.prod(e.shape):
            return math.inf
        a = a.reshape(-1)
        e = e.reshape(-1)
    if DRY:
        num, den = float(np.linalg.norm(a - e)), float(np.linalg.norm(e))
    else:
        a64 = a.double()
        e64 = e.double()
        num = float(torch.linalg.vector_norm(a64 - e64))
        den = float(torch.linalg.vector_norm(e64))
    err = num / max(den, 1e-30)
    return err if math.isfinite(err) else math.inf
