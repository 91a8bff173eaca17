"""Eltwise (Caffe EltwiseLayer): elementwise PROD, SUM (default; optional ``coeff`` per bottom) or
MAX of >= 2 same-shape bottoms. Backward: SUM dx_i = coeff_i dy; PROD dx_i = dy * prod_{j!=i} x_j
(``stable_prod_grad``, default) or dy * y / x_i; MAX routes dy to the bottom that won (Caffe's tie
rule, see Backend.eltwise_max_fwd)."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.layers.base import Layer
from runner.registry import register

EP = pb.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    replayable = True

    def setup(self, bottoms, tops) -> None:
        p = self.param.eltwise_param
        self.op = p.operation
        if len(p.coeff) and len(p.coeff) != len(bottoms):
            raise self.error(f"Eltwise layer takes one coefficient per bottom blob ({len(bottoms)} "
                             f"bottoms, {len(p.coeff)} coeff)")
        if len(p.coeff) and self.op != EP.SUM:
            raise self.error("Eltwise layer only takes coefficients for summation")
        self.coeff = [float(c) for c in p.coeff] if len(p.coeff) else [1.0] * len(bottoms)
        self.stable = bool(p.stable_prod_grad)
        self.mask = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        if self.op == EP.MAX:
            self.mask = self.backend.empty(bottoms[0].shape, dtype="int32")

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        y = tops[0].dev_data
        xs = [b.dev_data for b in bottoms]
        if self.op == EP.PROD:
            be.mul(xs[0], xs[1], y)
            for x in xs[2:]:
                be.mul(y, x, y)
        elif self.op == EP.SUM:
            be.axpby(self.coeff[0], xs[0], 0.0, y)
            for c, x in zip(self.coeff[1:], xs[1:]):
                be.axpy(c, x, y)
        else:
            be.eltwise_max_fwd(xs, y, self.mask)

    def backward(self, tops, propagate_down, bottoms) -> None:
        be = self.backend
        dy = tops[0].dev_diff
        for i, (b, pd) in enumerate(zip(bottoms, propagate_down)):
            if not pd:
                continue
            dx = b.dev_diff
            if self.op == EP.PROD:
                if self.stable:
                    first = True
                    for j, other in enumerate(bottoms):
                        if j == i:
                            continue
                        if first:
                            be.copy(other.dev_data, dx)
                            first = False
                        else:
                            be.mul(other.dev_data, dx, dx)
                else:
                    be.div(tops[0].dev_data, b.dev_data, dx)
                be.mul(dx, dy, dx)
            elif self.op == EP.SUM:
                if self.coeff[i] == 1.0:
                    be.copy(dy, dx)
                else:
                    be.axpby(self.coeff[i], dy, 0.0, dx)
            else:
                be.eltwise_max_bwd(dy, self.mask, i, dx)
