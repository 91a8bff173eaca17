"""Accuracy (Caffe AccuracyLayer): fraction of positions (``axis``, default 1) whose label's score
is among the ``top_k`` best: correct when fewer than top_k other classes score >= the label's
score (Caffe 1.0's rule: ties count against). Positions labelled ``ignore_label`` are skipped.
Optional second top: per-class accuracy (classes never seen give 0). No gradient; under
force_backward it writes a zero bottom diff. Scores that are not all finite give nan."""
from __future__ import annotations

import math

import numpy as np

from netdef.shapes import canonical_axis, count
from runner.layers.base import Layer
from runner.registry import register


@register("Accuracy")
class AccuracyLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore = int(p.ignore_label) if p.HasField("ignore_label") else None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        a = canonical_axis(self.param.accuracy_param.axis, len(s), f"layer '{self.name}'")
        self.dims = (count(s, 0, a), int(s[a]), count(s, a + 1))

    def forward(self, bottoms, tops) -> None:
        if not math.isfinite(self.backend.asum(bottoms[0].dev_data)):
            # NaN/inf scores rank nothing: the accuracy is nan (not 1 beside a nan loss)
            tops[0].data = [math.nan]
            if len(tops) > 1:
                tops[1].data = np.full(tops[1].shape, np.nan, dtype=np.float32)
            return
        try:
            correct, n, pc_correct, pc_count = self.backend.accuracy(
                bottoms[0].dev_data, bottoms[1].dev_data, *self.dims, self.top_k, self.ignore)
        except ValueError as e:
            raise self.error(str(e)) from None
        tops[0].data = [correct / n if n else 0.0]
        if len(tops) > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                pc = np.where(pc_count > 0, pc_correct / np.maximum(pc_count, 1), 0.0)
            tops[1].data = pc

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def backward(self, tops, propagate_down, bottoms) -> None:
        for pd, b in zip(propagate_down, bottoms):
            if pd:
                self.backend.fill(b.dev_diff, 0.0)
