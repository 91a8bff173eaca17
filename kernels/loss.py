"""Loss layers: Caffe's SigmoidCrossEntropyLoss and ContrastiveLoss, forward and backward
(SoftmaxWithLoss lives with the softmax in ``kernels/softmax.py``).

Math (float32; x, t, a, b, diff, dx are C-contiguous; any shape, flattened where stated):

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

Versions (v1 each, memory bound):
- ``sigmoid_ce_fwd_v1`` / ``sigmoid_ce_bwd_v1``: one thread per element, grid-stride.
- ``contrastive_fwd_v1``: one thread per pair n (loops over the D features: diff and dist_sq and
  the pair's loss term); ``contrastive_bwd_v1``: one thread per element (n, d), grid-stride.

Launch geometry: ``kernels._launch.grid_1d`` (256 threads per block, capped grid-stride) over the
element or pair count, cached per size.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import as_device, grid_1d, scratch
from kernels.reduce import reduce_sum

_ZERO = float32(0.0)
_ONE = float32(1.0)
_HALF = float32(0.5)
_TWO = float32(2.0)
_EPS = float32(1e-4)     # Caffe's ContrastiveLossLayer epsilon in the non-legacy gradient


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


_F = float32[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "sigmoid_ce_fwd_v1": (sigmoid_ce_fwd_v1, [void(_F, _F, _F, _F, _I, _I, _I)]),
    "sigmoid_ce_bwd_v1": (sigmoid_ce_bwd_v1, [void(_F, _F, _F, _I, float32, _I, _I)]),
    "contrastive_fwd_v1": (contrastive_fwd_v1, [void(_F, _F, _F, _F, _F, _F, _I, _I, float32, _I)]),
    "contrastive_bwd_v1": (contrastive_bwd_v1, [void(_F, _F, _F, _F, _I, _I, float32, float32, _I)]),
}


# ------------------------------------------------------------------------------------- public API

def _flat(a: Any, name: str) -> Any:
    d = as_device(a)
    if d.dtype != np.float32:
        raise TypeError(f"{name}: expected float32 arrays, got {d.dtype}")
    return d if len(d.shape) == 1 else d.reshape(d.size)


def _ignore(ignore_label: int | None) -> tuple[int, int]:
    return (0, 0) if ignore_label is None else (1, int(ignore_label))


def sigmoid_ce_fwd(x: Any, target: Any, ignore_label: int | None = None) -> tuple[float, int]:
    """Caffe SigmoidCrossEntropyLoss forward: (sum over non-ignored i of the stable cross-entropy
    term, number of non-ignored i) as host values. x, target: same number of float32 elements."""
    xf, tf = _flat(x, "sigmoid_ce_fwd"), _flat(target, "sigmoid_ce_fwd")
    if xf.size != tf.size:
        raise ValueError(f"sigmoid_ce_fwd: x has {xf.size} elements, target {tf.size}")
    n = xf.size
    if n == 0:
        return 0.0, 0
    terms, valid = scratch("loss.terms", n), scratch("loss.valid", n)
    blocks, threads = grid_1d(n)
    sigmoid_ce_fwd_v1[blocks, threads](xf, tf, terms, valid, n, *_ignore(ignore_label))
    return float(reduce_sum(terms)), int(round(reduce_sum(valid)))


def sigmoid_ce_bwd(x: Any, target: Any, dx: Any, scale: float, ignore_label: int | None = None) -> None:
    """dx = scale * (sigmoid(x) - target), 0 where target == ignore_label (dx written)."""
    xf, tf, dxf = (_flat(a, "sigmoid_ce_bwd") for a in (x, target, dx))
    if not xf.size == tf.size == dxf.size:
        raise ValueError(f"sigmoid_ce_bwd: sizes differ ({xf.size}, {tf.size}, {dxf.size})")
    n = xf.size
    if n:
        blocks, threads = grid_1d(n)
        sigmoid_ce_bwd_v1[blocks, threads](xf, tf, dxf, n, np.float32(scale), *_ignore(ignore_label))


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
    af, bf, sf, df, dsf = (_flat(v, "contrastive_fwd") for v in (A, B, S, DF, DS))
    if not af.size == bf.size == df.size or dsf.size != n:
        raise ValueError("contrastive_fwd: a, b, diff must be (N, D) and dist_sq (N,)")
    if n == 0:
        return 0.0
    terms = scratch("loss.pair_terms", n)
    blocks, threads = grid_1d(n)
    contrastive_fwd_v1[blocks, threads](af, bf, sf, df, dsf, terms, n, d, np.float32(margin),
                                        int(bool(legacy)))
    return float(reduce_sum(terms))


def contrastive_bwd(diff: Any, dist_sq: Any, sim: Any, dx: Any, sign: float, margin: float,
                    legacy: bool, scale: float) -> None:
    """dx (N, D) = sign * scale * g_n * diff_n (see the module docstring); dx written."""
    DF, S = as_device(diff), as_device(sim)
    n, d = _pairs("contrastive_bwd", DF, S)
    df, dsf, sf, dxf = (_flat(v, "contrastive_bwd") for v in (DF, dist_sq, S, dx))
    if dxf.size != df.size or dsf.size != n:
        raise ValueError("contrastive_bwd: dx must match diff (N, D) and dist_sq be (N,)")
    if df.size:
        blocks, threads = grid_1d(df.size)
        contrastive_bwd_v1[blocks, threads](df, dsf, sf, dxf, n, d, np.float32(sign * scale),
                                            np.float32(margin), int(bool(legacy)))
