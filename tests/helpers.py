"""Shared test helpers."""
from __future__ import annotations

import numpy as np


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-6, name: str = "") -> None:
    """Assert |actual - expected| <= atol + rtol*|expected| elementwise; on failure report the shape,
    the number of mismatches and the worst index with both values. NaN never passes."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    err = np.abs(a - e)
    tol = atol + rtol * np.abs(e)
    bad = ~(err <= tol)  # NaN compares False -> bad
    if bad.any():
        excess = np.where(np.isnan(err), np.inf, err - tol)
        worst = np.unravel_index(int(np.argmax(excess)), a.shape) if a.ndim else ()
        raise AssertionError(
            f"{name}: {int(bad.sum())}/{a.size} elements differ (rtol={rtol}, atol={atol}); "
            f"worst at {worst}: actual={a[worst]!r} expected={e[worst]!r}")


def rel_frobenius(actual, expected) -> float:
    """||actual - expected||_F / max(||expected||_F, tiny): the GEMM/conv error measure."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


class CAIArray:
    """A foreign array exposing only ``__cuda_array_interface__`` (as CuPy or PyTorch tensors do).
    In the simulator "device" memory is host memory, so the pointer is a numpy buffer's; on a GPU it
    is a numba device array's."""

    def __init__(self, host: np.ndarray):
        import os

        self._sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
        if self._sim:
            self._owner = np.ascontiguousarray(host)
            ptr = self._owner.__array_interface__["data"][0]
        else:
            from numba import cuda

            self._owner = cuda.to_device(host)
            ptr = self._owner.__cuda_array_interface__["data"][0]
        self.__cuda_array_interface__ = {"shape": host.shape, "typestr": host.dtype.str,
                                         "data": (ptr, False), "strides": None, "version": 3}

    def to_host(self) -> np.ndarray:
        return np.array(self._owner) if self._sim else self._owner.copy_to_host()
