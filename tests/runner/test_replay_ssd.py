"""Launch replay with the SSD fork's replayable layers (Normalize, Permute, PriorBox): a training
net's replayed forward + backward equals the eager one bit for bit, with fresh inputs every pass,
and no stretch is found unsafe (their one-time uploads happen on the eager first pass)."""
from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from proto import caffe_pb2 as pb
from runner.backend.replay import NetReplay
from runner.net import Net

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 3 dim: 3 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "norm" type: "Normalize" bottom: "conv" top: "norm"
  norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 4 } } }
layer { name: "perm" type: "Permute" bottom: "norm" top: "perm"
  permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "flat" type: "Flatten" bottom: "perm" top: "flat" }
layer { name: "prior" type: "PriorBox" bottom: "conv" bottom: "data" top: "prior"
  prior_box_param { min_size: 2 max_size: 3 aspect_ratio: 2 variance: 0.1 } }
layer { name: "silence" type: "Silence" bottom: "prior" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""


def _net() -> Net:
    p = pb.NetParameter()
    text_format.Parse(NET, p)
    return Net(p, phase="TRAIN", device="cuda", seed=3)


def test_ssd_layers_replay_bit_for_bit():
    eager, rep_net = _net(), _net()
    rep = NetReplay(rep_net)
    rng = np.random.default_rng(0)
    for _ in range(3):
        feed = {"data": rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
                "target": rng.standard_normal((2, 3)).astype(np.float32)}
        for net in (eager, rep_net):
            for k, v in feed.items():
                net.blobs[k].data[...] = v
        assert rep.forward_backward() == eager.forward_backward()
        for name in ("data", "conv", "norm", "perm"):
            np.testing.assert_array_equal(rep_net.blobs[name].diff, eager.blobs[name].diff)
        np.testing.assert_array_equal(rep_net.blobs["prior"].data, eager.blobs["prior"].data)
        np.testing.assert_array_equal(rep_net.params["norm"][0].diff, eager.params["norm"][0].diff)
    assert rep.notes == [] and rep.replayed > 0
