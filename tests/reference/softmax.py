"""Softmax / softmax-with-loss / accuracy references in float64 on an (outer, C, inner) view,
written from Caffe's layer descriptions, vectorized over positions with numpy (so they stay fast at
the GPU profile's sizes)."""
from __future__ import annotations

import numpy as np

FLT_MIN = float(np.finfo(np.float32).tiny)


def view(x, axis=1):
    """x reshaped to (outer, C, inner) in float64."""
    shape = np.shape(x)
    axis %= len(shape)
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    return np.asarray(x, np.float64).reshape(outer, shape[axis], inner)


def softmax_ref(x, axis=1):
    v = view(x, axis)
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(np.shape(x))


def softmax_grad_ref(y, dy, axis=1):
    yv, dv = view(y, axis), view(dy, axis)
    dot = (dv * yv).sum(axis=1, keepdims=True)
    return ((dv - dot) * yv).reshape(np.shape(y))


def _labels(label, outer, inner):
    """Integer labels (outer, inner), truncated toward zero as static_cast<int>."""
    return np.trunc(np.asarray(label, np.float64)).astype(np.int64).reshape(outer, inner)


def softmax_loss_ref(prob, label, axis=1, ignore_label=None):
    """(sum of -log(max(prob[label], FLT_MIN)) over non-ignored positions, their count)."""
    p = view(prob, axis)
    outer, C, inner = p.shape
    lab = _labels(label, outer, inner)
    valid = np.ones_like(lab, bool) if ignore_label is None else lab != ignore_label
    picked = np.take_along_axis(p, np.where(valid, lab, 0)[:, None, :], axis=1)[:, 0, :]
    loss = -np.log(np.maximum(picked, FLT_MIN))
    return float(loss[valid].sum()), int(valid.sum())


def softmax_loss_grad_ref(prob, label, scale, axis=1, ignore_label=None):
    """d(loss*scale)/dlogits = (prob - onehot) * scale, zero at ignored positions."""
    p = view(prob, axis)
    outer, C, inner = p.shape
    lab = _labels(label, outer, inner)
    valid = np.ones_like(lab, bool) if ignore_label is None else lab != ignore_label
    onehot = (np.arange(C)[None, :, None] == lab[:, None, :]).astype(np.float64)
    dx = (p - onehot) * valid[:, None, :]
    return (dx * scale).reshape(np.shape(prob))


def accuracy_ref(scores, label, top_k=1, axis=1, ignore_label=None, ties="cpu"):
    """(correct, count, per_class[2, C]).

    ties="cpu": order the (score, index) pairs of each position as std::partial_sort with
    std::greater does -- descending score, equal scores by descending index -- with a lexicographic
    sort, and look for the label among the first top_k. ties="gpu": correct when fewer than top_k
    OTHER classes have a score >= the label's."""
    v = view(scores, axis)
    outer, C, inner = v.shape
    cols = v.transpose(0, 2, 1).reshape(-1, C)               # one row of C scores per position
    lab = _labels(label, outer, inner).reshape(-1)
    valid = np.ones_like(lab, bool) if ignore_label is None else lab != ignore_label
    cols, lab = cols[valid], lab[valid]
    if ties == "cpu":
        index = np.broadcast_to(np.arange(C), cols.shape)
        ascending = np.lexsort((index, cols), axis=-1)       # by score, then by index
        top = ascending[:, C - top_k:]                       # the top_k greatest pairs
        hit = (top == lab[:, None]).any(axis=1)
    else:
        true = np.take_along_axis(cols, lab[:, None], axis=1)
        better = (cols >= true).sum(axis=1) - 1              # minus the label itself
        hit = better < top_k
    per_class = np.zeros((2, C), np.int64)
    np.add.at(per_class[0], lab, hit.astype(np.int64))
    np.add.at(per_class[1], lab, 1)
    return int(hit.sum()), int(valid.sum()), per_class
