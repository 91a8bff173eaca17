"""Test setup shared by every test file.

The same files run in two places with the same command:
- no GPU (CI, laptops): CUDA kernels run in Numba's simulator (NUMBA_ENABLE_CUDASIM=1), hypothesis
  uses the "sim" profile (few examples, tiny shapes);
- a real GPU: kernels compile and run on the device, hypothesis uses the "gpu" profile (more
  examples, larger shapes).
The choice is made here, before anything imports numba.cuda. Override with NBCAFFE_DEVICE=sim|gpu.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def _gpu_present() -> bool:
    """True when the CUDA driver loads and reports at least one device (no numba import)."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if lib.cuInit(0) != 0:
            return False
        count = ctypes.c_int(0)
        return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    return False


_choice = os.environ.get("NBCAFFE_DEVICE")
if _choice is None:
    _choice = "gpu" if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and _gpu_present() else "sim"
if _choice == "sim":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
os.environ.setdefault("NBCAFFE_DEVICE", _choice)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "sim", max_examples=6, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "gpu", max_examples=60, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("NBCAFFE_HYPOTHESIS_PROFILE", _choice))

import pytest  # noqa: E402


def pytest_report_header(config):
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "0")
    return f"nbcaffe test device: {_choice} (NUMBA_ENABLE_CUDASIM={sim})"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (Caffe's prototxts, MNIST, Caffe-trained LeNet); skip if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (a user's clone has no ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def caffe_models(shared_dir: Path) -> Path:
    path = shared_dir / "caffe-models"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def _assert_numba_mode() -> None:
    """If something imported numba before this file ran, its config missed our choice: reload it."""
    if "numba" in sys.modules:
        from numba.core import config

        config.reload_config()


_assert_numba_mode()
