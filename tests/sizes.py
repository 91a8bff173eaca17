"""Shape limits for property tests: tiny in the simulator, larger on a real GPU.

Use these bounds in hypothesis strategies so the same test file runs in CI (simulator, seconds)
and on a GPU (the "gpu" profile) without edits.
"""
from __future__ import annotations

import os

ON_GPU = os.environ.get("NBCAFFE_DEVICE") == "gpu"

# largest value a test should draw for each kind of dimension
MAX_BATCH = 8 if ON_GPU else 2
MAX_CHANNELS = 64 if ON_GPU else 3
MAX_SPATIAL = 64 if ON_GPU else 7
MAX_GEMM_DIM = 300 if ON_GPU else 24   # M, N, K; GPU draws cross several 64/128 tiles
MAX_ELEMENTS = 1 << 20 if ON_GPU else 200
