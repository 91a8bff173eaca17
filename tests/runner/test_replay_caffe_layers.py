"""Launch replay over the replayable layers among Caffe 1.0's remaining types (PReLU, Clip, Swish,
MVN, Crop, Tile, Im2col, Reduction, Embed): a Net replayed by runner.backend.replay.NetReplay gives
the same loss and
diffs, bit for bit, as the eager Net, with fresh inputs every pass, and no stretch is found
unsafe (none of them reads the device from the host)."""
from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from proto import caffe_pb2 as pb
from runner.backend.replay import NetReplay
from runner.net import Net

NET = """
name: "r12a"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 5 dim: 5 } } }
layer { name: "ref" type: "Input" top: "ref" input_param { shape { dim: 2 dim: 2 dim: 4 dim: 4 } } }
layer { name: "idx" type: "Input" top: "idx" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 2 } } }
layer { name: "prelu" type: "PReLU" bottom: "data" top: "data" }
layer { name: "crop" type: "Crop" bottom: "data" bottom: "ref" top: "crop" crop_param { offset: 1 } }
layer { name: "clip" type: "Clip" bottom: "crop" top: "crop" clip_param { min: -1 max: 1.5 } }
layer { name: "mvn" type: "MVN" bottom: "crop" top: "mvn" mvn_param { across_channels: true } }
layer { name: "swish" type: "Swish" bottom: "mvn" top: "swish" swish_param { beta: 0.7 } }
layer { name: "i2c" type: "Im2col" bottom: "swish" top: "cols"
  convolution_param { kernel_size: 2 stride: 2 } }
layer { name: "tile" type: "Tile" bottom: "cols" top: "tiled" tile_param { axis: 2 tiles: 2 } }
layer { name: "red" type: "Reduction" bottom: "tiled" top: "red"
  reduction_param { axis: 1 operation: SUMSQ coeff: 0.1 } }
layer { name: "embed" type: "Embed" bottom: "idx" top: "emb" propagate_down: false
  embed_param { num_output: 4 input_dim: 5 weight_filler { type: "gaussian" } } }
layer { name: "red2" type: "Reduction" bottom: "emb" top: "red2" reduction_param { axis: 1 operation: MEAN } }
layer { name: "sum" type: "Eltwise" bottom: "red" bottom: "red2" top: "sum" }
layer { name: "loss" type: "EuclideanLoss" bottom: "sum" bottom: "target" top: "loss" }
"""


def _net() -> Net:
    p = pb.NetParameter()
    text_format.Parse(NET, p)
    return Net(p, phase="TRAIN", device="cuda", seed=3)


def test_replay_matches_eager_bit_for_bit():
    eager, rep_net = _net(), _net()
    for a, b in zip(eager.learnable_params, rep_net.learnable_params):
        b.blob.data = a.blob.host_data()
    rep = NetReplay(rep_net)
    rng = np.random.default_rng(4)
    for _ in range(3):
        feed = {"data": rng.standard_normal((2, 2, 5, 5)), "ref": np.zeros((2, 2, 4, 4)),
                "idx": rng.integers(0, 5, (2, 3)), "target": rng.standard_normal(2)}
        for net in (eager, rep_net):
            for name, value in feed.items():
                net.blobs[name].data[...] = value.astype(np.float32)
            net.clear_param_diffs()
        assert rep.forward_backward() == eager.forward_backward()
        for name in ("data", "crop", "swish", "red", "emb"):
            np.testing.assert_array_equal(rep_net.blobs[name].data, eager.blobs[name].data)
        np.testing.assert_array_equal(rep_net.blobs["data"].diff, eager.blobs["data"].diff)
        for a, b in zip(eager.learnable_params, rep_net.learnable_params):
            np.testing.assert_array_equal(b.blob.diff, a.blob.diff)
    assert rep.notes == []
    assert rep.replayed >= 2
