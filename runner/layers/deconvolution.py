"""Deconvolution (Caffe DeconvolutionLayer): the transpose of Convolution. Forward is the
convolution's data gradient (bottom plays the convolution's output), plus bias. Weight
(C_bottom, num_output/group, KH, KW), bias (num_output,). Top size per axis:
stride*(in-1) + dilation*(k-1)+1 - 2*pad. Same parameters as Convolution; any number of spatial
axes (the N-D path as for Convolution)."""
from __future__ import annotations

from runner.blob import Blob
from runner.layers.convolution import ConvolutionLayer
from runner.registry import register


@register("Deconvolution")
class DeconvolutionLayer(ConvolutionLayer):
    deconv = True
    keep_columns = False   # its forward is conv_backward_data: no columns to keep

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        be = self.backend
        g = self.geom
        w = self.blobs[0].dev_data
        if self.nd:
            b = self.blobs[1].dev_data if self.bias_term else None
            for x, y in zip(bottoms, tops):
                yd = y.dev_data
                be.conv_nd_backward(None, w, x.dev_data, yd, None, None, g)
                if b is not None:
                    be.bias_fwd(yd, b, yd, g.n, g.c_in, g.in_count)
            return
        for x, y in zip(bottoms, tops):
            yd = y.dev_data
            be.conv_backward_data(x.dev_data, w, yd, g)
            if self.bias_term:
                be.bias_fwd(yd, self.blobs[1].dev_data, yd, g.n, g.c_in, g.h * g.w)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        be = self.backend
        g = self.geom
        w = self.blobs[0].dev_data
        if self.nd:
            dw = self.blobs[0].dev_diff if self.param_propagate_down[0] else None
            db = self.blobs[1].dev_diff if self.bias_term and self.param_propagate_down[1] else None
            for i, (x, y) in enumerate(zip(bottoms, tops)):
                dy = y.dev_diff
                if db is not None:
                    be.bias_bwd(dy, db, g.n, g.c_in, g.in_count)
                if dw is not None:
                    be.conv_nd_backward(dy, None, x.dev_data, None, dw, None, g)
                if propagate_down[i]:
                    be.conv_nd_forward(dy, w, None, x.dev_diff, g)
            return
        for i, (x, y) in enumerate(zip(bottoms, tops)):
            dy = y.dev_diff
            if self.bias_term and self.param_propagate_down[1]:
                be.bias_bwd(dy, self.blobs[1].dev_diff, g.n, g.c_in, g.h * g.w)
            if self.param_propagate_down[0]:
                be.conv_backward_weight(dy, x.dev_data, self.blobs[0].dev_diff, g)
            if propagate_down[i]:
                be.conv_forward(dy, w, None, x.dev_diff, g)
