"""Naive float64 references for Caffe 1.0's remaining layers, written as plain loops from Caffe's
equations (Clip, Threshold, Swish, PReLU, MVN, Reduction, Tile, Crop, Embed, BatchReindex, Filter,
Im2col, HingeLoss, MultinomialLogisticLoss, InfogainLoss). Never imports the code under test.

Each ``<op>_ref`` returns the forward result; ``<op>_grad_ref`` the bottom (and parameter)
gradients for a top diff ``dy``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

LOG_THRESHOLD = 1e-20


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ------------------------------------------------------------------------------------ neurons
def clip_ref(x, lo, hi):
    x = _f64(x)
    out = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        v2 = hi if hi < v else v            # std::min(v, hi)
        out[i] = v2 if lo < v2 else lo      # std::max(lo, v2)
    return out


def clip_grad_ref(x, dy, lo, hi):
    x, dy = _f64(x), _f64(dy)
    return np.array([d if lo <= v <= hi else 0.0 for v, d in zip(x.ravel(), dy.ravel())]).reshape(x.shape)


def threshold_ref(x, t):
    return np.array([1.0 if v > t else 0.0 for v in _f64(x).ravel()]).reshape(np.shape(x))


def _sigmoid(v):
    return 0.5 * math.tanh(0.5 * v) + 0.5


def swish_ref(x, beta):
    return np.array([v * _sigmoid(beta * v) for v in _f64(x).ravel()]).reshape(np.shape(x))


def swish_grad_ref(x, dy, beta):
    out = []
    for v, d in zip(_f64(x).ravel(), _f64(dy).ravel()):
        s = _sigmoid(beta * v)
        y = v * s
        out.append(d * (beta * y + s * (1 - beta * y)))
    return np.array(out).reshape(np.shape(x))


def prelu_ref(x, slope, shared):
    x = _f64(x)
    n, c = x.shape[0], x.shape[1]
    dim = int(np.prod(x.shape[2:]))
    xv = x.reshape(n, c, dim)
    a = _f64(slope).ravel()
    y = np.empty_like(xv)
    for i in range(n):
        for ch in range(c):
            s = a[0] if shared else a[ch]
            for k in range(dim):
                v = xv[i, ch, k]
                y[i, ch, k] = max(v, 0.0) + s * min(v, 0.0)
    return y.reshape(x.shape)


def prelu_grad_ref(x, slope, dy, shared):
    """(dx, dslope)."""
    x, dy = _f64(x), _f64(dy)
    n, c = x.shape[0], x.shape[1]
    dim = int(np.prod(x.shape[2:]))
    xv, dyv = x.reshape(n, c, dim), dy.reshape(n, c, dim)
    a = _f64(slope).ravel()
    dx = np.empty_like(xv)
    da = np.zeros(a.shape)
    for i in range(n):
        for ch in range(c):
            j = 0 if shared else ch
            for k in range(dim):
                v, d = xv[i, ch, k], dyv[i, ch, k]
                dx[i, ch, k] = d * ((1.0 if v > 0 else 0.0) + a[j] * (1.0 if v <= 0 else 0.0))
                da[j] += d * v * (1.0 if v <= 0 else 0.0)
    return dx.reshape(x.shape), da.reshape(np.shape(slope))


# ------------------------------------------------------------------------------------ MVN
def _legacy4(shape):
    return tuple(shape) + (1,) * (4 - len(shape))


def mvn_ref(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """Top in Caffe's legacy 4-D shape."""
    x = _f64(x).reshape(_legacy4(np.shape(x)))
    n, c, h, w = x.shape
    groups = [(i, slice(None)) for i in range(n)] if across_channels else \
        [(i, ch) for i in range(n) for ch in range(c)]
    y = np.empty_like(x)
    for i, ch in groups:
        block = x[i, ch]
        vals = block.ravel()
        m = sum(vals) / len(vals)
        out = block - m
        if normalize_variance:
            var = sum((v - m) ** 2 for v in vals) / len(vals)
            out = out / (math.sqrt(var) + eps)
        y[i, ch] = out
    return y


def mvn_grad_ref(x, dy, normalize_variance=True, across_channels=False, eps=1e-9):
    """Caffe's MVN backward expression."""
    x = _f64(x).reshape(_legacy4(np.shape(x)))
    y = mvn_ref(x, normalize_variance, across_channels, eps)
    dy = _f64(dy).reshape(x.shape)
    n, c = x.shape[:2]
    groups = [(i, slice(None)) for i in range(n)] if across_channels else \
        [(i, ch) for i in range(n) for ch in range(c)]
    dx = np.empty_like(x)
    for i, ch in groups:
        d, yy, xx = dy[i, ch], y[i, ch], x[i, ch]
        dim = d.size
        if normalize_variance:
            m = xx.sum() / dim
            sd = math.sqrt(((xx - m) ** 2).sum() / dim) + eps
            dx[i, ch] = (d - (yy * (yy * d).sum() + d.sum()) / dim) / sd
        else:
            dx[i, ch] = d - d.sum() / dim
    return dx


# ------------------------------------------------------------------------------------ reduction
def reduction_ref(x, axis=0, op="SUM", coeff=1.0):
    x = _f64(x)
    axis = axis + x.ndim if axis < 0 else axis
    num = int(np.prod(x.shape[:axis]))
    rows = x.reshape(num, -1)
    dim = rows.shape[1]
    c = coeff / dim if op == "MEAN" else coeff
    out = []
    for r in rows:
        if op in ("SUM", "MEAN"):
            s = sum(r)
        elif op == "ASUM":
            s = sum(abs(v) for v in r)
        else:
            s = sum(v * v for v in r)
        out.append(c * s)
    return np.array(out).reshape(x.shape[:axis])


def reduction_grad_ref(x, dy, axis=0, op="SUM", coeff=1.0):
    x = _f64(x)
    axis = axis + x.ndim if axis < 0 else axis
    num = int(np.prod(x.shape[:axis]))
    rows = x.reshape(num, -1)
    dim = rows.shape[1]
    c = coeff / dim if op == "MEAN" else coeff
    g = _f64(dy).reshape(num)
    dx = np.empty_like(rows)
    for i in range(num):
        for j in range(dim):
            if op == "ASUM":
                dx[i, j] = np.sign(rows[i, j]) * g[i] * c
            elif op == "SUMSQ":
                dx[i, j] = 2 * g[i] * c * rows[i, j]
            else:
                dx[i, j] = g[i] * c
    return dx.reshape(x.shape)


# ------------------------------------------------------------------------------------ routing
def tile_ref(x, axis, tiles):
    """Caffe's loops: for each outer index, copy the inner block ``tiles`` times."""
    x = _f64(x)
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis]))
    inner = int(np.prod(x.shape[axis:]))
    src = x.reshape(outer, inner)
    out = []
    for o in range(outer):
        for _ in range(tiles):
            out.extend(src[o])
    shape = list(x.shape)
    shape[axis] *= tiles
    return np.array(out).reshape(shape)


def tile_grad_ref(x_shape, dy, axis, tiles):
    axis = axis + len(x_shape) if axis < 0 else axis
    outer = int(np.prod(x_shape[:axis]))
    inner = int(np.prod(x_shape[axis:]))
    d = _f64(dy).reshape(outer, tiles, inner)
    dx = np.zeros((outer, inner))
    for o in range(outer):
        for t in range(tiles):
            dx[o] += d[o, t]
    return dx.reshape(x_shape)


def crop_offsets_ref(ndim, axis, offset):
    """Caffe's CropLayer::Reshape offsets: 0 before ``axis``; one given offset for every cropped
    axis, or one per cropped axis."""
    axis = axis + ndim if axis < 0 else axis
    out = []
    for i in range(ndim):
        if i < axis:
            out.append(0)
        elif len(offset) == 0:
            out.append(0)
        elif len(offset) == 1:
            out.append(offset[0])
        else:
            out.append(offset[i - axis])
    return out


def crop_ref(x, ref_shape, axis, offset):
    x = _f64(x)
    offs = crop_offsets_ref(x.ndim, axis, offset)
    axis = axis + x.ndim if axis < 0 else axis
    shape = [x.shape[i] if i < axis else ref_shape[i] for i in range(x.ndim)]
    y = np.empty(shape)
    for idx in np.ndindex(*shape):
        y[idx] = x[tuple(i + o for i, o in zip(idx, offs))]
    return y


def crop_grad_ref(x_shape, dy, axis, offset):
    dy = _f64(dy)
    offs = crop_offsets_ref(len(x_shape), axis, offset)
    dx = np.zeros(x_shape)
    for idx in np.ndindex(*dy.shape):
        dx[tuple(i + o for i, o in zip(idx, offs))] = dy[idx]
    return dx


def embed_ref(index, w, b=None):
    w = _f64(w)
    idx = np.asarray(index).ravel()
    rows = [w[int(v)] + (0 if b is None else _f64(b)) for v in idx]
    return np.array(rows).reshape(np.shape(index) + (w.shape[1],))


def embed_grad_ref(index, dy, k_in, with_bias=True):
    """(dw, db) for a zero starting diff."""
    idx = np.asarray(index).ravel()
    n = np.shape(dy)[-1]
    d = _f64(dy).reshape(len(idx), n)
    dw = np.zeros((k_in, n))
    for m, v in enumerate(idx):
        dw[int(v)] += d[m]
    return dw, (d.sum(axis=0) if with_bias else None)


def batch_reindex_ref(x, perm):
    x = _f64(x)
    return np.array([x[int(p)] for p in np.ravel(perm)]).reshape((len(np.ravel(perm)),) + x.shape[1:])


def batch_reindex_grad_ref(x_shape, perm, dy):
    dx = np.zeros(x_shape)
    d = _f64(dy)
    for i, p in enumerate(np.ravel(perm)):
        dx[int(p)] += d[i]
    return dx


def filter_ref(xs, selector):
    keep = [i for i, s in enumerate(np.ravel(selector)) if s != 0]
    return [np.array([_f64(x)[i] for i in keep]).reshape((len(keep),) + np.shape(x)[1:]) for x in xs]


def filter_grad_ref(x_shape, selector, dy):
    keep = [i for i, s in enumerate(np.ravel(selector)) if s != 0]
    dx = np.zeros(x_shape)
    for j, i in enumerate(keep):
        dx[i] = _f64(dy)[j]
    return dx


def im2col_ref(x, kernel, stride, pad, dilation, axis=1):
    """Caffe's Im2col layer: (..., C, *in) -> (..., C*prod(kernel), *out), loops over every output
    element (row c*K + kernel offset in C order)."""
    x = _f64(x)
    lead = x.shape[:axis]
    c = x.shape[axis]
    ins = x.shape[axis + 1:]
    nd = len(ins)
    outs = [(ins[d] + 2 * pad[d] - (dilation[d] * (kernel[d] - 1) + 1)) // stride[d] + 1
            for d in range(nd)]
    xv = x.reshape((-1, c) + ins)
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    y = np.zeros((xv.shape[0], c * len(offsets)) + tuple(outs))
    for n in range(xv.shape[0]):
        for ch in range(c):
            for ki, ko in enumerate(offsets):
                for o in np.ndindex(*outs):
                    pos = [o[d] * stride[d] - pad[d] + ko[d] * dilation[d] for d in range(nd)]
                    if all(0 <= pos[d] < ins[d] for d in range(nd)):
                        y[(n, ch * len(offsets) + ki) + o] = xv[(n, ch) + tuple(pos)]
    return y.reshape(lead + y.shape[1:])


def im2col_grad_ref(x_shape, dy, kernel, stride, pad, dilation, axis=1):
    """col2im: every column entry added back onto the pixel it came from."""
    lead = x_shape[:axis]
    c = x_shape[axis]
    ins = tuple(x_shape[axis + 1:])
    nd = len(ins)
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    dyv = _f64(dy).reshape((int(np.prod(lead)), c * len(offsets)) + tuple(np.shape(dy)[axis + 1:]))
    outs = dyv.shape[2:]
    dx = np.zeros((dyv.shape[0], c) + ins)
    for n in range(dyv.shape[0]):
        for ch in range(c):
            for ki, ko in enumerate(offsets):
                for o in np.ndindex(*outs):
                    pos = [o[d] * stride[d] - pad[d] + ko[d] * dilation[d] for d in range(nd)]
                    if all(0 <= pos[d] < ins[d] for d in range(nd)):
                        dx[(n, ch) + tuple(pos)] += dyv[(n, ch * len(offsets) + ki) + o]
    return dx.reshape(x_shape)


# ------------------------------------------------------------------------------------ losses
def hinge_ref(x, label, norm="L1"):
    """(loss, margins)."""
    x = _f64(x)
    num = x.shape[0]
    xv = x.reshape(num, -1)
    m = xv.copy()
    for i in range(num):
        m[i, int(label[i])] *= -1
    m = np.maximum(0.0, 1.0 + m)
    loss = (np.abs(m).sum() if norm == "L1" else (m * m).sum()) / num
    return loss, m


def hinge_grad_ref(x, label, norm="L1", loss_weight=1.0):
    x = _f64(x)
    num = x.shape[0]
    _, m = hinge_ref(x, label, norm)
    g = m.copy()
    for i in range(num):
        g[i, int(label[i])] *= -1
    if norm == "L1":
        g = np.sign(g) * loss_weight / num
    else:
        g = g * loss_weight * 2 / num
    return g.reshape(x.shape)


def mlogistic_ref(prob, label):
    p = _f64(prob).reshape(np.shape(prob)[0], -1)
    return -sum(math.log(max(p[i, int(label[i])], LOG_THRESHOLD)) for i in range(p.shape[0])) / p.shape[0]


def mlogistic_grad_ref(prob, label, loss_weight=1.0):
    p = _f64(prob).reshape(np.shape(prob)[0], -1)
    num = p.shape[0]
    dx = np.zeros_like(p)
    for i in range(num):
        j = int(label[i])
        dx[i, j] = -loss_weight / num / max(p[i, j], LOG_THRESHOLD)
    return dx.reshape(np.shape(prob))


def _softmax_axis(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _normalizer(mode, outer, inner, count):
    n = {"FULL": outer * inner, "VALID": count, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return max(1.0, float(n))


def infogain_ref(x, label, h, axis=1, ignore=None, mode="VALID"):
    """(loss, prob): Caffe's InfogainLoss with its internal softmax."""
    x = _f64(x)
    axis = axis + x.ndim if axis < 0 else axis
    p = _softmax_axis(x, axis)
    outer = int(np.prod(x.shape[:axis]))
    c = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    pv = p.reshape(outer, c, inner)
    lab = np.asarray(label).reshape(outer, inner)
    hv = _f64(h).reshape(c, c)
    loss, count = 0.0, 0
    for o in range(outer):
        for s in range(inner):
            lv = int(lab[o, s])
            if ignore is not None and lv == ignore:
                continue
            for j in range(c):
                loss -= hv[lv, j] * math.log(max(pv[o, j, s], LOG_THRESHOLD))
            count += 1
    return loss / _normalizer(mode, outer, inner, count), p


def infogain_grad_ref(x, label, h, axis=1, ignore=None, mode="VALID", loss_weight=1.0):
    x = _f64(x)
    axis = axis + x.ndim if axis < 0 else axis
    p = _softmax_axis(x, axis)
    outer = int(np.prod(x.shape[:axis]))
    c = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    pv = p.reshape(outer, c, inner)
    lab = np.asarray(label).reshape(outer, inner)
    hv = _f64(h).reshape(c, c)
    dx = np.zeros_like(pv)
    count = 0
    for o in range(outer):
        for s in range(inner):
            lv = int(lab[o, s])
            if ignore is not None and lv == ignore:
                continue
            for j in range(c):
                dx[o, j, s] = pv[o, j, s] * hv[lv].sum() - hv[lv, j]
            count += 1
    return (dx * loss_weight / _normalizer(mode, outer, inner, count)).reshape(x.shape)
