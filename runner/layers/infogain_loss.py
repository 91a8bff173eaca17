"""InfogainLoss (Caffe InfogainLossLayer, with its internal softmax): p = softmax of bottom[0]
over ``infogain_loss_param.axis`` (default 1, C classes); for each position whose label (bottom[1],
one per position) is not ``loss_param.ignore_label``:
loss += -sum_l H[label, l] * log(max(p[l], 1e-20)), divided by the normalizer
(``loss_param.normalization``, default VALID; the deprecated ``normalize`` is refused, as Caffe
does). H (C x C) is bottom[2] when given, else the BlobProto file ``infogain_loss_param.source``
(e.g. written by netdef.weights.write_binaryproto). An optional second top gives p. Backward:
dx = loss_weight / normalizer * (p * rowsum(H)[label] - H[label, :]), 0 at ignored positions; no
gradient to the labels or to H."""
from __future__ import annotations

import numpy as np

from netdef.errors import CaffeError
from netdef.shapes import canonical_axis, count
from runner.layers._loss import normalizer
from runner.layers.base import Layer, top_diff_scale
from runner.registry import register


@register("InfogainLoss")
class InfogainLossLayer(Layer):
    is_loss = True

    def setup(self, bottoms, tops) -> None:
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            raise self.error('loss_param.normalize is deprecated for InfogainLoss; use "normalization"')
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = int(lp.normalization)
        self.h_file = None
        if len(bottoms) < 3:
            p = self.param.infogain_loss_param
            if not p.HasField("source"):
                raise self.error("infogain matrix source must be specified "
                                 "(infogain_loss_param.source) when H is not bottom[2]")
            from netdef.weights import read_binaryproto
            try:
                h = read_binaryproto(p.source)
            except CaffeError as e:
                raise self.error(f"infogain matrix: {e}") from None
            self.h_file = self.backend.to_device(np.ascontiguousarray(h, dtype=np.float64).reshape(-1))
        self.prob = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        axis = canonical_axis(self.param.infogain_loss_param.axis, len(s), f"layer '{self.name}'")
        self.dims = (count(s, 0, axis), s[axis], count(s, axis + 1))
        c = s[axis]
        h_count = bottoms[2].count if len(bottoms) > 2 else int(self.h_file.size)
        if h_count != c * c:
            where = "bottom[2]" if len(bottoms) > 2 else repr(self.param.infogain_loss_param.source)
            raise self.error(f"the infogain matrix H ({where}) has {h_count} values, expected "
                             f"{c}x{c} = {c * c} for {c} classes")
        self.prob = self.backend.empty(s)

    def _h(self, bottoms):
        return bottoms[2].dev_data if len(bottoms) > 2 else self.h_file

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        outer, dim, inner = self.dims
        be.softmax_fwd(bottoms[0].dev_data, self.prob, outer, dim, inner)
        try:
            loss, valid = be.infogain_loss_fwd(self.prob, bottoms[1].dev_data, self._h(bottoms), outer,
                                               dim, inner, self.ignore)
        except ValueError as e:
            raise self.error(str(e)) from None
        self.valid = valid
        tops[0].data = [loss / normalizer(self.mode, outer, inner, valid)]
        if len(tops) > 1:
            be.copy(self.prob, tops[1].dev_data)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("cannot backpropagate to the infogain matrix input (bottom[2]); set "
                             "propagate_down: false")
        if not propagate_down[0]:
            return
        outer, dim, inner = self.dims
        scale = top_diff_scale(tops[0]) / normalizer(self.mode, outer, inner, self.valid)
        self.backend.infogain_loss_bwd(self.prob, bottoms[1].dev_data, self._h(bottoms),
                                       bottoms[0].dev_diff, outer, dim, inner, self.ignore, scale)
