"""Caffe's remaining loss layers, forward and backward: HingeLoss (L1, L2), MultinomialLogisticLoss
and InfogainLoss (the softmax runs before, in ``kernels.softmax``).

Math (float32; labels are floats holding integers, truncated toward zero as Caffe's static_cast):

- hinge (x: (num, dim), label: (num,)): m[i, j] = max(0, 1 + s*x[i, j]) with s = -1 at
  j == label[i], +1 elsewhere; the forward writes m and returns sum |m| (L1) or sum m^2 (L2)
  (the layer divides by num). Backward: dx = scale * s * sign(m) (L1) or scale * s * m (L2); the
  layer passes scale = loss_weight / num (L1) or loss_weight * 2 / num (L2), as Caffe.
- multinomial logistic (p: (num, dim) probabilities): loss = sum_i -log(max(p[i, label_i],
  1e-20)) (Caffe's kLOG_THRESHOLD; the layer divides by num); backward dx = 0 except
  dx[i, label_i] = scale / max(p[i, label_i], 1e-20) (the layer passes scale = -loss_weight / num).
- infogain (prob: (outer, C, inner), label: outer*inner positions, H: (C, C)): for each position
  whose label is not ``ignore``:
      loss += -sum_l H[label, l] * log(max(prob[o, l, s], 1e-20));  count += 1
  backward: dx[o, l, s] = scale * (prob[o, l, s] * rowsum(H)[label] - H[label, l]), 0 at ignored
  positions (the layer passes scale = loss_weight / normalizer).
Forward sums come back to the host with the count of labels outside [0, dim) (the wrappers raise
ValueError naming one); no kernel reads or writes out of bounds for such a label.

Versions (v1 each, memory bound): the forward kernels write per-position terms into scratch
buffers that ``kernels.reduce.reduce_sum`` folds (deterministic, no atomics); the backward kernels
run one thread per element of dx; ``infogain_rowsum_v1`` one thread per row of H.

Launch geometry: ``kernels._launch.grid_1d(n, THREADS)`` over the elements (forward: over the
positions).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import SIMULATOR, THREADS_PER_BLOCK, as_device, grid_1d
from kernels.reduce import asum, reduce_sum, sumsq

#: threads per block of the 1-D grid-stride launches (fewer in the simulator, which runs each
#: thread in Python; the kernels do not depend on it)
THREADS = 32 if SIMULATOR else THREADS_PER_BLOCK

LOG_THRESHOLD = float32(1e-20)     # Caffe's kLOG_THRESHOLD
HINGE_L1 = 1                       # HingeLossParameter.Norm values
HINGE_L2 = 2

_ZERO = float32(0.0)
_ONE = float32(1.0)


@cuda.jit
def hinge_fwd_v1(x, label, margin, bad, dim):
    """margin[i, j] = max(0, 1 + s*x[i, j]); bad[i] = 1 when label[i] is outside [0, dim)."""
    for p in range(cuda.grid(1), margin.size, cuda.gridsize(1)):
        i = p // dim
        j = p - i * dim
        lab = int64(label[i])
        v = x[p]
        if j == lab:
            v = -v
        margin[p] = max(_ZERO, _ONE + v)
        if j == 0:
            bad[i] = _ONE if lab < 0 or lab >= dim else _ZERO


@cuda.jit
def hinge_bwd_v1(margin, label, dx, dim, norm, scale):
    """dx = scale * s * (sign(m) for L1, m for L2), s = -1 at the label."""
    for p in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i = p // dim
        j = p - i * dim
        m = margin[p]
        g = (float32(m > _ZERO) - float32(m < _ZERO)) if norm == HINGE_L1 else m
        if j == int64(label[i]):
            g = -g
        dx[p] = scale * g


@cuda.jit
def mlogistic_fwd_v1(prob, label, terms, bad, dim):
    """terms[i] = -log(max(prob[i, label_i], 1e-20)); bad[i] = 1 for a label outside [0, dim)."""
    for i in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        lab = int64(label[i])
        if lab < 0 or lab >= dim:
            terms[i] = _ZERO
            bad[i] = _ONE
        else:
            terms[i] = -math.log(max(prob[i * dim + lab], LOG_THRESHOLD))
            bad[i] = _ZERO


@cuda.jit
def mlogistic_bwd_v1(prob, label, dx, dim, scale):
    """dx[i, j] = scale / max(prob[i, j], 1e-20) at j == label_i, else 0."""
    for p in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i = p // dim
        if p - i * dim == int64(label[i]):
            dx[p] = scale / max(prob[p], LOG_THRESHOLD)
        else:
            dx[p] = _ZERO


@cuda.jit
def infogain_fwd_v1(prob, label, h, terms, valid, bad, dim, inner, has_ignore, ignore):
    """Position q = (o, s): terms[q] = -sum_l H[label, l] log(max(prob[o, l, s], 1e-20)),
    valid[q] = 1; both 0 at an ignored position; bad[q] = 1 for a label outside [0, dim)."""
    for q in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        lab = int64(label[q])
        terms[q] = _ZERO
        valid[q] = _ZERO
        bad[q] = _ZERO
        if has_ignore != 0 and lab == ignore:
            continue
        if lab < 0 or lab >= dim:
            bad[q] = _ONE
            continue
        o = q // inner
        s = q - o * inner
        base = o * dim * inner + s
        acc = _ZERO
        for c in range(dim):
            acc -= h[lab * dim + c] * math.log(max(prob[base + c * inner], LOG_THRESHOLD))
        terms[q] = acc
        valid[q] = _ONE


@cuda.jit
def infogain_rowsum_v1(h, rowsum, dim):
    """rowsum[r] = sum over l (in order) of H[r, l]."""
    for r in range(cuda.grid(1), dim, cuda.gridsize(1)):
        acc = _ZERO
        for c in range(dim):
            acc += h[r * dim + c]
        rowsum[r] = acc


@cuda.jit
def infogain_bwd_v1(prob, label, h, rowsum, dx, dim, inner, has_ignore, ignore, scale):
    """dx[o, l, s] = scale * (prob * rowsum[label] - H[label, l]); 0 at ignored positions."""
    for p in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        o = p // (dim * inner)
        r = p - o * dim * inner
        c = r // inner
        s = r - c * inner
        lab = int64(label[o * inner + s])
        if (has_ignore != 0 and lab == ignore) or lab < 0 or lab >= dim:
            dx[p] = _ZERO
        else:
            dx[p] = scale * (prob[p] * rowsum[lab] - h[lab * dim + c])


_F = float32[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "hinge_fwd_v1": (hinge_fwd_v1, [void(_F, _F, _F, _F, _I)]),
    "hinge_bwd_v1": (hinge_bwd_v1, [void(_F, _F, _F, _I, _I, float32)]),
    "mlogistic_fwd_v1": (mlogistic_fwd_v1, [void(_F, _F, _F, _F, _I)]),
    "mlogistic_bwd_v1": (mlogistic_bwd_v1, [void(_F, _F, _F, _I, float32)]),
    "infogain_fwd_v1": (infogain_fwd_v1, [void(_F, _F, _F, _F, _F, _F, _I, _I, _I, _I)]),
    "infogain_rowsum_v1": (infogain_rowsum_v1, [void(_F, _F, _I)]),
    "infogain_bwd_v1": (infogain_bwd_v1, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32)]),
}


# ------------------------------------------------------------------------------------- public API
_SCRATCH: dict[str, Any] = {}


def _scratch(name: str, size: int) -> Any:
    """The first ``size`` elements of a cached float32 device buffer (grown when needed; reused on
    the default stream, which orders each use after the previous one)."""
    buf = _SCRATCH.get(name)
    if buf is None or buf.size < size:
        buf = cuda.device_array(max(size, 1), dtype=np.float32)
        _SCRATCH[name] = buf
    return buf if buf.size == size else buf[:size]


def _flat(name: str, a: Any, n: int) -> Any:
    d = as_device(a)
    if d.dtype != np.float32 or d.size != n:
        raise ValueError(f"{name}: expected {n} float32 values, got {d.size} {d.dtype}")
    return d if len(d.shape) == 1 else d.reshape(n)


def _launch(kernel: Any, n: int, *args: Any) -> None:
    if n:
        blocks, threads = grid_1d(n, THREADS)
        kernel[blocks, threads](*args)


def _check_bad(name: str, bad: Any, label: Any, dim: int) -> None:
    """Raise ValueError naming the first label outside [0, dim) when the device counted any."""
    if bad.size and reduce_sum(bad) > 0:
        lab = label.copy_to_host()
        flags = bad.copy_to_host()
        first = int(np.flatnonzero(flags)[0])
        raise ValueError(f"label {int(lab[first])} outside [0, {dim})")


def hinge_loss_fwd(x: Any, label: Any, margin: Any, num: int, dim: int, norm: int) -> float:
    """Writes the hinge margins m (num, dim) and returns sum |m| (L1) or sum m^2 (L2) on the host."""
    xf, mf = _flat("hinge_loss_fwd", x, num * dim), _flat("hinge_loss_fwd", margin, num * dim)
    lf = _flat("hinge_loss_fwd", label, num)
    if num * dim == 0:
        return 0.0
    bad = _scratch("bad", num)
    _launch(hinge_fwd_v1, num * dim, xf, lf, mf, bad, dim)
    _check_bad("hinge_loss_fwd", bad, lf, dim)
    return float(asum(mf) if norm == HINGE_L1 else sumsq(mf))


def hinge_loss_bwd(margin: Any, label: Any, dx: Any, num: int, dim: int, norm: int,
                   scale: float) -> None:
    """dx = scale * s * (sign(m) for L1, m for L2) (dx written)."""
    mf, dxf = _flat("hinge_loss_bwd", margin, num * dim), _flat("hinge_loss_bwd", dx, num * dim)
    lf = _flat("hinge_loss_bwd", label, num)
    _launch(hinge_bwd_v1, num * dim, mf, lf, dxf, dim, int(norm), np.float32(scale))


def multinomial_logistic_loss_fwd(prob: Any, label: Any, num: int, dim: int) -> float:
    """sum over i of -log(max(prob[i, label_i], 1e-20)) as a host float."""
    pf, lf = _flat("mlogistic_fwd", prob, num * dim), _flat("mlogistic_fwd", label, num)
    if num == 0:
        return 0.0
    terms, bad = _scratch("terms", num), _scratch("bad", num)
    _launch(mlogistic_fwd_v1, num, pf, lf, terms, bad, dim)
    _check_bad("multinomial_logistic_loss_fwd", bad, lf, dim)
    return float(reduce_sum(terms))


def multinomial_logistic_loss_bwd(prob: Any, label: Any, dx: Any, num: int, dim: int,
                                  scale: float) -> None:
    """dx = 0 except dx[i, label_i] = scale / max(prob[i, label_i], 1e-20) (dx written)."""
    pf, dxf = _flat("mlogistic_bwd", prob, num * dim), _flat("mlogistic_bwd", dx, num * dim)
    lf = _flat("mlogistic_bwd", label, num)
    _launch(mlogistic_bwd_v1, num * dim, pf, lf, dxf, dim, np.float32(scale))


def _ignore(ignore_label: int | None) -> tuple[int, int]:
    return (0, 0) if ignore_label is None else (1, int(ignore_label))


def infogain_loss_fwd(prob: Any, label: Any, h: Any, outer: int, dim: int, inner: int,
                      ignore_label: int | None) -> tuple[float, int]:
    """(sum of the infogain terms, number of non-ignored positions) as host values."""
    npos = outer * inner
    pf = _flat("infogain_fwd", prob, npos * dim)
    lf, hf = _flat("infogain_fwd", label, npos), _flat("infogain_fwd", h, dim * dim)
    if npos == 0:
        return 0.0, 0
    terms, valid, bad = _scratch("terms", npos), _scratch("valid", npos), _scratch("bad", npos)
    _launch(infogain_fwd_v1, npos, pf, lf, hf, terms, valid, bad, dim, inner, *_ignore(ignore_label))
    _check_bad("infogain_loss_fwd", bad, lf, dim)
    return float(reduce_sum(terms)), int(round(reduce_sum(valid)))


def infogain_loss_bwd(prob: Any, label: Any, h: Any, dx: Any, outer: int, dim: int, inner: int,
                      ignore_label: int | None, scale: float) -> None:
    """dx = scale * (prob * rowsum(H)[label] - H[label, :]), 0 at ignored positions (written)."""
    npos = outer * inner
    pf, dxf = _flat("infogain_bwd", prob, npos * dim), _flat("infogain_bwd", dx, npos * dim)
    lf, hf = _flat("infogain_bwd", label, npos), _flat("infogain_bwd", h, dim * dim)
    if npos * dim == 0:
        return
    rowsum = _scratch("rowsum", dim)
    _launch(infogain_rowsum_v1, dim, hf, rowsum, dim)
    _launch(infogain_bwd_v1, npos * dim, pf, lf, hf, rowsum, dxf, dim, inner, *_ignore(ignore_label),
            np.float32(scale))
