"""Loss layers: Caffe's SigmoidCrossEntropyLoss, ContrastiveLoss, HingeLoss (L1, L2),
MultinomialLogisticLoss and InfogainLoss, forward and backward (SoftmaxWithLoss lives with the
softmax in ``kernels/softmax.py``; InfogainLoss's softmax runs there before).

Math (float32; x, t, a, b, diff, dx are C-contiguous; any shape, flattened where stated; labels are
floats holding integers, truncated toward zero as Caffe's static_cast):

- sigmoid_ce (x, t: n elements; ``ignore`` optional): Caffe's overflow-free form
      term_i = x_i * (t_i - [x_i >= 0]) - log(1 + exp(x_i - 2 x_i [x_i >= 0]))
      loss = -sum over valid i of term_i, valid_i = (t_i != ignore) (all valid without ignore)
  Forward writes per-element ``loss_terms`` (0 where ignored) and ``valid`` (1/0) into two scratch
  arrays, then ``kernels.reduce.reduce_sum`` folds each to a host scalar (2 reads).
  Backward: dx_i = scale * (sigmoid(x_i) - t_i), 0 where ignored; sigmoid in Caffe's
  0.5*tanh(0.5x) + 0.5 form (the cpu backend's).
- contrastive (a, b: (N, D); sim: N floats, nonzero = similar pair; margin; legacy):
      diff = a - b, dist_sq[n] = sum_d diff[n, d]^2,
      term[n] = dist_sq[n] if similar
              else max(margin - dist_sq[n], 0)          (legacy_version)
              else max(margin - sqrt(dist_sq[n]), 0)^2
      loss = sum_n term[n]   (the layer divides by 2N)
  Backward (one bottom, sign +1 for a, -1 for b):
      dx[n, d] = sign * scale * g[n] * diff[n, d], g = 1 if similar; dissimilar: legacy: -1 if
      margin - dist_sq > 0 else 0; else -(margin - d)/(d + 1e-4) if margin - d > 0 else 0,
      d = sqrt(dist_sq).
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
  Hinge, multinomial logistic and infogain forwards also flag labels outside [0, dim) (the wrappers
  raise ValueError naming one); no kernel reads or writes out of bounds for such a label.

Versions (v1 each, memory bound):
- ``sigmoid_ce_fwd_v1`` / ``sigmoid_ce_bwd_v1``: one thread per element, grid-stride.
- ``contrastive_fwd_v1``: one thread per pair n (loops over the D features: diff and dist_sq and
  the pair's loss term); ``contrastive_bwd_v1``: one thread per element (n, d), grid-stride.
- ``hinge_fwd_v1``, ``mlogistic_fwd_v1``, ``infogain_fwd_v1``: one thread per element (hinge) or
  position, writing per-position terms into scratch buffers (``kernels._launch.scratch``) that
  ``kernels.reduce`` folds (deterministic, no atomics); the backward kernels one thread per element
  of dx; ``infogain_rowsum_v1`` one thread per row of H.

Launch geometry: ``kernels._launch.launch_1d`` (a capped grid-stride grid) over the element,
position or pair count, cached per size.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._index import flat_checked
from kernels._launch import as_device, launch_1d, scratch
from kernels.reduce import asum, reduce_sum, sumsq

_ZERO = float32(0.0)
_ONE = float32(1.0)
_HALF = float32(0.5)
_TWO = float32(2.0)
_EPS = float32(1e-4)     # Caffe's ContrastiveLossLayer epsilon in the non-legacy gradient
LOG_THRESHOLD = float32(1e-20)     # Caffe's kLOG_THRESHOLD
HINGE_L1 = 1                       # HingeLossParameter.Norm values
HINGE_L2 = 2


@cuda.jit
def sigmoid_ce_fwd_v1(x, t, terms, valid, n, has_ignore, ignore):
    """terms[i] = -(x*(t - (x >= 0)) - log(1 + exp(x - 2x(x >= 0)))), valid[i] = 1; both 0 where
    t == ignore."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ti = t[i]
        if has_ignore != 0 and int64(ti) == ignore:
            terms[i] = _ZERO
            valid[i] = _ZERO
        else:
            xi = x[i]
            pos = _ONE if xi >= _ZERO else _ZERO
            terms[i] = -(xi * (ti - pos) - math.log(_ONE + math.exp(xi - _TWO * xi * pos)))
            valid[i] = _ONE


@cuda.jit
def sigmoid_ce_bwd_v1(x, t, dx, n, scale, has_ignore, ignore):
    """dx = scale * (sigmoid(x) - t), 0 where t == ignore."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ti = t[i]
        if has_ignore != 0 and int64(ti) == ignore:
            dx[i] = _ZERO
        else:
            sig = _HALF * math.tanh(_HALF * x[i]) + _HALF
            dx[i] = scale * (sig - ti)


@cuda.jit
def contrastive_fwd_v1(a, b, sim, diff, dist_sq, terms, N, D, margin, legacy):
    """Pair n: diff[n, :] = a - b, dist_sq[n] = |diff|^2, terms[n] = the pair's loss term."""
    for p in range(cuda.grid(1), N, cuda.gridsize(1)):
        acc = _ZERO
        base = p * D
        for d in range(D):
            v = a[base + d] - b[base + d]
            diff[base + d] = v
            acc += v * v
        dist_sq[p] = acc
        if sim[p] != _ZERO:
            terms[p] = acc
        elif legacy != 0:
            terms[p] = max(margin - acc, _ZERO)
        else:
            m = max(margin - math.sqrt(acc), _ZERO)
            terms[p] = m * m


@cuda.jit
def contrastive_bwd_v1(diff, dist_sq, sim, dx, N, D, coef, margin, legacy):
    """dx[n, d] = coef * g[n] * diff[n, d] (coef = sign * scale; g as in the module docstring)."""
    for i in range(cuda.grid(1), N * D, cuda.gridsize(1)):
        p = i // D
        if sim[p] != _ZERO:
            g = _ONE
        elif legacy != 0:
            g = -_ONE if margin - dist_sq[p] > _ZERO else _ZERO
        else:
            dist = math.sqrt(dist_sq[p])
            mdist = margin - dist
            g = -mdist / (dist + _EPS) if mdist > _ZERO else _ZERO
        dx[i] = coef * g * diff[i]


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
    "sigmoid_ce_fwd_v1": (sigmoid_ce_fwd_v1, [void(_F, _F, _F, _F, _I, _I, _I)]),
    "sigmoid_ce_bwd_v1": (sigmoid_ce_bwd_v1, [void(_F, _F, _F, _I, float32, _I, _I)]),
    "contrastive_fwd_v1": (contrastive_fwd_v1, [void(_F, _F, _F, _F, _F, _F, _I, _I, float32, _I)]),
    "contrastive_bwd_v1": (contrastive_bwd_v1, [void(_F, _F, _F, _F, _I, _I, float32, float32, _I)]),
    "hinge_fwd_v1": (hinge_fwd_v1, [void(_F, _F, _F, _F, _I)]),
    "hinge_bwd_v1": (hinge_bwd_v1, [void(_F, _F, _F, _I, _I, float32)]),
    "mlogistic_fwd_v1": (mlogistic_fwd_v1, [void(_F, _F, _F, _F, _I)]),
    "mlogistic_bwd_v1": (mlogistic_bwd_v1, [void(_F, _F, _F, _I, float32)]),
    "infogain_fwd_v1": (infogain_fwd_v1, [void(_F, _F, _F, _F, _F, _F, _I, _I, _I, _I)]),
    "infogain_rowsum_v1": (infogain_rowsum_v1, [void(_F, _F, _I)]),
    "infogain_bwd_v1": (infogain_bwd_v1, [void(_F, _F, _F, _F, _F, _I, _I, _I, _I, float32)]),
}


# ------------------------------------------------------------------------------------- public API

def _ignore(ignore_label: int | None) -> tuple[int, int]:
    return (0, 0) if ignore_label is None else (1, int(ignore_label))


def sigmoid_ce_fwd(x: Any, target: Any, ignore_label: int | None = None) -> tuple[float, int]:
    """Caffe SigmoidCrossEntropyLoss forward: (sum over non-ignored i of the stable cross-entropy
    term, number of non-ignored i) as host values. x, target: same number of float32 elements."""
    xf, tf = flat_checked("sigmoid_ce_fwd", x), flat_checked("sigmoid_ce_fwd", target)
    if xf.size != tf.size:
        raise ValueError(f"sigmoid_ce_fwd: x has {xf.size} elements, target {tf.size}")
    n = xf.size
    if n == 0:
        return 0.0, 0
    terms, valid = scratch("loss.terms", n), scratch("loss.valid", n)
    launch_1d(sigmoid_ce_fwd_v1, n, xf, tf, terms, valid, n, *_ignore(ignore_label))
    return float(reduce_sum(terms)), int(round(reduce_sum(valid)))


def sigmoid_ce_bwd(x: Any, target: Any, dx: Any, scale: float, ignore_label: int | None = None) -> None:
    """dx = scale * (sigmoid(x) - target), 0 where target == ignore_label (dx written)."""
    xf, tf, dxf = (flat_checked("sigmoid_ce_bwd", a) for a in (x, target, dx))
    if not xf.size == tf.size == dxf.size:
        raise ValueError(f"sigmoid_ce_bwd: sizes differ ({xf.size}, {tf.size}, {dxf.size})")
    n = xf.size
    launch_1d(sigmoid_ce_bwd_v1, n, xf, tf, dxf, n, np.float32(scale), *_ignore(ignore_label))


def _pairs(name: str, a: Any, sim: Any) -> tuple[int, int]:
    if len(a.shape) < 1:
        raise ValueError(f"{name}: expected (N, D) arrays")
    n = int(a.shape[0])
    d = a.size // max(n, 1)
    if sim.size != n:
        raise ValueError(f"{name}: {sim.size} similarity labels for {n} pairs")
    return n, d


def contrastive_fwd(a: Any, b: Any, sim: Any, diff: Any, dist_sq: Any, margin: float,
                    legacy: bool = False) -> float:
    """Caffe ContrastiveLoss forward on (N, D) a, b: writes diff = a - b and dist_sq (N,); returns
    the host sum of the per-pair terms (the layer divides by 2N)."""
    A, B, S, DF, DS = (as_device(v) for v in (a, b, sim, diff, dist_sq))
    n, d = _pairs("contrastive_fwd", A, S)
    af, bf, sf, df, dsf = (flat_checked("contrastive_fwd", v) for v in (A, B, S, DF, DS))
    if not af.size == bf.size == df.size or dsf.size != n:
        raise ValueError("contrastive_fwd: a, b, diff must be (N, D) and dist_sq (N,)")
    if n == 0:
        return 0.0
    terms = scratch("loss.pair_terms", n)
    launch_1d(contrastive_fwd_v1, n, af, bf, sf, df, dsf, terms, n, d, np.float32(margin),
              int(bool(legacy)))
    return float(reduce_sum(terms))


def contrastive_bwd(diff: Any, dist_sq: Any, sim: Any, dx: Any, sign: float, margin: float,
                    legacy: bool, scale: float) -> None:
    """dx (N, D) = sign * scale * g_n * diff_n (see the module docstring); dx written."""
    DF, S = as_device(diff), as_device(sim)
    n, d = _pairs("contrastive_bwd", DF, S)
    df, dsf, sf, dxf = (flat_checked("contrastive_bwd", v) for v in (DF, dist_sq, S, dx))
    if dxf.size != df.size or dsf.size != n:
        raise ValueError("contrastive_bwd: dx must match diff (N, D) and dist_sq be (N,)")
    launch_1d(contrastive_bwd_v1, df.size, df, dsf, sf, dxf, n, d, np.float32(sign * scale),
              np.float32(margin), int(bool(legacy)))


def _check_bad(name: str, bad: Any, label: Any, dim: int) -> None:
    """Raise ValueError naming the first label outside [0, dim) when the device counted any."""
    if bad.size and reduce_sum(bad) > 0:
        lab = label.copy_to_host()
        flags = bad.copy_to_host()
        first = int(np.flatnonzero(flags)[0])
        raise ValueError(f"label {int(lab[first])} outside [0, {dim})")


def hinge_loss_fwd(x: Any, label: Any, margin: Any, num: int, dim: int, norm: int) -> float:
    """Writes the hinge margins m (num, dim) and returns sum |m| (L1) or sum m^2 (L2) on the host."""
    xf, mf = flat_checked("hinge_loss_fwd", x, num * dim), flat_checked("hinge_loss_fwd", margin, num * dim)
    lf = flat_checked("hinge_loss_fwd", label, num)
    if num * dim == 0:
        return 0.0
    bad = scratch("loss.bad", num)
    launch_1d(hinge_fwd_v1, num * dim, xf, lf, mf, bad, dim)
    _check_bad("hinge_loss_fwd", bad, lf, dim)
    return float(asum(mf) if norm == HINGE_L1 else sumsq(mf))


def hinge_loss_bwd(margin: Any, label: Any, dx: Any, num: int, dim: int, norm: int,
                   scale: float) -> None:
    """dx = scale * s * (sign(m) for L1, m for L2) (dx written)."""
    mf, dxf = flat_checked("hinge_loss_bwd", margin, num * dim), flat_checked("hinge_loss_bwd", dx, num * dim)
    lf = flat_checked("hinge_loss_bwd", label, num)
    launch_1d(hinge_bwd_v1, num * dim, mf, lf, dxf, dim, int(norm), np.float32(scale))


def multinomial_logistic_loss_fwd(prob: Any, label: Any, num: int, dim: int) -> float:
    """sum over i of -log(max(prob[i, label_i], 1e-20)) as a host float."""
    pf, lf = flat_checked("mlogistic_fwd", prob, num * dim), flat_checked("mlogistic_fwd", label, num)
    if num == 0:
        return 0.0
    terms, bad = scratch("loss.terms", num), scratch("loss.bad", num)
    launch_1d(mlogistic_fwd_v1, num, pf, lf, terms, bad, dim)
    _check_bad("multinomial_logistic_loss_fwd", bad, lf, dim)
    return float(reduce_sum(terms))


def multinomial_logistic_loss_bwd(prob: Any, label: Any, dx: Any, num: int, dim: int,
                                  scale: float) -> None:
    """dx = 0 except dx[i, label_i] = scale / max(prob[i, label_i], 1e-20) (dx written)."""
    pf, dxf = flat_checked("mlogistic_bwd", prob, num * dim), flat_checked("mlogistic_bwd", dx, num * dim)
    lf = flat_checked("mlogistic_bwd", label, num)
    launch_1d(mlogistic_bwd_v1, num * dim, pf, lf, dxf, dim, np.float32(scale))


def infogain_loss_fwd(prob: Any, label: Any, h: Any, outer: int, dim: int, inner: int,
                      ignore_label: int | None) -> tuple[float, int]:
    """(sum of the infogain terms, number of non-ignored positions) as host values."""
    npos = outer * inner
    pf = flat_checked("infogain_fwd", prob, npos * dim)
    lf, hf = flat_checked("infogain_fwd", label, npos), flat_checked("infogain_fwd", h, dim * dim)
    if npos == 0:
        return 0.0, 0
    terms, valid, bad = scratch("loss.terms", npos), scratch("loss.valid", npos), scratch("loss.bad", npos)
    launch_1d(infogain_fwd_v1, npos, pf, lf, hf, terms, valid, bad, dim, inner, *_ignore(ignore_label))
    _check_bad("infogain_loss_fwd", bad, lf, dim)
    return float(reduce_sum(terms)), int(round(reduce_sum(valid)))


def infogain_loss_bwd(prob: Any, label: Any, h: Any, dx: Any, outer: int, dim: int, inner: int,
                      ignore_label: int | None, scale: float) -> None:
    """dx = scale * (prob * rowsum(H)[label] - H[label, :]), 0 at ignored positions (written)."""
    npos = outer * inner
    pf, dxf = flat_checked("infogain_bwd", prob, npos * dim), flat_checked("infogain_bwd", dx, npos * dim)
    lf, hf = flat_checked("infogain_bwd", label, npos), flat_checked("infogain_bwd", h, dim * dim)
    if npos * dim == 0:
        return
    rowsum = scratch("loss.rowsum", dim)
    launch_1d(infogain_rowsum_v1, dim, hf, rowsum, dim)
    launch_1d(infogain_bwd_v1, npos * dim, pf, lf, hf, rowsum, dxf, dim, inner, *_ignore(ignore_label),
            np.float32(scale))
