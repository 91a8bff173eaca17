"""Naive references for Caffe's Scale layer (scale_layer.cpp) over (outer, dim, inner) views, with
explicit loops. Never imports the code under test."""
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
    xv = x.reshape(outer, dim, inner)
    y = np.empty_like(xv)
    for o in range(outer):
        for d in range(dim):
            for i in range(inner):
                v = xv[o, d, i] * s[d]
                y[o, d, i] = v if b is None else v + b[d]
    return y.reshape(x.shape)


def scale_bwd_ref(x, s, dy, outer, dim, inner):
    """(dx, ds, db) with ds, db summed in float64 (returned as float64)."""
    xv, gv = x.reshape(outer, dim, inner), dy.reshape(outer, dim, inner)
    dx = np.empty_like(gv)
    ds = np.zeros(dim, np.float64)
    db = np.zeros(dim, np.float64)
    for o in range(outer):
        for d in range(dim):
            for i in range(inner):
                dx[o, d, i] = gv[o, d, i] * s[d]
                ds[d] += float(gv[o, d, i]) * float(xv[o, d, i])
                db[d] += float(gv[o, d, i])
    return dx.reshape(x.shape), ds, db
