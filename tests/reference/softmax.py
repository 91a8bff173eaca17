"""Softmax / softmax-with-loss / accuracy references: float64 loops over (outer, inner) positions of
an (outer, C, inner) view, written from Caffe's layer descriptions."""
from __future__ import annotations

import math

import numpy as np

FLT_MIN = float(np.finfo(np.float32).tiny)


def view(x, axis=1):
    """x reshaped to (outer, C, inner)."""
    shape = x.shape
    axis %= len(shape)
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    return np.asarray(x, np.float64).reshape(outer, shape[axis], inner)


def softmax_ref(x, axis=1):
    v = view(x, axis)
    y = np.zeros_like(v)
    for o in range(v.shape[0]):
        for s in range(v.shape[2]):
            col = v[o, :, s]
            e = [math.exp(t - max(col)) for t in col]
            total = sum(e)
            y[o, :, s] = [t / total for t in e]
    return y.reshape(x.shape)


def softmax_grad_ref(y, dy, axis=1):
    yv, dv = view(y, axis), view(dy, axis)
    dx = np.zeros_like(yv)
    for o in range(yv.shape[0]):
        for s in range(yv.shape[2]):
            dot = sum(dv[o, c, s] * yv[o, c, s] for c in range(yv.shape[1]))
            for c in range(yv.shape[1]):
                dx[o, c, s] = (dv[o, c, s] - dot) * yv[o, c, s]
    return dx.reshape(np.shape(y))


def _label(label, o, s, inner):
    return int(np.asarray(label).reshape(-1)[o * inner + s])   # truncation, as static_cast<int>


def softmax_loss_ref(prob, label, axis=1, ignore_label=None):
    """(sum of -log(max(prob[label], FLT_MIN)) over non-ignored positions, their count)."""
    p = view(prob, axis)
    loss, count = 0.0, 0
    for o in range(p.shape[0]):
        for s in range(p.shape[2]):
            lab = _label(label, o, s, p.shape[2])
            if ignore_label is not None and lab == ignore_label:
                continue
            loss += -math.log(max(p[o, lab, s], FLT_MIN))
            count += 1
    return loss, count


def softmax_loss_grad_ref(prob, label, scale, axis=1, ignore_label=None):
    """d(loss*scale)/dlogits = (prob - onehot) * scale, zero at ignored positions."""
    p = view(prob, axis)
    dx = p.copy()
    for o in range(p.shape[0]):
        for s in range(p.shape[2]):
            lab = _label(label, o, s, p.shape[2])
            if ignore_label is not None and lab == ignore_label:
                dx[o, :, s] = 0
            else:
                dx[o, lab, s] -= 1
    return (dx * scale).reshape(np.shape(prob))


def normalizer_ref(mode, outer, inner, valid_count):
    """Caffe's get_normalizer (mode a name)."""
    n = {"FULL": outer * inner,
         "VALID": outer * inner if valid_count == -1 else valid_count,
         "BATCH_SIZE": outer,
         "NONE": 1}[mode]
    return max(1.0, float(n))


def accuracy_ref(scores, label, top_k=1, axis=1, ignore_label=None, ties="cpu"):
    """(correct, count, per_class[2, C]). ties="cpu": sort (score, index) pairs descending as
    std::partial_sort with std::greater does (equal scores: larger index first) and look for the
    label among the first top_k; ties="gpu": correct when fewer than top_k OTHER classes have a
    score >= the label's."""
    v = view(scores, axis)
    C = v.shape[1]
    correct = count = 0
    per_class = np.zeros((2, C), np.int64)
    for o in range(v.shape[0]):
        for s in range(v.shape[2]):
            lab = _label(label, o, s, v.shape[2])
            if ignore_label is not None and lab == ignore_label:
                continue
            col = v[o, :, s]
            if ties == "cpu":
                ranked = sorted(((col[k], k) for k in range(C)), reverse=True)
                hit = lab in [k for _, k in ranked[:top_k]]
            else:
                better = sum(1 for k in range(C) if k != lab and col[k] >= col[lab])
                hit = better < top_k
            correct += hit
            count += 1
            per_class[0, lab] += hit
            per_class[1, lab] += 1
    return correct, count, per_class
