"""Launch helpers shared by every kernel module (small and stable: other modules depend on it).

- ``ceil_div(a, b)``: integer ceiling of a / b.
- ``grid_1d(n)``: ``(blocks, THREADS_PER_BLOCK)`` for a 1-D grid-stride loop over ``n`` items; the
  block count is capped at ``MAX_BLOCKS_1D`` (enough to fill every SM of an H100/H200 several times
  over), the loop ``for i in range(cuda.grid(1), n, cuda.gridsize(1))`` covers the rest. Cached per n.
- ``grid_2d(rows, cols, block)``: blocks for a 2-D launch (no cap), cached.
- ``grid_rows(rows)``: ``(blocks, ROW_THREADS)`` for the block-per-row kernels (a block per row of
  ``inner`` contiguous values, block-stride over the rows); they run where ``inner >= ROW_MIN_INNER``.
- ``launch_1d(kernel, n, *args)``: launch a grid-stride kernel over n items with ``grid_1d(n,
  LAUNCH_THREADS)`` (nothing when n == 0).
- ``scratch(name, n)``: a cached float32 device buffer of n elements, reused between calls.
- ``device_constants(values, dtype)``: a small device array of integers (a kernel's geometry
  table), uploaded once per distinct tuple and cached.
- ``promoted(table, **ops)``: temporarily change a module's ``PROMOTED`` versions (tests, benches).
- ``as_device(arr)``: a numba device array for a numba device array or any object exposing
  ``__cuda_array_interface__`` (CuPy, PyTorch, ...), without copying.
- ``SIMULATOR``: True when running in Numba's CUDA simulator.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
from numba import config, cuda

SIMULATOR: bool = bool(config.ENABLE_CUDASIM)

THREADS_PER_BLOCK = 256     # 1-D kernels: 8 warps per block, a multiple of the warp size
MAX_BLOCKS_1D = 4096        # cap for grid-stride loops: ~31 blocks per SM on 132 SMs (H100 SXM)
ROW_THREADS = 32 if SIMULATOR else 128   # block-per-row kernels: threads along a row
ROW_MIN_INNER = 32          # rows at least one warp long use the block-per-row kernels
#: threads per block of ``launch_1d`` (one warp in the simulator, which runs every thread in Python;
#: the kernels do not depend on it)
LAUNCH_THREADS = 32 if SIMULATOR else THREADS_PER_BLOCK


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


@functools.lru_cache(maxsize=4096)
def grid_rows(rows: int) -> tuple[int, int]:
    """(blocks, threads) for the block-per-row kernels: one block per row, capped (block-stride)."""
    return max(1, min(rows, MAX_BLOCKS_1D)), ROW_THREADS


def launch_1d(kernel: Any, n: int, *args: Any, threads: int = LAUNCH_THREADS) -> None:
    """``kernel[grid_1d(n, threads)](*args)``: a grid-stride kernel over n items; nothing when
    n == 0."""
    if n:
        blocks, threads = grid_1d(n, threads)
        kernel[blocks, threads](*args)


_SCRATCH: dict[str, Any] = {}
_VIEWS: dict[tuple[str, int], tuple[Any, Any]] = {}


def scratch(name: str, n: int) -> Any:
    """A float32 device array of n elements named ``name`` (a view of a cached buffer that only
    grows), reused by every call: all launches go to the default stream, which orders each use
    after the previous one. The same (name, n) returns the same view object while the buffer
    lasts (the pre-bound launch replay needs stable arguments)."""
    buf = _SCRATCH.get(name)
    if buf is None or buf.size < n:
        buf = _SCRATCH[name] = cuda.device_array(max(n, 1), dtype=np.float32)
    cached = _VIEWS.get((name, n))
    if cached is None or cached[0] is not buf:
        cached = _VIEWS[(name, n)] = (buf, buf if buf.size == n else buf[:n])
    return cached[1]


@functools.lru_cache(maxsize=1024)
def device_constants(values: tuple[int, ...], dtype: str = "int64") -> Any:
    """``values`` as a 1-D device array of ``dtype`` (a geometry table the kernels read), uploaded
    once per distinct tuple; the same object every call (the launch replay needs stable arguments)."""
    return cuda.to_device(np.array(values, dtype=dtype))


@contextlib.contextmanager
def promoted(table: dict[str, str], **ops: str) -> Iterator[None]:
    """Run other versions for a while: ``with promoted(activation.PROMOTED, relu_fwd="v1"): ...``
    makes the public functions named launch those versions, then restores the table (tests and
    the benchmarks' same-run comparisons)."""
    unknown = set(ops) - set(table)
    if unknown:
        raise KeyError(f"promoted: no such op(s) {sorted(unknown)}; known: {sorted(table)}")
    saved = {op: table[op] for op in ops}
    table.update(ops)
    try:
        yield
    finally:
        table.update(saved)


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
