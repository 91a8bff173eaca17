"""Reduction (Caffe ReductionLayer): the axes from ``axis`` (default 0) on are reduced, the top
keeps the axes before it (axis 0 gives a 0-D top): y[i] = coeff * op(x[i, ...]) with op SUM
(default), ASUM (sum |x|), SUMSQ (sum x^2) or MEAN (SUM with coeff / dim, folded in the blob's
dtype as Caffe). Backward: g = dy * coeff; dx = g, sign(x)*g (ASUM) or 2*g*x (SUMSQ)."""
from __future__ import annotations

from netdef.shapes import canonical_axis, count
from proto import caffe_pb2 as pb
from runner.layers.base import Layer
from runner.registry import register

RP = pb.ReductionParameter


@register("Reduction")
class ReductionLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        self.op = int(self.param.reduction_param.operation)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        p = self.param.reduction_param
        s = bottoms[0].shape
        axis = canonical_axis(p.axis, len(s), f"layer '{self.name}'") if s else 0
        self.num, self.dim = count(s, 0, axis), count(s, axis)
        t = self.backend.dtype.type
        coeff = t(p.coeff)
        if self.op == RP.MEAN and self.dim:
            coeff = coeff / t(self.dim)
        self.coeff = float(coeff)
        self.kernel_op = RP.SUM if self.op == RP.MEAN else self.op

    def forward(self, bottoms, tops) -> None:
        self.backend.reduction_fwd(bottoms[0].dev_data, tops[0].dev_data, self.num, self.dim,
                                   self.kernel_op, self.coeff)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.reduction_bwd(bottoms[0].dev_data, tops[0].dev_diff, bottoms[0].dev_diff,
                                       self.num, self.dim, self.kernel_op, self.coeff)
