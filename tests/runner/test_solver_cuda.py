"""The Solver on the cuda backend (simulator without a GPU; the real device with one) gives the
same weights as on cpu: update kernels, clipping, history and data upload included."""
from __future__ import annotations

import io

import numpy as np
import pytest

from runner.solver.glog import GLog
from runner.solver.solver import Solver
from tests.runner.test_solver import make_db, write


@pytest.mark.slow
def test_cuda_solver_matches_cpu(tmp_path, monkeypatch):
    """Adam (two history blobs per parameter) with gradient clipping, 2 iterations."""
    make_db(tmp_path / "tiny_lmdb", n=16)
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, batch=2, max_iter=2, snapshot=0, test_interval=100, type="Adam",
                 momentum=0.9, lr=0.05, more="momentum2: 0.999 clip_gradients: 0.05\n"
                 "test_initialization: false snapshot_after_train: false")
    results = {}
    for device in ("cpu", "cuda"):
        s = Solver(path, device=device, log=GLog(stream=io.StringIO()))
        try:
            s.solve()
            results[device] = {p.name: np.array(p.blob.data) for p in s.params}
            hist = [np.asarray(s.backend.to_host(h) if s.backend.host_mirror else h) for h in s.history]
            results[device + "_hist"] = hist
        finally:
            s.close()
    for name, w in results["cpu"].items():
        np.testing.assert_allclose(results["cuda"][name], w, rtol=1e-4, atol=1e-6, err_msg=name)
    for a, b in zip(results["cuda_hist"], results["cpu_hist"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
