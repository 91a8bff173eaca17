"""pytest plugin for gpu_check.sh's tests stage (``-p bench.pytest_kernel_cache``): turns on Numba's
disk cache for every kernel (``bench.common.enable_kernel_cache``) in each pytest process, so the
xdist workers share what any of them compiled, and the benchmark stages after the tests load those
kernels instead of compiling them again. Does nothing in the simulator; never fails the run."""
from __future__ import annotations

import os


def pytest_configure(config) -> None:
    if (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("NBCAFFE_DEVICE") != "gpu"
            or os.environ.get("NBCAFFE_BENCH_DRY") == "1"):
        return      # (importing bench.common in a dry run would switch the simulator on)
    try:
        from bench.common import enable_kernel_cache
        n = enable_kernel_cache()
        config._nbcaffe_kernel_cache = n
    except Exception as e:  # noqa: BLE001 - the cache is an optimisation only
        print(f"bench.pytest_kernel_cache: cache not enabled ({type(e).__name__}: {e})")


def pytest_report_header(config) -> str | None:
    n = getattr(config, "_nbcaffe_kernel_cache", None)
    if n is None:
        return None
    return f"nbcaffe kernel disk cache: {n} kernels, {os.environ.get('NUMBA_CACHE_DIR')}"
