"""Softmax, softmax-with-loss and top-k accuracy over one axis, with Caffe's semantics.

Every array is viewed as (outer, C, inner): ``axis`` splits the shape (Caffe's CanonicalAxisIndex,
negative axes count from the end), outer = prod(shape[:axis]), C = shape[axis],
inner = prod(shape[axis+1:]); for NCHW with axis 1 that is (N, C, H*W). Labels are float32 arrays of
outer*inner integers (Caffe stores labels as float; the value is truncated toward zero as
``static_cast<int>``).

Math, per position (o, s):
    softmax      y[o,c,s] = exp(x[o,c,s] - m) / sum_c' exp(x[o,c',s] - m),  m = max_c x[o,c,s]
                 (subtracting the max keeps exp <= 1: logits of 1e4 do not overflow)
    softmax bwd  dx[o,c,s] = (dy[o,c,s] - sum_c' dy[o,c',s]*y[o,c',s]) * y[o,c,s]
    loss fwd     l[o,s] = -log(max(prob[o,label,s], FLT_MIN)), 0 where label == ignore_label;
                 returns (sum of l, number of non-ignored positions) to the host; the caller divides
                 by ``loss_normalizer`` (Caffe's get_normalizer) and multiplies by the loss weight
    loss bwd     dx[o,c,s] = (prob[o,c,s] - (c == label)) * scale, 0 for ignored positions; the
                 caller passes scale = loss_weight / loss_normalizer(...)
    accuracy     position counts as correct when the label's score ranks among the top k:
                 ties="cpu" (Caffe's accuracy_layer.cpp: std::partial_sort of (score, index) pairs
                 with std::greater, so equal scores rank the LARGER index first):
                     rank = #{k : s_k > s_label} + #{k > label : s_k == s_label}
                 ties="gpu" (Caffe's accuracy_layer.cu: every other class with an equal score
                 counts as better):  rank = #{k != label : s_k >= s_label}
                 correct when rank < top_k; returns (correct count, non-ignored count); optional
                 per-class (2, C) int32 counts: row 0 correct, row 1 seen, per label value.

Out-of-range labels (not ignored, outside [0, C)): no kernel reads or writes out of bounds; the
forward and accuracy kernels count them and the Python function raises ValueError (Caffe's GPU code
would read out of bounds; its CPU code DCHECKs). The loss backward leaves such positions as
prob*scale.

Versions:
    softmax_fwd_v1 / softmax_bwd_v1      one thread per (o, s) position, three (two) passes over C
                                         (coalesced over s when inner > 1)
    softmax_fwd_v2 / softmax_bwd_v2      one block per position, threads stride over C, max / sum /
                                         dot by shared-memory trees (rows of C >= 128 with
                                         inner == 1; the public functions pick it there)
    softmax_loss_fwd_v1, accuracy_fwd_v1 one thread per position, block tree reduction in shared
                                         memory -> one partial per block
    partial_sum_fwd_v1                   one block folds the per-block partials (deterministic order:
                                         no float atomics)
    softmax_loss_bwd_v1                  one thread per element of dx

Launch geometry: 1-D grid-stride loops; SOFTMAX_THREADS threads per block over positions/elements,
SOFTMAX_ROW_THREADS per block and one block per position (grid-stride over positions) for v2,
REDUCE_THREADS (a power of two) for the reductions; block counts from ``kernels._launch.grid_1d``
(capped, cached per size).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._launch import as_device, grid_1d

SOFTMAX_THREADS = 256       # threads per block for the per-position / per-element kernels
REDUCE_THREADS = 256        # threads per block of the reductions; a power of two (tree halves it)
SOFTMAX_ROW_THREADS = 128   # softmax v2: threads per block, one block per position; a power of two
SOFTMAX_ROW_MIN_C = 128     # softmax_fwd/bwd pick v2 when inner == 1 and C >= this (v1 otherwise)
NEG_FLT_MAX = np.float32(-np.finfo(np.float32).max)
FLT_MIN = np.float32(np.finfo(np.float32).tiny)     # Caffe's floor on the label's probability

_ZERO = float32(0.0)
_ONE = float32(1.0)


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit
def softmax_fwd_v1(x, y, C, inner):
    """y = exp(x - max) / sum exp(x - max) over the C channels of each (o, s) position."""
    for p in range(cuda.grid(1), x.size // C, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        m = x[base]
        for c in range(1, C):
            m = max(m, x[base + c * inner])
        total = _ZERO
        for c in range(C):
            e = math.exp(x[base + c * inner] - m)
            y[base + c * inner] = e
            total += e
        for c in range(C):
            y[base + c * inner] = y[base + c * inner] / total


@cuda.jit
def softmax_bwd_v1(dy, y, dx, C, inner):
    """dx = (dy - sum_c dy*y) * y over the C channels of each (o, s) position."""
    for p in range(cuda.grid(1), y.size // C, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        dot = _ZERO
        for c in range(C):
            dot += dy[base + c * inner] * y[base + c * inner]
        for c in range(C):
            dx[base + c * inner] = (dy[base + c * inner] - dot) * y[base + c * inner]


@cuda.jit
def softmax_fwd_v2(x, y, C, inner):
    """One block per (o, s) position: the block's threads stride over the C channels and combine
    the max and the sum of exponentials by shared-memory tree reductions (for large C, inner 1)."""
    sh = cuda.shared.array(SOFTMAX_ROW_THREADS, float32)
    t = cuda.threadIdx.x
    for p in range(cuda.blockIdx.x, x.size // C, cuda.gridDim.x):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        m = NEG_FLT_MAX                             # Caffe's kernel_channel_max start
        for c in range(t, C, SOFTMAX_ROW_THREADS):
            m = max(m, x[base + c * inner])
        sh[t] = m
        cuda.syncthreads()      # every thread's partial max is stored before the tree reads it
        half = SOFTMAX_ROW_THREADS // 2
        while half > 0:
            if t < half:
                sh[t] = max(sh[t], sh[t + half])
            cuda.syncthreads()  # this level's maxima are written before the next level reads
            half //= 2
        m = sh[0]
        cuda.syncthreads()      # every thread has read the max before sh is reused for the sum
        total = _ZERO
        for c in range(t, C, SOFTMAX_ROW_THREADS):
            e = math.exp(x[base + c * inner] - m)
            y[base + c * inner] = e
            total += e
        sh[t] = total
        cuda.syncthreads()      # every partial sum is stored before the tree reads it
        half = SOFTMAX_ROW_THREADS // 2
        while half > 0:
            if t < half:
                sh[t] += sh[t + half]
            cuda.syncthreads()  # this level's sums are written before the next level reads
            half //= 2
        total = sh[0]
        for c in range(t, C, SOFTMAX_ROW_THREADS):
            y[base + c * inner] = y[base + c * inner] / total
        cuda.syncthreads()      # every thread has read the sum before the next position reuses sh


@cuda.jit
def softmax_bwd_v2(dy, y, dx, C, inner):
    """One block per (o, s) position: dot = sum_c dy*y by a shared-memory tree, then dx."""
    sh = cuda.shared.array(SOFTMAX_ROW_THREADS, float32)
    t = cuda.threadIdx.x
    for p in range(cuda.blockIdx.x, y.size // C, cuda.gridDim.x):
        o = p // inner
        s = p % inner
        base = o * C * inner + s
        dot = _ZERO
        for c in range(t, C, SOFTMAX_ROW_THREADS):
            dot += dy[base + c * inner] * y[base + c * inner]
        sh[t] = dot
        cuda.syncthreads()      # every partial dot product is stored before the tree reads it
        half = SOFTMAX_ROW_THREADS // 2
        while half > 0:
            if t < half:
                sh[t] += sh[t + half]
            cuda.syncthreads()  # this level's sums are written before the next level reads
            half //= 2
        dot = sh[0]
        for c in range(t, C, SOFTMAX_ROW_THREADS):
            dx[base + c * inner] = (dy[base + c * inner] - dot) * y[base + c * inner]
        cuda.syncthreads()      # every thread has read the dot before the next position reuses sh



@cuda.jit(device=True, inline=True)
def _block_sum_f3i(f, a, b, c, out_f, out_i, slot):
    """Block tree reduction of each thread's float f and int32 counters a, b, c; thread 0 stores
    the block's sums in out_f[slot] and out_i[0..2, slot]. Called by every thread of the block."""
    sh_f = cuda.shared.array(REDUCE_THREADS, float32)
    sh_i = cuda.shared.array((3, REDUCE_THREADS), int32)
    t = cuda.threadIdx.x
    sh_f[t] = f
    sh_i[0, t] = a
    sh_i[1, t] = b
    sh_i[2, t] = c
    cuda.syncthreads()      # every thread's values are in shared memory before the tree reads them
    half = REDUCE_THREADS // 2
    while half > 0:
        if t < half:
            sh_f[t] += sh_f[t + half]
            for r in range(3):
                sh_i[r, t] += sh_i[r, t + half]
        cuda.syncthreads()  # this level's sums are written before the next, smaller level reads
        half //= 2
    if t == 0:
        out_f[slot] = sh_f[0]
        for r in range(3):
            out_i[r, slot] = sh_i[r, 0]

@cuda.jit
def softmax_loss_fwd_v1(prob, label, partial_f, partial_i, C, inner, has_ignore, ignore_label):
    """Per block: sum of -log(max(prob[label], FLT_MIN)), count of valid and of out-of-range labels."""
    loss = _ZERO
    valid = 0
    bad = 0
    for p in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        label_value = int(label[p])
        if has_ignore != 0 and label_value == ignore_label:
            continue
        if label_value < 0 or label_value >= C:
            bad += 1
            continue
        loss -= math.log(max(prob[(o * C + label_value) * inner + s], FLT_MIN))
        valid += 1
    _block_sum_f3i(loss, valid, bad, 0, partial_f, partial_i, cuda.blockIdx.x)


@cuda.jit
def accuracy_fwd_v1(scores, label, partial_f, partial_i, per_class, C, inner, top_k, has_ignore,
                    ignore_label, gpu_ties, want_per_class):
    """Per block: count of positions whose label ranks in the top k, of valid and of bad labels."""
    correct = 0
    valid = 0
    bad = 0
    for p in range(cuda.grid(1), label.size, cuda.gridsize(1)):
        o = p // inner
        s = p % inner
        label_value = int(label[p])
        if has_ignore != 0 and label_value == ignore_label:
            continue
        if label_value < 0 or label_value >= C:
            bad += 1
            continue
        base = o * C * inner + s
        true_score = scores[base + label_value * inner]
        rank = 0
        for c in range(C):
            v = scores[base + c * inner]
            if gpu_ties != 0:
                rank += 1 if (c != label_value and v >= true_score) else 0
            else:
                rank += 1 if (v > true_score or (v == true_score and c > label_value)) else 0
        hit = 1 if rank < top_k else 0
        correct += hit
        valid += 1
        if want_per_class != 0:
            cuda.atomic.add(per_class, (0, label_value), hit)
            cuda.atomic.add(per_class, (1, label_value), 1)
    _block_sum_f3i(_ZERO, correct, valid, bad, partial_f, partial_i, cuda.blockIdx.x)


@cuda.jit
def accuracy_clear_fwd_v1(per_class):
    """per_class (2, C) = 0 before the per-class atomics."""
    for i in range(cuda.grid(1), per_class.shape[1], cuda.gridsize(1)):
        per_class[0, i] = 0
        per_class[1, i] = 0


@cuda.jit
def partial_sum_fwd_v1(partial_f, partial_i, out_f, out_i):
    """One block: out_f[0] = sum partial_f, out_i[r] = sum partial_i[r, :] for r = 0, 1, 2."""
    f = _ZERO
    a = 0
    b = 0
    c = 0
    for j in range(cuda.threadIdx.x, partial_f.size, REDUCE_THREADS):
        f += partial_f[j]
        a += partial_i[0, j]
        b += partial_i[1, j]
        c += partial_i[2, j]
    _block_sum_f3i(f, a, b, c, out_f, out_i, 0)


@cuda.jit
def softmax_loss_bwd_v1(prob, label, dx, C, inner, scale, has_ignore, ignore_label):
    """dx = (prob - onehot(label)) * scale; 0 over the C channels of ignored positions."""
    for i in range(cuda.grid(1), prob.size, cuda.gridsize(1)):
        s = i % inner
        c = (i // inner) % C
        o = i // (inner * C)
        label_value = int(label[o * inner + s])
        if has_ignore != 0 and label_value == ignore_label:
            dx[i] = _ZERO
        else:
            dx[i] = (prob[i] - float32(c == label_value)) * scale


_F = float32[::1]
_I2 = int32[:, ::1]

KERNELS: dict[str, tuple[Any, list]] = {
    "softmax_fwd_v1": (softmax_fwd_v1, [void(_F, _F, int64, int64)]),
    "softmax_bwd_v1": (softmax_bwd_v1, [void(_F, _F, _F, int64, int64)]),
    "softmax_fwd_v2": (softmax_fwd_v2, [void(_F, _F, int64, int64)]),
    "softmax_bwd_v2": (softmax_bwd_v2, [void(_F, _F, _F, int64, int64)]),
    "softmax_loss_fwd_v1": (softmax_loss_fwd_v1,
                            [void(_F, _F, _F, _I2, int64, int64, int64, int64)]),
    "accuracy_fwd_v1": (accuracy_fwd_v1,
                        [void(_F, _F, _F, _I2, _I2, int64, int64, int64, int64, int64, int64, int64)]),
    "accuracy_clear_fwd_v1": (accuracy_clear_fwd_v1, [void(_I2)]),
    "partial_sum_fwd_v1": (partial_sum_fwd_v1, [void(_F, _I2, _F, _I2)]),
    "softmax_loss_bwd_v1": (softmax_loss_bwd_v1,
                            [void(_F, _F, _F, int64, int64, float32, int64, int64)]),
}


# ------------------------------------------------------------------------------------- public API

def axis_view(shape: tuple[int, ...], axis: int = 1) -> tuple[int, int, int]:
    """(outer, C, inner) of ``shape`` split at ``axis`` (negative counts from the end)."""
    nd = len(shape)
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} out of range for a {nd}-D shape {tuple(shape)}")
    axis %= nd
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, int(shape[axis]), inner


def _dev(a: Any, dtype=np.float32) -> Any:
    d = as_device(a)
    if d.dtype != dtype:
        raise TypeError(f"expected a {np.dtype(dtype).name} array, got {d.dtype}")
    return d


def _same_shape(*arrays: Any) -> None:
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"softmax arrays must have one shape, got {[tuple(a.shape) for a in arrays]}")


def _ignore(ignore_label: int | None) -> tuple[int, int]:
    return (0, 0) if ignore_label is None else (1, int(ignore_label))


def _softmax_launch(version: int | None, C: int, inner: int, positions: int):
    """(kernel version, blocks, threads): v2 (a block per position) for long rows with inner == 1
    (classification heads: C = 1000 over a batch), v1 (a thread per position) otherwise."""
    if version is None:
        version = 2 if inner == 1 and C >= SOFTMAX_ROW_MIN_C else 1
    if version == 2:
        return 2, *grid_1d(positions * SOFTMAX_ROW_THREADS, SOFTMAX_ROW_THREADS)
    if version != 1:
        raise ValueError(f"softmax version must be 1 or 2, got {version}")
    return 1, *grid_1d(positions, SOFTMAX_THREADS)


def softmax_fwd(x: Any, y: Any, axis: int = 1, version: int | None = None) -> None:
    """Softmax of x over ``axis`` into y (same shape; y may be x), max-subtracted. ``version``:
    None picks v2 for inner == 1 and C >= SOFTMAX_ROW_MIN_C, else v1."""
    x, y = _dev(x), _dev(y)
    _same_shape(x, y)
    outer, C, inner = axis_view(x.shape, axis)
    if outer * C * inner == 0:
        return
    v, blocks, threads = _softmax_launch(version, C, inner, outer * inner)
    kernel = softmax_fwd_v2 if v == 2 else softmax_fwd_v1
    kernel[blocks, threads](x.reshape(x.size), y.reshape(y.size), C, inner)


def softmax_bwd(dy: Any, y: Any, dx: Any, axis: int = 1, version: int | None = None) -> None:
    """Softmax backward: dx = (dy - sum_axis(dy*y)) * y (all the same shape; dx may be dy).
    ``version`` as for ``softmax_fwd``."""
    dy, y, dx = _dev(dy), _dev(y), _dev(dx)
    _same_shape(dy, y, dx)
    outer, C, inner = axis_view(y.shape, axis)
    if outer * C * inner == 0:
        return
    v, blocks, threads = _softmax_launch(version, C, inner, outer * inner)
    kernel = softmax_bwd_v2 if v == 2 else softmax_bwd_v1
    kernel[blocks, threads](dy.reshape(dy.size), y.reshape(y.size), dx.reshape(dx.size), C, inner)


def _labels(label: Any, outer: int, inner: int) -> Any:
    label = _dev(label)
    if label.size != outer * inner:
        raise ValueError(f"{label.size} labels for {outer}x{inner} positions (need one label per "
                         f"position: outer*inner = {outer * inner})")
    return label.reshape(label.size)


def _reduce(kernel, n_positions: int, *args) -> tuple[float, int, int, int]:
    """Launch a per-block reduction kernel then fold its partials; 4 host scalars."""
    blocks, threads = grid_1d(n_positions, REDUCE_THREADS)
    partial_f = cuda.device_array(blocks, np.float32)
    partial_i = cuda.device_array((3, blocks), np.int32)
    kernel[blocks, threads](args[0], args[1], partial_f, partial_i, *args[2:])
    out_f = cuda.device_array(1, np.float32)
    out_i = cuda.device_array((3, 1), np.int32)
    partial_sum_fwd_v1[1, REDUCE_THREADS](partial_f, partial_i, out_f, out_i)
    f, i = out_f.copy_to_host(), out_i.copy_to_host()
    return float(f[0]), int(i[0, 0]), int(i[1, 0]), int(i[2, 0])


def _check_bad(bad: int, C: int, ignore_label: int | None, what: str) -> None:
    if bad:
        extra = "" if ignore_label is None else f" (or ignore_label {ignore_label})"
        raise ValueError(f"{what}: {bad} label(s) outside [0, {C}); labels must be class indices "
                         f"0..{C - 1}{extra}")


def softmax_loss_fwd(prob: Any, label: Any, axis: int = 1,
                     ignore_label: int | None = None) -> tuple[float, int]:
    """Multinomial logistic loss of softmax probabilities (Caffe's SoftmaxWithLoss forward after
    its internal softmax): returns (sum over positions of -log(max(prob[label], FLT_MIN)),
    number of non-ignored positions) as host scalars. prob (outer, C, inner) via ``axis``,
    label outer*inner float32 values. Raises ValueError for labels outside [0, C)."""
    prob = _dev(prob)
    outer, C, inner = axis_view(prob.shape, axis)
    label = _labels(label, outer, inner)
    if outer * inner == 0:
        return 0.0, 0
    loss, valid, bad, _ = _reduce(softmax_loss_fwd_v1, outer * inner, prob.reshape(prob.size), label,
                                  C, inner, *_ignore(ignore_label))
    _check_bad(bad, C, ignore_label, "SoftmaxWithLoss")
    return loss, valid


def softmax_loss_bwd(prob: Any, label: Any, dx: Any, scale: float, axis: int = 1,
                     ignore_label: int | None = None) -> None:
    """SoftmaxWithLoss backward: dx = (prob - onehot(label)) * scale (same shape as prob), zero
    for ignored positions. scale = loss_weight / loss_normalizer(...)."""
    prob, dx = _dev(prob), _dev(dx)
    _same_shape(prob, dx)
    outer, C, inner = axis_view(prob.shape, axis)
    label = _labels(label, outer, inner)
    if prob.size == 0:
        return
    blocks, threads = grid_1d(prob.size, SOFTMAX_THREADS)
    softmax_loss_bwd_v1[blocks, threads](prob.reshape(prob.size), label, dx.reshape(dx.size), C, inner,
                                         np.float32(scale), *_ignore(ignore_label))


NORMALIZATION_MODES = ("FULL", "VALID", "BATCH_SIZE", "NONE")   # LossParameter enum order 0..3


def normalization_mode(normalization: str | int | None = None, normalize: bool | None = None) -> str:
    """Caffe's LossLayer choice: an explicit ``normalization`` wins; else the legacy ``normalize``
    bool (true -> VALID, false -> BATCH_SIZE); else the default VALID. None means 'field unset'."""
    if normalization is not None:
        return _mode_name(normalization)
    if normalize is not None:
        return "VALID" if normalize else "BATCH_SIZE"
    return "VALID"


def _mode_name(mode: str | int) -> str:
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool):
        if 0 <= mode < len(NORMALIZATION_MODES):
            return NORMALIZATION_MODES[mode]
    elif isinstance(mode, str) and mode.upper() in NORMALIZATION_MODES:
        return mode.upper()
    raise ValueError(f"unknown loss normalization {mode!r}; expected one of {NORMALIZATION_MODES}")


def loss_normalizer(mode: str | int, outer: int, inner: int, valid_count: int) -> float:
    """Caffe's LossLayer get_normalizer: FULL -> outer*inner; VALID -> valid_count (outer*inner
    when valid_count == -1, Caffe's 'not counted'); BATCH_SIZE -> outer; NONE -> 1; then max(1, .)
    so a batch with every label ignored gives loss 0, not NaN. Returned as a float32 value."""
    name = _mode_name(mode)
    if name == "FULL":
        normalizer = outer * inner
    elif name == "VALID":
        normalizer = outer * inner if valid_count == -1 else valid_count
    elif name == "BATCH_SIZE":
        normalizer = outer
    else:
        normalizer = 1
    return float(max(np.float32(1), np.float32(normalizer)))


def accuracy_fwd(scores: Any, label: Any, top_k: int = 1, axis: int = 1,
                 ignore_label: int | None = None, ties: str = "cpu",
                 per_class: Any | None = None) -> tuple[int, int]:
    """Top-k accuracy counts (Caffe's Accuracy layer): returns (positions whose label is among the
    top_k scores, non-ignored positions) as host ints; the caller divides (Caffe reports 0 when
    the count is 0 on GPU). ``ties``: "cpu" (accuracy_layer.cpp; equal scores rank the larger class
    index first) or "gpu" (accuracy_layer.cu; every equal score ranks first). ``per_class``: an
    optional (2, C) int32 device array, overwritten with per-label [correct, seen] counts."""
    scores = _dev(scores)
    outer, C, inner = axis_view(scores.shape, axis)
    label = _labels(label, outer, inner)
    if ties not in ("cpu", "gpu"):
        raise ValueError(f"ties must be 'cpu' or 'gpu', got {ties!r}")
    if not 1 <= top_k <= C:
        raise ValueError(f"top_k must be in [1, {C}] (the number of classes), got {top_k}")
    if per_class is None:
        pc, want = cuda.device_array((2, 1), np.int32), 0
    else:
        pc, want = _dev(per_class, np.int32), 1
        if tuple(pc.shape) != (2, C):
            raise ValueError(f"per_class must be (2, {C}) int32, got {tuple(pc.shape)}")
        blocks, threads = grid_1d(C, SOFTMAX_THREADS)
        accuracy_clear_fwd_v1[blocks, threads](pc)
    if outer * inner == 0:
        return 0, 0
    _, correct, valid, bad = _reduce(accuracy_fwd_v1, outer * inner, scores.reshape(scores.size), label,
                                     pc, C, inner, int(top_k), *_ignore(ignore_label),
                                     int(ties == "gpu"), want)
    _check_bad(bad, C, ignore_label, "Accuracy")
    return correct, valid
