"""Naive references for Caffe's Scale layer (scale_layer.cpp) over (outer, dim, inner) views:
numpy broadcasting, sums in float64. Never imports the code under test."""
from __future__ import annotations

import numpy as np


def scale_dims(shape, axis, num_axes):
    """(outer, dim, inner) of Caffe's ScaleLayer for a bottom ``shape`` and scale axis/num_axes
    (num_axes == -1: to the end)."""
    axis = axis % len(shape) if len(shape) else 0
    end = len(shape) if num_axes == -1 else axis + num_axes
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    dim = int(np.prod(shape[axis:end], dtype=np.int64))
    inner = int(np.prod(shape[end:], dtype=np.int64))
    return outer, dim, inner


def scale_fwd_ref(x, s, b, outer, dim, inner):
    """y[o, d, i] = x[o, d, i] * s[d] (+ b[d]) in float32 (one or two roundings, as Caffe)."""
    y = x.reshape(outer, dim, inner) * s.astype(np.float32)[None, :, None]
    if b is not None:
        y = y + b.astype(np.float32)[None, :, None]
    return y.astype(np.float32).reshape(x.shape)


def scale_bwd_ref(x, s, dy, outer, dim, inner):
    """(dx float32, ds float64, db float64): dx = dy * s[d]; ds[d] = sum_{o,i} dy * x;
    db[d] = sum_{o,i} dy."""
    xv, gv = x.reshape(outer, dim, inner), dy.reshape(outer, dim, inner)
    dx = (gv * s.astype(np.float32)[None, :, None]).astype(np.float32)
    ds = (gv.astype(np.float64) * xv.astype(np.float64)).sum(axis=(0, 2))
    db = gv.astype(np.float64).sum(axis=(0, 2))
    return dx.reshape(x.shape), ds, db
