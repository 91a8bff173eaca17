"""Blob's host-mirror protocol (runner/blob.py), checked on the cpu with a backend that pretends
its arrays live on a device: every transfer is a real copy and is counted. The cuda backend uses
the same Blob code, so these rules hold there too."""
from __future__ import annotations

import numpy as np

from runner import Net
from runner.backend.cpu import CpuBackend
from runner.blob import Blob


class MirrorBackend(CpuBackend):
    """cpu math, but a separate 'device' copy of every blob (host_mirror=True), with counters."""
    name = "mirror"
    host_mirror = True

    def __init__(self):
        super().__init__()
        self.uploads = 0
        self.downloads = 0

    def to_device(self, host, out=None):
        self.uploads += 1
        return super().to_device(np.array(host, copy=True), out=out)

    def to_host(self, arr, out=None):
        self.downloads += 1
        res = np.array(arr, copy=True)
        if out is None:
            return res
        out.reshape(-1)[...] = res.reshape(-1)
        return out


def test_host_writes_reach_the_device_and_device_writes_reach_the_host():
    be = MirrorBackend()
    b = Blob(be, (2, 3), "b")
    b.data[...] = 5.0                  # write through the host view
    assert (b.dev_data == 5.0).all()   # uploaded before the device use
    assert be.uploads == 1
    be.fill(b.dev_data, 2.0)           # a layer writes on the device
    ro = b.host_data()                 # downloaded; read-only access does not dirty the host copy
    assert (ro == 2.0).all() and not ro.flags.writeable
    up = be.uploads
    _ = b.dev_data
    assert be.uploads == up            # no upload needed
    be.fill(b.dev_data, 3.0)
    assert (b.data == 3.0).all()       # writable host access downloads ...
    _ = b.dev_data
    assert be.uploads == up + 1        # ... and marks the host newer: the next device use uploads
    b.diff = np.arange(6).reshape(2, 3)   # setter writes straight to the device
    assert (b.dev_diff.reshape(-1) == np.arange(6)).all()


def test_reshape_within_capacity_keeps_buffers_and_sharing():
    be = MirrorBackend()
    a = Blob(be, (4, 3), "a")
    buf = a._data
    a.reshape((2, 3))
    assert a._data is buf and a.count == 6
    a.reshape((5, 3))
    assert a._data is not buf
    c = Blob(be, (15,), "c")
    c.share_data(a)
    a.data[...] = 1.0
    assert (c.host_data() == 1.0).all()


PROTO = """
name: "m" force_backward: true
layer { name: "data" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 3 dim: 2 dim: 5 dim: 5 } shape { dim: 3 dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "c" top: "p"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "p" top: "y" inner_product_param { num_output: 2
  weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def test_net_on_a_mirrored_backend_matches_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    t = rng.standard_normal((3, 2)).astype(np.float32)
    ref = Net(PROTO, phase="TRAIN", seed=4)
    mir = Net(PROTO, phase="TRAIN", seed=4, device=MirrorBackend())
    assert abs(ref.forward_backward(x=x, t=t) - mir.forward_backward(x=x, t=t)) < 1e-6
    for name in ("conv", "ip"):
        for p, q in zip(ref.params[name], mir.params[name]):
            np.testing.assert_array_equal(p.diff, q.diff)
    np.testing.assert_array_equal(ref.blobs["x"].diff, mir.blobs["x"].diff)
    # a host-side weight edit is seen by the next forward
    mir.params["ip"][0].data[...] = 0.0
    out = mir.forward(x=x, t=t)
    assert abs(float(out["loss"]) - (t.astype(np.float64) ** 2).sum() / 6) < 1e-5
