"""Launch helpers shared by every kernel module (small and stable: other modules depend on it).

- ``ceil_div(a, b)``: integer ceiling of a / b.
- ``grid_1d(n)``: ``(blocks, THREADS_PER_BLOCK)`` for a 1-D grid-stride loop over ``n`` items; the
  block count is capped at ``MAX_BLOCKS_1D`` (enough to fill every SM of an H100/H200 several times
  over), the loop ``for i in range(cuda.grid(1), n, cuda.gridsize(1))`` covers the rest. Cached per n.
- ``grid_2d(rows, cols, block)``: blocks for a 2-D launch (no cap), cached.
- ``as_device(arr)``: a numba device array for a numba device array or any object exposing
  ``__cuda_array_interface__`` (CuPy, PyTorch, ...), without copying.
- ``SIMULATOR``: True when running in Numba's CUDA simulator.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import config, cuda

SIMULATOR: bool = bool(config.ENABLE_CUDASIM)

THREADS_PER_BLOCK = 256     # 1-D kernels: 8 warps per block, a multiple of the warp size
MAX_BLOCKS_1D = 4096        # cap for grid-stride loops: ~31 blocks per SM on 132 SMs (H100 SXM)


def ceil_div(a: int, b: int) -> int:
    """Smallest integer >= a / b for a >= 0, b > 0."""
    return -(-a // b)


@functools.lru_cache(maxsize=4096)
def grid_1d(n: int, threads: int = THREADS_PER_BLOCK) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over n items; at least one block even for n == 0."""
    return max(1, min(ceil_div(n, threads), MAX_BLOCKS_1D)), threads


@functools.lru_cache(maxsize=4096)
def grid_2d(rows: int, cols: int, block: tuple[int, int]) -> tuple[int, int]:
    """Blocks (x over cols, y over rows) covering a rows x cols domain with a (bx, by) block."""
    return max(1, ceil_div(cols, block[0])), max(1, ceil_div(rows, block[1]))


class _HostInterface:
    """Simulator only: exposes a CUDA array interface as a numpy ``__array_interface__`` (the
    simulator's "device" memory is host memory), keeping the owner alive."""

    def __init__(self, owner: Any, cai: dict):
        self._owner = owner
        self.__array_interface__ = {
            "shape": tuple(cai["shape"]), "typestr": cai["typestr"], "data": cai["data"],
            "strides": cai.get("strides"), "version": 3,
        }


def as_device(arr: Any) -> Any:
    """Return ``arr`` as a numba device array, without copying.

    Accepts a numba device array (returned unchanged) or any object with
    ``__cuda_array_interface__`` (wrapped with ``cuda.as_cuda_array``; in the simulator the interface's
    pointer is host memory and is wrapped as a fake device array). Raises TypeError otherwise
    (a host numpy array is refused: kernels never copy to or from the host implicitly).
    """
    if getattr(arr, "__cuda_ndarray__", False):
        return arr
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(f"expected a device array (numba device array or an object with "
                        f"__cuda_array_interface__), got {type(arr).__name__}")
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return FakeCUDAArray(np.asarray(_HostInterface(arr, cai)))
    return cuda.as_cuda_array(arr)
