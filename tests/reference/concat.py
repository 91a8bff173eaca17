"""Naive references for Caffe's Concat / Slice (concat_layer.cpp): one slice copy per bottom on the
(outer, axis, inner) views, top[:, offset:offset + d, :] = bottom. Never imports the code under
test."""
from __future__ import annotations

import numpy as np


def outer_inner(shape, axis):
    return int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1:], dtype=np.int64))


def concat_ref(xs, axis):
    """Concatenate xs along ``axis`` (top[o, offset + a, i] = x[o, a, i])."""
    shape = list(xs[0].shape)
    dims = [x.shape[axis] for x in xs]
    shape[axis] = sum(dims)
    outer, inner = outer_inner(shape, axis)
    top = np.zeros((outer, sum(dims), inner), np.float32)
    offset = 0
    for x, d in zip(xs, dims):
        top[:, offset:offset + d, :] = x.reshape(outer, d, inner)
        offset += d
    return top.reshape(shape)


def slice_ref(top, axis, dims):
    """Split ``top`` along ``axis`` into pieces of ``dims`` channels (bottom[o, a, i] =
    top[o, offset + a, i])."""
    outer, inner = outer_inner(top.shape, axis)
    tv = top.reshape(outer, top.shape[axis], inner)
    outs, offset = [], 0
    for d in dims:
        shape = list(top.shape)
        shape[axis] = d
        outs.append(tv[:, offset:offset + d, :].copy().reshape(shape))
        offset += d
    return outs
