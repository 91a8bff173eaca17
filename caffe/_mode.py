"""pycaffe's process-wide mode (Caffe's singleton): CPU or GPU, the GPU's index, the random seed.

``caffe.Net`` and the solvers read it when they are made, as in pycaffe: a net made after
``set_mode_gpu()`` runs on runner's ``cuda`` backend, one made after ``set_mode_cpu()`` (the
default) on ``cpu``; a net keeps its backend when the mode changes later.
"""
from __future__ import annotations

import numpy as np

_mode = "cpu"
_seeds: np.random.Generator | None = None


def set_mode_cpu() -> None:
    """Nets and solvers made from now on run on the cpu backend."""
    global _mode
    _mode = "cpu"


def set_mode_gpu() -> None:
    """Nets and solvers made from now on run on the cuda backend (Numba's simulator when
    NUMBA_ENABLE_CUDASIM=1)."""
    global _mode
    _mode = "gpu"


def set_device(device_id: int) -> None:
    """Run GPU nets on CUDA device ``device_id`` (Caffe's SetDevice): call it before the first
    GPU net; ValueError for a device that does not exist."""
    from runner.backend import select_cuda_device
    select_cuda_device(device_id)


def set_random_seed(seed: int) -> None:
    """Seed Caffe's random stream: fillers, data shuffling, crops and mirrors, dropout of the nets
    and solvers made afterwards draw from it, so a script is reproducible run to run (two nets
    made one after the other still differ, as they do in Caffe). A solver's own ``random_seed``
    takes precedence, as in Caffe."""
    global _seeds
    _seeds = np.random.default_rng(int(seed))


def device() -> str:
    """The runner backend name for the current mode: "cpu" or "cuda"."""
    return "cuda" if _mode == "gpu" else "cpu"


def next_seed() -> int | None:
    """The seed of the next net or solver: None (unseeded, as Caffe's default) unless
    ``set_random_seed`` was called."""
    return None if _seeds is None else int(_seeds.integers(0, 2**31 - 1))
