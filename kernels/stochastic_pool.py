"""Stochastic pooling (Zeiler & Fergus 2013) over NCHW float32 tensors with Caffe's semantics
(Caffe's pooling_layer.cu StoPoolForwardTrain / StoPoolForwardTest / StoPoolBackward; Caffe has no
CPU version). Windows never pad (Caffe refuses padding for STOCHASTIC):

    hstart = ph*stride_h, hend = min(hstart + kernel_h, H)     (the same for w)
    TRAIN:  s = sum of x over the window (row-major h, w, float32);  thres = u * s  with u the
            output's uniform draw in (0, 1];  then the first (h, w) in row-major order whose
            running sum reaches thres (``cumsum >= thres``) is picked:
            y = x[h, w], idx = h*W + w.   A window whose running sum never reaches thres (only
            possible with negative inputs; Caffe then leaves the top stale) gives y = 0, idx = -1.
    TEST:   y = (sum of x^2 over the window) / (FLT_MIN + sum of x over the window)
    Backward (bottom gradient, written ``=``): dx[h, w] = sum of dy[ph, pw] over the outputs whose
            window covers (h, w) and whose idx is h*W + w (a gather, no atomics).

Random numbers: output element i (flat NCHW index of y) takes the 32-bit word r = word (i mod 4)
of Philox4x32-10(counter (i div 4, stream), key seed) -- ``kernels.dropout``'s counter-based
generator, the same words ``dropout.random_uint32_host`` gives on the host -- and turns it into
cuRAND's uniform in (0, 1] (what Caffe's caffe_gpu_rng_uniform draws): u = r * 2^-32 + 2^-33 in
float32 (the product is exact, so a fused multiply-add rounds the same). So the cpu backend draws
the same u for the same (seed, stream) and picks the same elements; the layer advances ``stream``
every TRAIN forward (exact resume, as Dropout).

Shapes: x, dx (N, C, H, W); y, dy, idx (N, C, PH, PW) C-contiguous, float32 (idx int32).

Versions:
    sto_pool_fwd_train_v1   one thread per output (grid-stride over N*C*PH*PW): one Philox call,
                            two passes over the window
    sto_pool_fwd_test_v1    one thread per output
    sto_pool_bwd_v1         one thread per input element, scanning the outputs whose window
                            covers it (Caffe's StoPoolBackward)

Launch geometry: 1-D grid-stride loops of STO_THREADS threads per block
(``kernels._launch.grid_1d``). int32 geometry arguments.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int32, uint32, uint64, void

from kernels._launch import as_device, grid_1d
from kernels.dropout import (
    MASK32,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_ROUNDS,
    PHILOX_W0,
    PHILOX_W1,
    SHIFT32,
    random_uint32_host,
)

STO_THREADS = 256                               # threads per block, every kernel
TWO_POW_M32 = np.float32(2.0 ** -32)            # cuRAND's CURAND_2POW32_INV
HALF_TWO_POW_M32 = np.float32(2.0 ** -33)       # ... and half of it: u in (0, 1]
FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # Caffe's TEST-phase start of the window sum
_ZERO = float32(0.0)


@cuda.jit(device=True)
def philox_word(seed, stream, i):
    """Word (i mod 4) of Philox4x32-10(counter (i div 4 lo, hi, stream lo, hi), key (seed lo, hi)),
    all uint64 holding 32-bit words (``kernels.dropout``'s stream)."""
    g = uint64(i) >> uint64(2)
    c0 = g & MASK32
    c1 = g >> SHIFT32
    c2 = stream & MASK32
    c3 = stream >> SHIFT32
    k0 = seed & MASK32
    k1 = seed >> SHIFT32
    for _ in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> SHIFT32) ^ c1 ^ k0, p1 & MASK32,
                          (p0 >> SHIFT32) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    j = uint64(i) & uint64(3)
    if j == 0:
        return c0
    if j == 1:
        return c1
    if j == 2:
        return c2
    return c3


@cuda.jit
def sto_pool_fwd_train_v1(x, y, idx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                          seed, stream):
    """y = the window element picked by u * (window sum) (Caffe's rule); idx = its h*W + w."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        plane = (i // (PW * PH)) * H * W             # (n*C + c) * H * W
        hstart = ph * stride_h
        wstart = pw * stride_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        r = philox_word(seed, stream, i)
        u = float32(uint32(r)) * TWO_POW_M32 + HALF_TWO_POW_M32
        cumsum = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                cumsum += x[plane + h * W + w]
        thres = u * cumsum
        cumsum = _ZERO
        picked = int32(-1)
        value = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                if picked < 0:
                    v = x[plane + h * W + w]
                    cumsum += v
                    if cumsum >= thres:
                        picked = int32(h * W + w)
                        value = v
        y[i] = value
        idx[i] = picked


@cuda.jit
def sto_pool_fwd_test_v1(x, y, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w):
    """y = sum(x^2) / (FLT_MIN + sum(x)) over the window (Caffe's probability-weighted average)."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        plane = (i // (PW * PH)) * H * W
        hstart = ph * stride_h
        wstart = pw * stride_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        cumsum = FLT_MIN
        cumvalues = _ZERO
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                v = x[plane + h * W + w]
                cumsum += v
                cumvalues += v * v
        y[i] = cumvalues / cumsum


@cuda.jit
def sto_pool_bwd_v1(dy, idx, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w):
    """dx[n,c,h,w] = sum of dy over the outputs covering (h, w) whose picked index is h*W + w."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        out_plane = (i // (W * H)) * PH * PW
        phstart = 0 if h < kernel_h else (h - kernel_h) // stride_h + 1
        phend = min(h // stride_h + 1, PH)
        pwstart = 0 if w < kernel_w else (w - kernel_w) // stride_w + 1
        pwend = min(w // stride_w + 1, PW)
        target = h * W + w
        gradient = _ZERO
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                o = out_plane + ph * PW + pw
                if idx[o] == target:
                    gradient += dy[o]
        dx[i] = gradient


_F = float32[::1]
_I = int32[::1]
_GEOM = (int32,) * 9        # C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w

KERNELS: dict[str, tuple[Any, list]] = {
    "sto_pool_fwd_train_v1": (sto_pool_fwd_train_v1, [void(_F, _F, _I, *_GEOM, uint64, uint64)]),
    "sto_pool_fwd_test_v1": (sto_pool_fwd_test_v1, [void(_F, _F, *_GEOM)]),
    "sto_pool_bwd_v1": (sto_pool_bwd_v1, [void(_F, _I, _F, *_GEOM)]),
}


# ------------------------------------------------------------------------------------ host twin

def uniform_host(n: int, seed: int, stream: int) -> np.ndarray:
    """The n float32 uniforms in (0, 1] the TRAIN kernel draws for outputs 0..n-1 of (seed,
    stream): cuRAND's r * 2^-32 + 2^-33 of the Philox words (for the cpu backend)."""
    r = random_uint32_host(n, seed, stream)
    return r.astype(np.float32) * TWO_POW_M32 + HALF_TWO_POW_M32


# ------------------------------------------------------------------------------------ public API

def _geometry(big: Any, small: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> list:
    if len(big.shape) != 4 or len(small.shape) != 4 or tuple(big.shape[:2]) != tuple(small.shape[:2]):
        raise ValueError(f"stochastic pooling needs NCHW arrays with the same N, C; got {big.shape} "
                         f"and {small.shape}")
    kh, kw = (int(v) for v in kernel)
    sh, sw = (int(v) for v in stride)
    if min(kh, kw, sh, sw) <= 0:
        raise ValueError(f"stochastic pooling needs kernel > 0 and stride > 0, got {kernel}, {stride}")
    _, C, H, W = (int(v) for v in big.shape)
    PH, PW = int(small.shape[2]), int(small.shape[3])
    return [np.int32(v) for v in (C, H, W, PH, PW, kh, kw, sh, sw)]


def _flat(a: Any, dtype: Any) -> Any:
    if a.dtype != dtype:
        raise TypeError(f"stochastic pooling expects a {np.dtype(dtype).name} array, got {a.dtype}")
    return a.reshape(a.size)


def _launch(kernel, n: int, *args) -> None:
    if n:
        blocks, threads = grid_1d(n, STO_THREADS)
        kernel[blocks, threads](*args)


def sto_pool_fwd_train(x: Any, y: Any, idx: Any, kernel: tuple[int, int], stride: tuple[int, int],
                       seed: int, stream: int) -> None:
    """TRAIN forward: y (N,C,PH,PW) = the element of each window of x (N,C,H,W) picked with
    probability proportional to its value (Caffe's cumulative-sum rule, u from Philox(seed,
    stream)); idx (int32, y's shape) = its h*W + w (-1 when nothing was picked)."""
    x, y, idx = as_device(x), as_device(y), as_device(idx)
    geom = _geometry(x, y, kernel, stride)
    if tuple(idx.shape) != tuple(y.shape):
        raise ValueError(f"stochastic pooling index shape {idx.shape} != output shape {y.shape}")
    _launch(sto_pool_fwd_train_v1, y.size, _flat(x, np.float32), _flat(y, np.float32),
            _flat(idx, np.int32), *geom, np.uint64(seed), np.uint64(stream))


def sto_pool_fwd_test(x: Any, y: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """TEST forward: y = sum(x^2) / (FLT_MIN + sum(x)) over each window."""
    x, y = as_device(x), as_device(y)
    geom = _geometry(x, y, kernel, stride)
    _launch(sto_pool_fwd_test_v1, y.size, _flat(x, np.float32), _flat(y, np.float32), *geom)


def sto_pool_bwd(dy: Any, idx: Any, dx: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """Backward: dx (N,C,H,W) = dy routed to the picked elements (summed where windows overlap);
    dx is overwritten."""
    dy, idx, dx = as_device(dy), as_device(idx), as_device(dx)
    geom = _geometry(dx, dy, kernel, stride)
    if tuple(idx.shape) != tuple(dy.shape):
        raise ValueError(f"stochastic pooling index shape {idx.shape} != top diff shape {dy.shape}")
    _launch(sto_pool_bwd_v1, dx.size, _flat(dy, np.float32), _flat(idx, np.int32),
            _flat(dx, np.float32), *geom)
