"""Naive references for Caffe's Concat / Slice (concat_layer.cpp): explicit loops over the
(outer, axis, inner) views. Never imports the code under test."""
from __future__ import annotations

import numpy as np


def outer_inner(shape, axis):
    return int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1:], dtype=np.int64))


def concat_ref(xs, axis):
    """Concatenate xs along ``axis`` with loops (top[o, offset + a, i] = x[o, a, i])."""
    shape = list(xs[0].shape)
    dims = [x.shape[axis] for x in xs]
    shape[axis] = sum(dims)
    outer, inner = outer_inner(shape, axis)
    top = np.zeros((outer, sum(dims), inner), np.float32)
    offset = 0
    for x, d in zip(xs, dims):
        xv = x.reshape(outer, d, inner)
        for o in range(outer):
            for a in range(d):
                for i in range(inner):
                    top[o, offset + a, i] = xv[o, a, i]
        offset += d
    return top.reshape(shape)


def slice_ref(top, axis, dims):
    """Split ``top`` along ``axis`` into pieces of ``dims`` channels (bottom[o, a, i] =
    top[o, offset + a, i])."""
    outer, inner = outer_inner(top.shape, axis)
    tv = top.reshape(outer, top.shape[axis], inner)
    outs, offset = [], 0
    for d in dims:
        piece = np.zeros((outer, d, inner), np.float32)
        for o in range(outer):
            for a in range(d):
                for i in range(inner):
                    piece[o, a, i] = tv[o, offset + a, i]
        shape = list(top.shape)
        shape[axis] = d
        outs.append(piece.reshape(shape))
        offset += d
    return outs
