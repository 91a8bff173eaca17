"""LRN (Caffe LRNLayer): local response normalisation, ``lrn_param`` local_size (odd, default 5),
alpha (1), beta (0.75), k (1), norm_region ACROSS_CHANNELS (default: scale = k + alpha/n *
sum of x^2 over n neighbouring channels) or WITHIN_CHANNEL (scale = 1 + alpha/n^2 * sum of x^2
over an n x n spatial window, zero padded; k unused, as in Caffe); y = x * scale^-beta."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers.base import Layer
from runner.registry import register


@register("LRN")
class LRNLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 != 1:
            raise self.error(f"LRN only supports odd values for local_size, got {self.size}")
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.across = p.norm_region == pb.LRNParameter.ACROSS_CHANNELS
        if len(bottoms[0].shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{bottoms[0].shape}")
        self.scale = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.scale = self.backend.empty(bottoms[0].shape)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        x = self.keep_input(bottoms, tops)
        if self.across:
            be.lrn_across_fwd(x, tops[0].dev_data, self.scale, self.size, self.alpha, self.beta, self.k)
        else:
            be.lrn_within_fwd(x, tops[0].dev_data, self.scale, self.size, self.alpha, self.beta)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        args = (self.saved_input(bottoms), tops[0].dev_data, self.scale, tops[0].dev_diff,
                bottoms[0].dev_diff, self.size, self.alpha, self.beta)
        if self.across:
            be.lrn_across_bwd(*args)
        else:
            be.lrn_within_bwd(*args)
