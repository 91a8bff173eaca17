"""Filter (Caffe FilterLayer): bottoms 0..K-1 are filtered along the batch axis by the last bottom,
the selector (N values, the other axes 1): items whose selector is nonzero are kept, in order, in
tops 0..K-1. As in Caffe, the selector is read on the host in every reshape (which the Net runs
before each forward; the first one, at setup, keeps all N items), the kept indices go to the device
and the copies run there. Backward writes each kept item's diff back and zero for dropped items;
there is no gradient to the selector."""
from __future__ import annotations

import numpy as np

from netdef.shapes import count
from runner.layers.base import Layer
from runner.registry import register


@register("Filter")
class FilterLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        self.first_reshape = True
        self.keep_dev = self.where_dev = None

    def reshape(self, bottoms, tops) -> None:
        key = tuple(b.shape for b in bottoms)
        if key != self._shape_key:
            self._shapes = self.infer(bottoms)      # Caffe's checks on the shapes
            self._shape_key = key
        n = bottoms[-1].shape[0]
        if self.first_reshape:
            keep = np.arange(n)
            self.first_reshape = False
        else:
            keep = np.flatnonzero(np.asarray(bottoms[-1].host_data()).reshape(n) != 0)
        where = np.full(n, -1.0)
        where[keep] = np.arange(len(keep))
        self.keep_dev = self.backend.to_device(keep.astype(np.float64))
        self.where_dev = self.backend.to_device(where)
        for t, b in zip(tops, bottoms[:-1]):
            shape = (len(keep),) + tuple(b.shape[1:])
            if t.shape != shape:
                t.reshape(shape)

    def forward(self, bottoms, tops) -> None:
        for t, b in zip(tops, bottoms[:-1]):
            if t.count:
                self.backend.take_rows(b.dev_data, self.keep_dev, t.dev_data, count(b.shape, 1))

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to the selector (the last bottom); set "
                             "propagate_down: false")
        for i, (t, b) in enumerate(zip(tops, bottoms[:-1])):
            if propagate_down[i]:
                self.backend.put_rows(t.dev_diff, self.where_dev, b.dev_diff, count(b.shape, 1))
