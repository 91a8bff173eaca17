"""The NCCL path of data-parallel training on a real GPU, with one rank (NCCL refuses two ranks on
one device; a lent machine has one): device buffers all-reduced by NCCL against the host sum, and
a Solver trained through the NCCL exchange equal to the same Solver without it. Skipped in the
simulator and without nccl4py (the dist-cuda extra)."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("NBCAFFE_DEVICE") != "gpu",
                                reason="needs a real GPU (NCCL has no simulator)")


def test_nccl_one_rank_end_to_end():
    pytest.importorskip("nccl.core", reason="nccl4py (the dist-cuda extra) is not installed")
    from runner.dist.gradients import GradientReducer, NcclTransport
    from runner.dist.world import World
    from tests.runner.test_dist import _feed, _solver
    plain, dist = _cuda(_solver(World())), _cuda(_solver(World()))
    reducer = GradientReducer(World(), dist.net, bucket_bytes=256)
    assert isinstance(reducer.transport, NcclTransport)
    # the exchange itself: one rank's sum is its own values, read back from the device buffers
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(p.blob.shape).astype(np.float32) for p in dist.net.learnable_params]
    for p, h in zip(dist.net.learnable_params, host):
        p.blob.diff = h
    reducer.on_gradients_ready()
    for p, h in zip(dist.net.learnable_params, host):
        np.testing.assert_array_equal(p.blob.diff, h)
    # end to end: the Solver's exchange hooks on a NCCL reducer change nothing with one rank
    dist.reducer = reducer
    dist.executor.after_backward = reducer.after_backward
    dist.add_callback(reducer.on_start, reducer.on_gradients_ready)
    for it in range(3):
        _feed(plain, it)
        _feed(dist, it)
        plain.step(1)
        dist.step(1)
    assert len(reducer.started_after) >= 3 * len(reducer.buckets)
    for a, b in zip(plain.net.learnable_params, dist.net.learnable_params):
        np.testing.assert_array_equal(a.blob.data, b.blob.data)


def _cuda(solver):
    """The same solver parameters on the cuda backend."""
    from runner.solver.glog import GLog
    from runner.solver.solver import Solver
    return Solver(solver.param, device="cuda", log=GLog(quiet=True))
