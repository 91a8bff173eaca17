"""CPU backend: numpy (BLAS through ``numpy.matmul``) plus ``numba.njit`` for the loops numpy can't
vectorise (pooling, stochastic pooling, col2im); N-D convolution in ``runner.backend.cpu_conv_nd``.
BLAS runs single-threaded by default (see ``DEFAULT_BLAS_THREADS``; ``NBCAFFE_CPU_THREADS=n`` to
change).
Arrays are numpy arrays of ``dtype`` (float32; float64 for gradient checks).

Convolution is im2col + one GEMM per group, a chunk of images at a time (as many images as keep
the chunk's columns near ``CONV_CHUNK_BYTES``, so they are still in cache when the GEMM reads
them; a one-image chunk's GEMM writes straight into the NCHW output). The columns (C_in/group *
KH * KW, m * OH * OW) are KH*KW copies of unit-stride rows out of the padded images split into
stride phases; col2im is a numba loop. A 1x1/stride-1/no-pad convolution skips im2col (the input
itself is the column buffer), as in Caffe. Scratch buffers are reused across calls.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from netdef.geometry import (
    CODE_CENTER_SIZE,
    CODE_CORNER,
    CODE_CORNER_SIZE,
    DetectionGeometry,
    Im2colGeometry,
    NormalizeGeometry,
    PriorBoxGeometry,
)
from runner.backend.base import Backend, ConvCache, ConvGeometry, ConvNdGeometry, PoolGeometry
from runner.backend.cpu_conv_nd import conv_nd_backward, conv_nd_forward, tap_slices

FLT_MIN = float(np.finfo(np.float32).tiny)

#: BLAS threads the cpu backend asks numpy's OpenBLAS for (env NBCAFFE_CPU_THREADS overrides;
#: 0 leaves the library's default). One thread by default: the GEMMs of small nets are short, and
#: on a shared machine (CI with several processes) OpenBLAS's spinning threads cost more than they
#: give (BENCHMARKS.md, "CPU backend: BLAS threads").
DEFAULT_BLAS_THREADS = 1
#: host memory for convolution columns kept from forward to backward (ConvCache), all layers
#: together: LeNet at batch 64 keeps 12 MB, CIFAR-10 quick at batch 100 about 130 MB
KEEP_COLUMNS_BYTES = 512 << 20
#: convolution works on chunks of images whose im2col columns fit about this many bytes, so that
#: each chunk's columns are still in cache when its GEMM reads them (one image at least)
CONV_CHUNK_BYTES = 4 << 20
#: a convolution whose kernel volume C_in/group*KH*KW is below this runs its forward GEMM as
#: out^T = columns^T W^T (OpenBLAS is faster with the long N*OH*OW axis as M when K is short:
#: GoogLeNet's conv1/7x7_s2, K = 147; BENCHMARKS.md, 2026-12-02)
SHORT_K = 256


def set_blas_threads(n: int) -> bool:
    """Ask the OpenBLAS that numpy loaded to use ``n`` threads (process-wide). Returns False when no
    OpenBLAS with a known ``set_num_threads`` symbol is found (then nothing changes)."""
    import ctypes
    import glob
    import os
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                    "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn(ctypes.c_int(int(n)))
                return True
    return False


# ---------------------------------------------------------------------------------------- numba
FLT_MAX = 3.4028234663852886e38   # Caffe starts max pooling from -FLT_MAX, not -inf


@njit(cache=True)
def _max_pool_fwd(x, y, mask, kh, kw, sh, sw, ph, pw):  # pragma: no cover - compiled
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh - ph
                he = min(hs + kh, h_)
                hs = max(hs, 0)
                for ow in range(ow_):
                    ws = ow * sw - pw
                    we = min(ws + kw, w_)
                    ws = max(ws, 0)
                    best = -FLT_MAX     # an empty window (ceil mode, stride > kernel) keeps it, mask -1
                    idx = -1
                    for h in range(hs, he):
                        for w in range(ws, we):
                            v = x[n, c, h, w]
                            if v > best:
                                best = v
                                idx = h * w_ + w
                    y[n, c, oh, ow] = best
                    mask[n, c, oh, ow] = idx


@njit(cache=True)
def _pool_bwd_at_index(dy, mask, dx):  # pragma: no cover - compiled
    """dx = 0, then each dy is added at the in-plane index its window picked (h * W + w; -1: none):
    MAX pooling's argmax and STOCHASTIC pooling's draw route the gradient alike."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for n in range(n_):
        for c in range(c_):
            for h in range(h_):
                for w in range(w_):
                    dx[n, c, h, w] = 0
            for oh in range(oh_):
                for ow in range(ow_):
                    i = mask[n, c, oh, ow]
                    if i >= 0:
                        dx[n, c, i // w_, i % w_] += dy[n, c, oh, ow]


@njit(cache=True, error_model="numpy")   # empty window (ceil mode): 0/0 = NaN, as in Caffe
def _ave_pool_fwd(x, y, kh, kw, sh, sw, ph, pw):  # pragma: no cover - compiled
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh - ph
                he = min(hs + kh, h_ + ph)
                for ow in range(ow_):
                    ws = ow * sw - pw
                    we = min(ws + kw, w_ + pw)
                    size = (he - hs) * (we - ws)
                    h0 = max(hs, 0)
                    h1 = min(he, h_)
                    w0 = max(ws, 0)
                    w1 = min(we, w_)
                    acc = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            acc += x[n, c, h, w]
                    y[n, c, oh, ow] = acc / size


@njit(cache=True, error_model="numpy")
def _ave_pool_bwd(dy, dx, kh, kw, sh, sw, ph, pw):  # pragma: no cover - compiled
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for n in range(n_):
        for c in range(c_):
            for h in range(h_):
                for w in range(w_):
                    dx[n, c, h, w] = 0
            for oh in range(oh_):
                hs = oh * sh - ph
                he = min(hs + kh, h_ + ph)
                for ow in range(ow_):
                    ws = ow * sw - pw
                    we = min(ws + kw, w_ + pw)
                    size = (he - hs) * (we - ws)
                    g = dy[n, c, oh, ow] / size
                    for h in range(max(hs, 0), min(he, h_)):
                        for w in range(max(ws, 0), min(we, w_)):
                            dx[n, c, h, w] += g


@njit(cache=True)
def _sto_pool_train(x, y, idx, u, kh, kw, sh, sw):  # pragma: no cover - compiled
    """Caffe's StoPoolForwardTrain on (N, C, H, W) -> (N, C, PH, PW); u (N*C*PH*PW,) uniforms."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    zero = x[0, 0, 0, 0] * 0          # the array's dtype: float32 sums stay float32
    i = 0
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh
                he = min(hs + kh, h_)
                for ow in range(ow_):
                    ws = ow * sw
                    we = min(ws + kw, w_)
                    total = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            total += x[n, c, h, w]
                    thres = u[i] * total
                    run = zero
                    picked = -1
                    value = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if picked < 0:
                                run += x[n, c, h, w]
                                if run >= thres:
                                    picked = h * w_ + w
                                    value = x[n, c, h, w]
                    y[n, c, oh, ow] = value
                    idx[n, c, oh, ow] = picked
                    i += 1


@njit(cache=True)
def _sto_pool_test(x, y, kh, kw, sh, sw, flt_min):  # pragma: no cover - compiled
    """Caffe's StoPoolForwardTest: sum(x^2) / (FLT_MIN + sum(x)) over each window."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    zero = x[0, 0, 0, 0] * 0
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                hs = oh * sh
                he = min(hs + kh, h_)
                for ow in range(ow_):
                    ws = ow * sw
                    we = min(ws + kw, w_)
                    total = zero + flt_min
                    squares = zero
                    for h in range(hs, he):
                        for w in range(ws, we):
                            v = x[n, c, h, w]
                            total += v
                            squares += v * v
                    y[n, c, oh, ow] = squares / total


@njit(cache=True)
def _col2im_nb(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh_, ow_):  # pragma: no cover - compiled
    """dx = 0, then every column entry is added back onto the pixel it was copied from."""
    n_, c_, h_, w_ = dx.shape
    for n in range(n_):
        for c in range(c_):
            for h in range(h_):
                for w in range(w_):
                    dx[n, c, h, w] = 0
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                for n in range(n_):
                    base = n * oh_ * ow_
                    for oh in range(oh_):
                        h = oh * sh - ph + i * dh
                        if h < 0 or h >= h_:
                            continue
                        for ow in range(ow_):
                            w = ow * sw - pw + j * dw
                            if w >= 0 and w < w_:
                                dx[n, c, h, w] += col[row, base + oh * ow_ + ow]


# ---------------------------------------------------------------------------------------- helpers
def _flat(a: np.ndarray) -> np.ndarray:
    """1-D view of a contiguous array (raises if a copy would be needed)."""
    v = a.reshape(-1)
    if a.size and not np.shares_memory(v, a):
        raise ValueError("array is not contiguous")
    return v


def _oid(a: np.ndarray, outer: int, dim: int, inner: int) -> np.ndarray:
    return a.reshape(outer, dim, inner)


def _lstm_sigmoid(x: np.ndarray) -> np.ndarray:
    """Caffe's LSTMUnit sigmoid, 1 / (1 + exp(-x)) in x's dtype (not the tanh form of Sigmoid)."""
    one = x.dtype.type(1)
    with np.errstate(over="ignore"):
        return one / (one + np.exp(-x))


def _lstm_gates(x: np.ndarray, cont: np.ndarray, d: int):
    """(i, f, o, g) of Caffe's LSTMUnit from the gate input x (N, 4D) and cont (N,)."""
    two, one = x.dtype.type(2), x.dtype.type(1)
    x = x.reshape(-1, 4 * d)
    k = cont.reshape(-1, 1)
    i = _lstm_sigmoid(x[:, :d])
    f = np.where(k == 0, x.dtype.type(0), k * _lstm_sigmoid(x[:, d:2 * d]))
    o = _lstm_sigmoid(x[:, 2 * d:3 * d])
    g = two * _lstm_sigmoid(two * x[:, 3 * d:]) - one
    return i, f, o, g


class _KeptHostColumns:
    """The im2col columns of a convolution input kept from forward to backward (``ConvCache``
    state on the cpu backend: the forward's own array, no copy)."""

    __slots__ = ("cols", "valid")

    def __init__(self, cols: np.ndarray):
        self.cols = cols
        self.valid = True


class CpuBackend(Backend):
    """numpy/numba implementation of :class:`runner.backend.base.Backend`."""

    name = "cpu"
    host_mirror = False

    def __init__(self, dtype: Any = np.float32, threads: int | None = None):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"cpu backend dtype must be float32 or float64, not {self.dtype}")
        if threads is None:
            import os
            threads = int(os.environ.get("NBCAFFE_CPU_THREADS", DEFAULT_BLAS_THREADS))
        self.threads = threads
        if threads > 0:
            set_blas_threads(threads)
        self.keep_columns_bytes = KEEP_COLUMNS_BYTES
        import threading
        self._local = threading.local()       # per-thread scratch buffers (``_work``)

    def workspace_cap(self) -> int | None:
        """Convolution scratch is one chunk of images (``CONV_CHUNK_BYTES``, or one image), plus
        kept columns within ``keep_columns_bytes`` while training."""
        return self.keep_columns_bytes + CONV_CHUNK_BYTES

    # ------------------------------------------------------------------ arrays
    def empty(self, shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return np.empty(tuple(int(s) for s in shape), dtype=dtype or self.dtype)

    def zeros(self, shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return np.zeros(tuple(int(s) for s in shape), dtype=dtype or self.dtype)

    def to_device(self, host: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        host = np.asarray(host)
        if out is not None:
            if out.size != host.size:
                raise ValueError(f"to_device: {host.shape} into {out.shape}")
            _flat(out)[...] = host.reshape(-1)
            return out
        return np.array(host, dtype=self.dtype, order="C", copy=True)

    def to_host(self, arr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            return arr
        _flat(out)[...] = np.asarray(arr).reshape(-1)
        return out

    def copy(self, src: np.ndarray, dst: np.ndarray) -> None:
        if src is dst:
            return
        _flat(dst)[...] = src.reshape(-1)

    def fill(self, arr: np.ndarray, value: float) -> None:
        arr.fill(value)

    # ------------------------------------------------------------------ BLAS-like
    def axpy(self, alpha: float, x: np.ndarray, y: np.ndarray) -> None:
        yf = _flat(y)
        if alpha == 1.0:
            yf += x.reshape(-1)
        else:
            yf += y.dtype.type(alpha) * x.reshape(-1)

    def axpby(self, alpha: float, x: np.ndarray, beta: float, y: np.ndarray) -> None:
        yf = _flat(y)
        t = y.dtype.type
        if beta == 0.0:
            np.multiply(x.reshape(-1), t(alpha), out=yf)
        else:
            yf *= t(beta)
            yf += t(alpha) * x.reshape(-1)

    def scal(self, alpha: float, x: np.ndarray) -> None:
        if alpha == 0.0:
            x.fill(0)
        else:
            x *= x.dtype.type(alpha)

    def dot(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.dot(x.reshape(-1), y.reshape(-1)))

    def asum(self, x: np.ndarray) -> float:
        return float(np.abs(x).sum(dtype=np.float64))

    def sumsq(self, x: np.ndarray) -> float:
        v = x.reshape(-1)
        return float(np.dot(v, v))


    def sumsq_total(self, arrays) -> float:
        return float(sum(float(np.dot(a.ravel().astype(np.float64), a.ravel())) for a in arrays))

    # ------------------------------------------------------------------ solver updates (see base)
    @staticmethod
    def _gradient(w, diff, local_decay: float, regularization: str, diff_scale: float) -> None:
        """Caffe's Normalize then Regularize, in place on ``diff``, in its float32 order."""
        F = diff.dtype.type
        if diff_scale != 1.0:
            diff *= F(diff_scale)
        if local_decay == 0:
            return
        if regularization == "L2":
            diff += F(local_decay) * w
        elif regularization == "L1":
            diff += F(local_decay) * np.sign(w).astype(diff.dtype)
        else:
            raise ValueError(f"unknown regularization {regularization!r} (L2 or L1)")

    def sgd_update(self, w, diff, history, local_rate, momentum, local_decay=0.0,
                   regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        history *= F(momentum)
        history += F(local_rate) * diff
        diff[...] = history
        w -= diff

    def nesterov_update(self, w, diff, history, local_rate, momentum, local_decay=0.0,
                        regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        old = history.copy()
        mom = F(momentum)
        history *= mom
        history += F(local_rate) * diff
        diff[...] = (F(1) + mom) * history - mom * old
        w -= diff

    def adagrad_update(self, w, diff, history, local_rate, delta, local_decay=0.0,
                       regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        history += diff * diff
        diff[...] = F(local_rate) * (diff / (np.sqrt(history) + F(delta)))
        w -= diff

    def rmsprop_update(self, w, diff, history, local_rate, rms_decay, delta, local_decay=0.0,
                       regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        d = F(rms_decay)
        history[...] = d * history + (F(1) - d) * (diff * diff)
        diff[...] = F(local_rate) * (diff / (np.sqrt(history) + F(delta)))
        w -= diff

    def adadelta_update(self, w, diff, history, update_history, local_rate, momentum, delta,
                        local_decay=0.0, regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        mom, dlt = F(momentum), F(delta)
        history[...] = (F(1) - mom) * (diff * diff) + mom * history
        diff *= np.sqrt((update_history + dlt) / (history + dlt))
        update_history[...] = (F(1) - mom) * (diff * diff) + mom * update_history
        diff *= F(local_rate)
        w -= diff

    def adam_update(self, w, diff, m, v, rate, beta1, beta2, eps_hat, local_decay=0.0,
                    regularization="L2", diff_scale=1.0) -> None:
        self._gradient(w, diff, local_decay, regularization, diff_scale)
        F = diff.dtype.type
        b1, b2 = F(beta1), F(beta2)
        m[...] = (F(1) - b1) * diff + b1 * m
        v[...] = (F(1) - b2) * (diff * diff) + b2 * v
        diff[...] = F(rate) * (m / (np.sqrt(v) + F(eps_hat)))
        w -= diff

    def gemm(self, trans_a: bool, trans_b: bool, alpha: float, a: np.ndarray, b: np.ndarray,
             beta: float, c: np.ndarray) -> None:
        oa = a.T if trans_a else a
        ob = b.T if trans_b else b
        t = c.dtype.type
        if beta == 0.0:
            np.matmul(oa, ob, out=c)
            if alpha != 1.0:
                c *= t(alpha)
        else:
            prod = np.matmul(oa, ob)
            if beta != 1.0:
                c *= t(beta)
            if alpha != 1.0:
                prod *= t(alpha)
            c += prod

    # ------------------------------------------------------------------ elementwise arithmetic
    def add(self, a, b, out) -> None:
        np.add(a.reshape(-1), b.reshape(-1), out=_flat(out))

    def sub(self, a, b, out) -> None:
        np.subtract(a.reshape(-1), b.reshape(-1), out=_flat(out))

    def mul(self, a, b, out) -> None:
        np.multiply(a.reshape(-1), b.reshape(-1), out=_flat(out))

    def div(self, a, b, out) -> None:
        np.divide(a.reshape(-1), b.reshape(-1), out=_flat(out))

    # ------------------------------------------------------------------ activations
    def relu_fwd(self, x, y, negative_slope: float = 0.0) -> None:
        if negative_slope == 0.0:
            np.maximum(x, 0, out=y)
        else:
            t = y.dtype.type
            np.copyto(y, np.where(x > 0, x, x * t(negative_slope)))

    def relu_bwd(self, x, dy, dx, negative_slope: float = 0.0) -> None:
        t = dx.dtype.type
        if negative_slope == 0.0:
            np.multiply(dy, x > 0, out=dx)
        else:
            np.multiply(dy, np.where(x > 0, t(1), t(negative_slope)), out=dx)

    def sigmoid_fwd(self, x, y) -> None:
        # 0.5 * tanh(0.5 x) + 0.5 is Caffe's overflow-free form
        t = y.dtype.type
        np.multiply(x, t(0.5), out=y)
        np.tanh(y, out=y)
        y *= t(0.5)
        y += t(0.5)

    def sigmoid_bwd(self, y, dy, dx) -> None:
        np.multiply(dy, y * (1 - y), out=dx)

    def tanh_fwd(self, x, y) -> None:
        np.tanh(x, out=y)

    def tanh_bwd(self, y, dy, dx) -> None:
        np.multiply(dy, 1 - y * y, out=dx)

    def elu_fwd(self, x, y, alpha: float) -> None:
        t = y.dtype.type
        np.copyto(y, np.where(x > 0, x, t(alpha) * np.expm1(np.minimum(x, 0))))

    def elu_bwd(self, x, y, dy, dx, alpha: float) -> None:
        t = dx.dtype.type
        np.copyto(dx, np.where(x > 0, dy, dy * (y + t(alpha))))

    def abs_fwd(self, x, y) -> None:
        np.abs(x, out=y)

    def abs_bwd(self, x, dy, dx) -> None:
        np.multiply(np.sign(x), dy, out=dx)

    def bnll_fwd(self, x, y) -> None:
        np.copyto(y, np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(-np.abs(x)))))

    def bnll_bwd(self, x, dy, dx) -> None:
        e = np.exp(np.minimum(x, 50))
        np.multiply(dy, e / (e + 1), out=dx)

    def power_fwd(self, x, y, power: float, scale: float, shift: float) -> None:
        t = y.dtype.type
        if power * scale == 0.0:
            y.fill(t(1.0) if power == 0.0 else t(shift) ** t(power))
            return
        base = x * t(scale) + t(shift)
        if power == 1.0:
            np.copyto(y, base)
        else:
            np.power(base, t(power), out=y)

    def power_bwd(self, x, y, dy, dx, power: float, scale: float, shift: float) -> None:
        t = dx.dtype.type
        diff_scale = power * scale
        if diff_scale == 0.0:
            dx.fill(0)
            return
        if power == 1.0:
            np.multiply(dy, t(scale), out=dx)
            return
        base = x * t(scale) + t(shift)
        if power == 2.0:
            g = base * t(diff_scale)
        else:
            g = np.power(base, t(power - 1.0)) * t(diff_scale)
        np.multiply(dy, g, out=dx)

    @staticmethod
    def _ln(base: float) -> float:
        return 1.0 if base == -1.0 else float(np.log(base))

    def exp_fwd(self, x, y, base: float, scale: float, shift: float) -> None:
        t = y.dtype.type
        inner = self._ln(base) * scale
        outer = 1.0 if shift == 0.0 else (np.exp(shift) if base == -1.0 else base ** shift)
        np.multiply(x, t(inner), out=y)
        np.exp(y, out=y)
        if outer != 1.0:
            y *= t(outer)

    def exp_bwd(self, y, dy, dx, base: float, scale: float) -> None:
        t = dx.dtype.type
        np.multiply(dy, y * t(self._ln(base) * scale), out=dx)

    def log_fwd(self, x, y, base: float, scale: float, shift: float) -> None:
        t = y.dtype.type
        np.log(x * t(scale) + t(shift), out=y)
        if base != -1.0:
            y *= t(1.0 / np.log(base))

    def log_bwd(self, x, dy, dx, base: float, scale: float, shift: float) -> None:
        t = dx.dtype.type
        k = scale / self._ln(base)
        np.multiply(dy, t(k) / (x * t(scale) + t(shift)), out=dx)

    # ------------------------------------------------------------------ dropout
    def dropout_fwd(self, x, y, mask, ratio: float, seed: int, counter: int) -> None:
        from kernels.dropout import dropout_mask_host, dropout_scale
        keep = dropout_mask_host(x.size, ratio, seed, stream=counter)
        _flat(mask)[...] = keep.reshape(-1)
        t = y.dtype.type
        # Caffe's scale_ = 1 / (1 - threshold_) in float32, exactly as the CUDA kernel uses it
        np.multiply(x, mask.reshape(x.shape) * t(dropout_scale(ratio)), out=y)

    def dropout_bwd(self, dy, mask, dx, ratio: float) -> None:
        from kernels.dropout import dropout_scale
        t = dx.dtype.type
        np.multiply(dy, mask.reshape(dy.shape) * t(dropout_scale(ratio)), out=dx)

    # ------------------------------------------------------------------ bias / scale
    def bias_fwd(self, x, b, y, outer: int, dim: int, inner: int) -> None:
        np.add(_oid(x, outer, dim, inner), b.reshape(1, dim, 1), out=_oid(y, outer, dim, inner))

    def bias_bwd(self, dy, db, outer: int, dim: int, inner: int) -> None:
        _flat(db)[...] += _oid(dy, outer, dim, inner).sum(axis=(0, 2), dtype=np.float64).astype(db.dtype)

    def scale_fwd(self, x, s, b, y, outer: int, dim: int, inner: int) -> None:
        yv = _oid(y, outer, dim, inner)
        np.multiply(_oid(x, outer, dim, inner), s.reshape(1, dim, 1), out=yv)
        if b is not None:
            yv += b.reshape(1, dim, 1)

    def scale_bwd(self, x, s, dy, dx, ds, outer: int, dim: int, inner: int,
                  accumulate_ds: bool = True) -> None:
        dyv = _oid(dy, outer, dim, inner)
        if ds is not None:
            g = (dyv * _oid(x, outer, dim, inner)).sum(axis=(0, 2), dtype=np.float64).astype(ds.dtype)
            if accumulate_ds:
                _flat(ds)[...] += g
            else:
                _flat(ds)[...] = g
        if dx is not None:
            np.multiply(dyv, s.reshape(1, dim, 1), out=_oid(dx, outer, dim, inner))

    # ------------------------------------------------------------------ convolution
    def _work(self, tag: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A scratch array of ``shape`` carved from one growing buffer per ``tag`` and thread
        (reused by every convolution: no fresh pages and page faults per call; contents stale)."""
        n = 1
        for d in shape:
            n *= int(d)
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = {}
        buf = scratch.get(tag)
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = scratch[tag] = np.empty(max(n, 1), dtype=dtype)
        return buf[:n].reshape(shape)

    @staticmethod
    def _chunks(g: ConvGeometry, itemsize: int) -> list[tuple[int, int]]:
        """Images [n0, n1) per GEMM chunk: as many as keep a chunk's column buffer within
        ``CONV_CHUNK_BYTES`` (one image at least)."""
        per_image = g.c_in * g.kernel_h * g.kernel_w * g.out_h * g.out_w * itemsize
        m = max(1, CONV_CHUNK_BYTES // max(per_image, 1))
        return [(n0, min(n0 + m, g.n)) for n0 in range(0, g.n, m)]

    def _columns(self, x: np.ndarray, g: ConvGeometry, n0: int, n1: int,
                 full: np.ndarray | None = None) -> np.ndarray:
        """The im2col columns (C_in*KH*KW, m*OH*OW) of images n0..n1-1 of x (N, C_in, H, W), in
        ``full[:, n0*P:n1*P]`` when given (the whole batch's buffer) else in scratch. The images
        are padded once and split into stride phases (phase (a, b) holds rows a, a+SH, ... and
        columns b, b+SW, ...), so each of the KH*KW kernel offsets is one copy of unit-stride rows
        (a strided gather with stride 2 ran at a fraction of memory speed). A 1x1/stride-1/no-pad
        convolution's columns are the input itself (a view when m == 1)."""
        m, p = n1 - n0, g.out_h * g.out_w
        if g.is_1x1:
            if m == 1:
                cols = x[n0].reshape(g.c_in, p)
                if full is not None:
                    full[:, n0 * p:n1 * p] = cols
                return cols
            dst = full[:, n0 * p:n1 * p] if full is not None else self._work(
                "cols", (g.c_in, m * p), x.dtype)
            dst.reshape(g.c_in, m, p)[...] = x[n0:n1].reshape(m, g.c_in, p).transpose(1, 0, 2)
            return dst
        kk = g.c_in * g.kernel_h * g.kernel_w
        cols = full[:, n0 * p:n1 * p] if full is not None else self._work("cols", (kk, m * p), x.dtype)
        view = cols.view()
        view.shape = (g.c_in, g.kernel_h, g.kernel_w, m, g.out_h, g.out_w)   # no copy, or raises
        hp, wp = g.h + 2 * g.pad_h, g.w + 2 * g.pad_w
        xp = self._work("pad", (g.c_in, m, hp, wp), x.dtype)
        if g.pad_h or g.pad_w:
            xp[...] = 0
        xp[:, :, g.pad_h:g.pad_h + g.h, g.pad_w:g.pad_w + g.w] = x[n0:n1].transpose(1, 0, 2, 3)
        sh, sw = g.stride_h, g.stride_w
        phases: dict[tuple[int, int], np.ndarray] = {}
        for i in range(g.kernel_h):
            hi = i * g.dilation_h
            for j in range(g.kernel_w):
                wj = j * g.dilation_w
                key = (hi % sh, wj % sw)
                ph = phases.get(key)
                if ph is None:
                    ph = xp if (sh, sw) == (1, 1) else np.ascontiguousarray(
                        xp[:, :, key[0]::sh, key[1]::sw])
                    phases[key] = ph
                view[:, i, j] = ph[:, :, hi // sh:hi // sh + g.out_h, wj // sw:wj // sw + g.out_w]
        return cols

    def _dy_chunk(self, dy: np.ndarray, g: ConvGeometry, n0: int, n1: int) -> np.ndarray:
        """dy of images n0..n1-1 as (C_out, m*OH*OW) (a view for one image)."""
        p = g.out_h * g.out_w
        yv = dy.reshape(g.n, g.c_out, p)
        if n1 - n0 == 1:
            return yv[n0]
        out = self._work("dy", (g.c_out, (n1 - n0) * p), dy.dtype)
        out.reshape(g.c_out, n1 - n0, p)[...] = yv[n0:n1].transpose(1, 0, 2)
        return out

    def _col2im(self, col: np.ndarray, dx: np.ndarray, g: ConvGeometry) -> None:
        """dx (m, C_in, H, W) = the sum of the column buffer's entries (C_in*KH*KW, m*OH*OW)
        back onto the pixels they were copied from (=)."""
        if g.is_1x1:
            dx[...] = col.reshape(g.c_in, dx.shape[0], g.h, g.w).transpose(1, 0, 2, 3)
            return
        _col2im_nb(np.ascontiguousarray(col), dx, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
                   g.pad_h, g.pad_w, g.dilation_h, g.dilation_w, g.out_h, g.out_w)

    def conv_forward(self, x, w, b, y, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        """Per chunk of images: im2col (cache-hot) then one GEMM per group straight into y's
        NCHW layout (one image: no transposing copy). With an armed ``cache`` the columns go
        into the whole batch's buffer, which backward reads."""
        x = x.reshape(g.x_shape)
        p = g.out_h * g.out_w
        kk_all = g.c_in * g.kernel_h * g.kernel_w
        full = None
        if cache is not None and cache.armed and not g.is_1x1:
            nbytes = kk_all * g.n * p * x.itemsize
            if nbytes <= cache.reserved:
                old = cache.state.cols if cache.state is not None else None
                full = old if old is not None and old.shape == (kk_all, g.n * p) else np.empty(
                    (kk_all, g.n * p), dtype=x.dtype)
                cache.state = _KeptHostColumns(full)
            else:                                  # grew: backward re-arms within the budget
                cache.invalidate()
        grp = g.group
        og = g.c_out // grp
        kk = kk_all // grp
        w2 = w.reshape(g.c_out, kk)
        yv = y.reshape(g.n, g.c_out, p)
        for n0, n1 in self._chunks(g, x.itemsize):
            cols = self._columns(x, g, n0, n1, full)
            m = n1 - n0
            out = yv[n0] if m == 1 else self._work("out", (g.c_out, m * p), y.dtype)
            for k in range(grp):
                wk, ck, ok = w2[k * og:(k + 1) * og], cols[k * kk:(k + 1) * kk], out[k * og:(k + 1) * og]
                if kk < SHORT_K:          # out^T = cols^T w^T: the long axis as BLAS's M
                    np.matmul(ck.T, wk.T, out=ok.T)
                else:
                    np.matmul(wk, ck, out=ok)
            if m > 1:
                yv[n0:n1] = out.reshape(g.c_out, m, p).transpose(1, 0, 2)
        if b is not None:
            yv += b.reshape(1, g.c_out, 1)

    def conv_backward_data(self, dy, w, dx, g: ConvGeometry) -> None:
        """dx = col2im(W^T dy), a chunk of images at a time."""
        grp = g.group
        og = g.c_out // grp
        kk = g.c_in * g.kernel_h * g.kernel_w // grp
        w2 = w.reshape(g.c_out, kk)
        dxv = dx.reshape(g.x_shape)
        p = g.out_h * g.out_w
        for n0, n1 in self._chunks(g, dx.itemsize):
            dyc = self._dy_chunk(dy, g, n0, n1)
            col = self._work("cols", (grp * kk, (n1 - n0) * p), dx.dtype)
            for k in range(grp):
                np.matmul(w2[k * og:(k + 1) * og].T, dyc[k * og:(k + 1) * og],
                          out=col[k * kk:(k + 1) * kk])
            self._col2im(col, dxv[n0:n1], g)

    def conv_backward_weight(self, x, dy, dw, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        """dW += dy · columns^T, a chunk of images at a time, reading the forward's kept columns
        when the cache holds them (else recomputing them, and keeping them when the cache arms)."""
        x = x.reshape(g.x_shape)
        p = g.out_h * g.out_w
        kk_all = g.c_in * g.kernel_h * g.kernel_w
        kept = None if cache is None else cache.state
        use_kept = kept is not None and kept.valid and kept.cols.shape == (kk_all, g.n * p)
        full = None
        if not use_kept and not g.is_1x1 and self.arm_conv_cache(cache, kk_all * g.n * p * x.itemsize):
            full = np.empty((kk_all, g.n * p), dtype=x.dtype)
            cache.state = _KeptHostColumns(full)
        grp = g.group
        og = g.c_out // grp
        kk = kk_all // grp
        dw2 = dw.reshape(g.c_out, kk)
        for n0, n1 in self._chunks(g, x.itemsize):
            cols = kept.cols[:, n0 * p:n1 * p] if use_kept else self._columns(x, g, n0, n1, full)
            dyc = self._dy_chunk(dy, g, n0, n1)
            for k in range(grp):
                dw2[k * og:(k + 1) * og] += dyc[k * og:(k + 1) * og] @ cols[k * kk:(k + 1) * kk].T

    # ------------------------------------------------------------------ pooling
    def max_pool_fwd(self, x, y, mask, g: PoolGeometry) -> None:
        _max_pool_fwd(x.reshape(g.n, g.c, g.h, g.w), y.reshape(g.n, g.c, g.out_h, g.out_w),
                      mask.reshape(g.n, g.c, g.out_h, g.out_w), g.kernel_h, g.kernel_w,
                      g.stride_h, g.stride_w, g.pad_h, g.pad_w)

    def max_pool_bwd(self, dy, mask, dx, g: PoolGeometry) -> None:
        _pool_bwd_at_index(dy.reshape(g.n, g.c, g.out_h, g.out_w), mask.reshape(g.n, g.c, g.out_h, g.out_w),
                      dx.reshape(g.n, g.c, g.h, g.w))

    def ave_pool_fwd(self, x, y, g: PoolGeometry) -> None:
        _ave_pool_fwd(x.reshape(g.n, g.c, g.h, g.w), y.reshape(g.n, g.c, g.out_h, g.out_w),
                      g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w)

    def ave_pool_bwd(self, dy, dx, g: PoolGeometry) -> None:
        _ave_pool_bwd(dy.reshape(g.n, g.c, g.out_h, g.out_w), dx.reshape(g.n, g.c, g.h, g.w),
                      g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w)

    def sto_pool_fwd_train(self, x, y, idx, g: PoolGeometry, seed: int, stream: int) -> None:
        from kernels.pool import uniform_host
        if not x.size or not y.size:
            return
        u = uniform_host(y.size, seed, stream)
        _sto_pool_train(x.reshape(g.n, g.c, g.h, g.w), y.reshape(g.n, g.c, g.out_h, g.out_w),
                        idx.reshape(g.n, g.c, g.out_h, g.out_w), u, g.kernel_h, g.kernel_w,
                        g.stride_h, g.stride_w)

    def sto_pool_fwd_test(self, x, y, g: PoolGeometry) -> None:
        if not x.size or not y.size:
            return
        _sto_pool_test(x.reshape(g.n, g.c, g.h, g.w), y.reshape(g.n, g.c, g.out_h, g.out_w),
                       g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, y.dtype.type(FLT_MIN))

    def sto_pool_bwd(self, dy, idx, dx, g: PoolGeometry) -> None:
        _pool_bwd_at_index(dy.reshape(g.n, g.c, g.out_h, g.out_w), idx.reshape(g.n, g.c, g.out_h, g.out_w),
                      dx.reshape(g.n, g.c, g.h, g.w))

    # ------------------------------------------------------------------ N-D convolution, LSTM unit
    def conv_nd_forward(self, x, w, b, y, g: ConvNdGeometry) -> None:
        conv_nd_forward(x, w, b, y, g)

    def conv_nd_backward(self, x, w, dy, dx, dw, db, g: ConvNdGeometry) -> None:
        conv_nd_backward(x, w, dy, dx, dw, db, g)

    def lstm_unit_fwd(self, c_prev, x, cont, c, h) -> None:
        n = cont.size
        d = c_prev.size // n
        two, one = x.dtype.type(2), x.dtype.type(1)
        i, f, o, g = _lstm_gates(x, cont, d)
        cv = f * c_prev.reshape(n, d) + i * g
        c.reshape(n, d)[...] = cv
        h.reshape(n, d)[...] = o * (two * _lstm_sigmoid(two * cv) - one)

    def lstm_unit_bwd(self, c_prev, x, cont, c, dc, dh, dc_prev, dx) -> None:
        n = cont.size
        d = c_prev.size // n
        two, one = x.dtype.type(2), x.dtype.type(1)
        i, f, o, g = _lstm_gates(x, cont, d)
        t = two * _lstm_sigmoid(two * c.reshape(n, d)) - one
        dhv = dh.reshape(n, d)
        term = dc.reshape(n, d) + dhv * o * (one - t * t)
        dc_prev.reshape(n, d)[...] = term * f
        dxv = dx.reshape(n, 4 * d)
        dxv[:, :d] = term * g * i * (one - i)
        dxv[:, d:2 * d] = term * c_prev.reshape(n, d) * f * (one - f)
        dxv[:, 2 * d:3 * d] = dhv * t * o * (one - o)
        dxv[:, 3 * d:] = term * i * (one - g * g)

    # ------------------------------------------------------------------ LRN
    @staticmethod
    def _channel_window_sum(a: np.ndarray, pre: int, post: int) -> np.ndarray:
        """s[:, c] = sum of a[:, c'] for c' in [c - pre, c + post] (clipped), a (N, C, H, W)."""
        c = a.shape[1]
        s = np.zeros_like(a)
        for off in range(-pre, post + 1):
            lo = max(0, -off)
            hi = min(c, c - off)
            if hi > lo:
                s[:, lo:hi] += a[:, lo + off:hi + off]
        return s

    @staticmethod
    def _box_sum(a: np.ndarray, size: int) -> np.ndarray:
        """s[..., h, w] = sum of a over the size x size window centred at (h, w) (zero padded)."""
        pad = (size - 1) // 2
        n, c, h, w = a.shape
        ap = np.zeros((n, c, h + size - 1, w + size - 1), dtype=a.dtype)
        ap[:, :, pad:pad + h, pad:pad + w] = a
        s = np.zeros_like(a)
        for i in range(size):
            for j in range(size):
                s += ap[:, :, i:i + h, j:j + w]
        return s

    def lrn_across_fwd(self, x, y, scale, local_size: int, alpha: float, beta: float, k: float) -> None:
        t = y.dtype.type
        pre = (local_size - 1) // 2
        post = local_size - 1 - pre
        x4 = x.reshape(x.shape[0], x.shape[1], -1, 1) if x.ndim != 4 else x
        s = self._channel_window_sum(x4 * x4, pre, post)
        s *= t(alpha / local_size)
        s += t(k)
        scale.reshape(s.shape)[...] = s
        np.multiply(x4, np.power(s, t(-beta)), out=y.reshape(s.shape))

    def lrn_across_bwd(self, x, y, scale, dy, dx, local_size: int, alpha: float, beta: float) -> None:
        t = dx.dtype.type
        pre = (local_size - 1) // 2
        post = local_size - 1 - pre
        sc = scale if scale.ndim == 4 else scale.reshape(scale.shape[0], scale.shape[1], -1, 1)
        shp = sc.shape
        ratio = dy.reshape(shp) * y.reshape(shp) / sc
        acc = self._channel_window_sum(ratio, post, pre)   # c' with c in window(c')
        res = (dy.reshape(shp) * np.power(sc, t(-beta))
               - t(2.0 * alpha * beta / local_size) * x.reshape(shp) * acc)
        dx.reshape(shp)[...] = res

    def lrn_within_fwd(self, x, y, scale, local_size: int, alpha: float, beta: float) -> None:
        t = y.dtype.type
        s = self._box_sum(x * x, local_size)
        s *= t(alpha / (local_size * local_size))
        s += t(1.0)
        scale[...] = s
        np.multiply(x, np.power(s, t(-beta)), out=y)

    def lrn_within_bwd(self, x, y, scale, dy, dx, local_size: int, alpha: float, beta: float) -> None:
        t = dx.dtype.type
        ratio = dy * y / scale
        acc = self._box_sum(ratio, local_size)
        dx[...] = dy * np.power(scale, t(-beta)) - t(2.0 * alpha * beta / (local_size * local_size)) * x * acc

    # ------------------------------------------------------------------ softmax and losses
    def softmax_fwd(self, x, y, outer: int, dim: int, inner: int) -> None:
        xv = _oid(x, outer, dim, inner)
        yv = _oid(y, outer, dim, inner)
        m = xv.max(axis=1, keepdims=True)
        np.subtract(xv, m, out=yv)
        np.exp(yv, out=yv)
        yv /= yv.sum(axis=1, keepdims=True)

    def softmax_bwd(self, y, dy, dx, outer: int, dim: int, inner: int) -> None:
        yv = _oid(y, outer, dim, inner)
        dyv = _oid(dy, outer, dim, inner)
        s = (dyv * yv).sum(axis=1, keepdims=True)
        np.multiply(yv, dyv - s, out=_oid(dx, outer, dim, inner))

    # ------------------------------------------------------------------ SSD fork detection layers
    @staticmethod
    def _norm_view(norm, g: NormalizeGeometry) -> np.ndarray:
        """norm as (n, 1, 1) (per image) or (n, 1, s) (per position), broadcasting over (n, c, s)."""
        return norm.reshape(g.n, 1, 1) if g.across_spatial else norm.reshape(g.n, 1, g.s)

    @staticmethod
    def _scale_view(scale, g: NormalizeGeometry) -> np.ndarray:
        return scale.reshape(1, 1, 1) if g.channel_shared else scale.reshape(1, g.c, 1)

    def normalize_fwd(self, x, scale, y, norm, g: NormalizeGeometry) -> None:
        t = y.dtype.type
        xv = _oid(x, g.n, g.c, g.s)
        axes = (1, 2) if g.across_spatial else (1,)
        nv = self._norm_view(norm, g)
        nv[...] = np.sqrt(np.sum(xv * xv, axis=axes, keepdims=True) + t(g.eps))
        np.multiply(xv / nv, self._scale_view(scale, g), out=_oid(y, g.n, g.c, g.s))

    def normalize_bwd(self, x, y, dy, scale, norm, dx, dscale, g: NormalizeGeometry) -> None:
        xv = _oid(x, g.n, g.c, g.s)
        dyv = _oid(dy, g.n, g.c, g.s)
        sv = self._scale_view(scale, g)
        if dscale is not None:
            axes = (0, 1, 2) if g.channel_shared else (0, 2)
            ty = _oid(y, g.n, g.c, g.s) * dyv
            dscale += (ty.sum(axis=axes, keepdims=True) / sv).reshape(dscale.shape)
        if dx is not None:
            nv = self._norm_view(norm, g)
            axes = (1, 2) if g.across_spatial else (1,)
            a = np.sum(xv * dyv, axis=axes, keepdims=True)
            np.multiply((dyv - xv * (a / (nv * nv))) / nv, sv, out=_oid(dx, g.n, g.c, g.s))

    def permute(self, x, y, shape, order) -> None:
        y.reshape(-1)[...] = np.asarray(x).reshape(tuple(shape)).transpose(tuple(order)).reshape(-1)

    def prior_box_fwd(self, y, g: PriorBoxGeometry) -> None:
        f32 = np.float32
        cx = (np.arange(g.layer_w, dtype=f32) + f32(g.offset)) * f32(g.step_w)       # (W,)
        cy = (np.arange(g.layer_h, dtype=f32) + f32(g.offset)) * f32(g.step_h)       # (H,)
        hw = np.asarray(g.widths, dtype=np.float64) / 2.0                            # (P,)
        hh = np.asarray(g.heights, dtype=np.float64) / 2.0
        shape = (g.layer_h, g.layer_w, g.num_priors)
        box = np.empty(shape + (4,), dtype=np.float64)   # the fork computes in double, stores float
        box[..., 0] = (cx[None, :, None].astype(np.float64) - hw) / g.img_w
        box[..., 1] = (cy[:, None, None].astype(np.float64) - hh) / g.img_h
        box[..., 2] = (cx[None, :, None].astype(np.float64) + hw) / g.img_w
        box[..., 3] = (cy[:, None, None].astype(np.float64) + hh) / g.img_h
        out = y.reshape(2, g.dim)
        out[0] = box.astype(f32).reshape(-1)
        if g.clip:
            np.clip(out[0], 0, 1, out=out[0])
        out[1] = np.tile(np.asarray(g.variance, dtype=f32), g.dim // 4)

    def bbox_decode(self, loc, prior, boxes, g: DetectionGeometry) -> None:
        lv = loc.reshape(g.num, g.num_priors, g.num_loc_classes, 4)
        pr = prior.reshape(-1)[:2 * g.num_priors * 4].reshape(2, g.num_priors, 1, 4)
        p, v = pr[0], (np.ones_like(pr[1]) if g.variance_encoded_in_target else pr[1])
        out = boxes.reshape(g.num, g.num_priors, g.num_loc_classes, 4)
        if g.code_type == CODE_CORNER:
            out[...] = p + v * lv
        else:
            self._decode_sized(p, v, lv, out, g)
        if g.clip:
            np.clip(out, 0, 1, out=out)

    @staticmethod
    def _decode_sized(p, v, lv, out, g: DetectionGeometry) -> None:
        """CENTER_SIZE / CORNER_SIZE decoding (see ``bbox_decode``)."""
        t = out.dtype.type
        pw = p[..., 2] - p[..., 0]
        ph = p[..., 3] - p[..., 1]
        if g.code_type == CODE_CENTER_SIZE:
            cx = v[..., 0] * lv[..., 0] * pw + (p[..., 0] + p[..., 2]) * t(0.5)
            cy = v[..., 1] * lv[..., 1] * ph + (p[..., 1] + p[..., 3]) * t(0.5)
            hw = np.exp(v[..., 2] * lv[..., 2]) * pw * t(0.5)
            hh = np.exp(v[..., 3] * lv[..., 3]) * ph * t(0.5)
            out[..., 0], out[..., 1], out[..., 2], out[..., 3] = cx - hw, cy - hh, cx + hw, cy + hh
        elif g.code_type == CODE_CORNER_SIZE:
            size = np.stack([pw, ph, pw, ph], axis=-1)
            out[...] = p + v * lv * size
        else:
            raise ValueError(f"unknown code_type {g.code_type}")

    @staticmethod
    def _labels(label, outer: int, inner: int, dim: int, ignore_label: int | None):
        lab = np.asarray(label).reshape(outer, inner).astype(np.int64)
        valid = np.ones_like(lab, dtype=bool) if ignore_label is None else lab != ignore_label
        bad = valid & ((lab < 0) | (lab >= dim))
        if bad.any():
            raise ValueError(f"label {int(lab[bad][0])} outside [0, {dim})")
        return lab, valid

    def softmax_loss_fwd(self, prob, label, outer: int, dim: int, inner: int,
                         ignore_label: int | None) -> tuple[float, int]:
        lab, valid = self._labels(label, outer, inner, dim, ignore_label)
        pv = _oid(prob, outer, dim, inner)
        p = np.take_along_axis(pv, np.where(valid, lab, 0)[:, None, :], axis=1)[:, 0, :]
        p = np.maximum(p, pv.dtype.type(FLT_MIN))
        loss = -np.log(p.astype(np.float64))[valid].sum()
        return float(loss), int(valid.sum())

    def softmax_loss_bwd(self, prob, label, dx, outer: int, dim: int, inner: int,
                         ignore_label: int | None, scale: float) -> None:
        lab, valid = self._labels(label, outer, inner, dim, ignore_label)
        dv = _oid(dx, outer, dim, inner)
        dv[...] = _oid(prob, outer, dim, inner)
        o, i = np.nonzero(valid)
        dv[o, lab[o, i], i] -= 1
        dv *= valid[:, None, :].astype(dv.dtype)
        dv *= dv.dtype.type(scale)

    def sigmoid_ce_loss_fwd(self, x, target, ignore_label: int | None) -> tuple[float, int]:
        xv = x.reshape(-1).astype(np.float64)
        tv = np.asarray(target).reshape(-1).astype(np.float64)
        valid = np.ones(xv.shape, dtype=bool) if ignore_label is None else tv.astype(np.int64) != ignore_label
        pos = (xv >= 0).astype(np.float64)
        terms = xv * (tv - pos) - np.log1p(np.exp(xv - 2 * xv * pos))
        return float(-terms[valid].sum()), int(valid.sum())

    def sigmoid_ce_loss_bwd(self, x, target, dx, ignore_label: int | None, scale: float) -> None:
        t = dx.dtype.type
        sig = np.empty_like(x)
        self.sigmoid_fwd(x, sig)
        tv = np.asarray(target).reshape(x.shape)
        res = (sig - tv) * t(scale)
        if ignore_label is not None:
            res[tv.astype(np.int64) == ignore_label] = 0
        dx.reshape(x.shape)[...] = res

    def contrastive_loss_fwd(self, a, b, sim, diff, dist_sq, margin: float, legacy: bool) -> float:
        n = a.shape[0]
        np.subtract(a.reshape(n, -1), b.reshape(n, -1), out=diff.reshape(n, -1))
        d2 = (diff.reshape(n, -1).astype(np.float64) ** 2).sum(axis=1)
        dist_sq.reshape(-1)[...] = d2
        s = np.asarray(sim).reshape(-1).astype(np.int64) != 0
        if legacy:
            dis = np.maximum(margin - d2, 0.0)
        else:
            dis = np.maximum(margin - np.sqrt(d2), 0.0) ** 2
        return float(np.where(s, d2, dis).sum())

    def contrastive_loss_bwd(self, diff, dist_sq, sim, dx, sign: float, margin: float, legacy: bool,
                             scale: float) -> None:
        n = diff.shape[0]
        d2 = dist_sq.reshape(-1).astype(np.float64)
        s = np.asarray(sim).reshape(-1).astype(np.int64) != 0
        if legacy:
            mdist = margin - d2
            gdis = np.where(mdist > 0, -1.0, 0.0)
        else:
            dist = np.sqrt(d2)
            mdist = margin - dist
            gdis = np.where(mdist > 0, -mdist / (dist + 1e-4), 0.0)
        coef = sign * scale * np.where(s, 1.0, gdis)
        dx.reshape(n, -1)[...] = diff.reshape(n, -1) * coef[:, None].astype(dx.dtype)

    # ------------------------------------------------------------------ concat / eltwise
    def concat_fwd(self, xs, y, outer: int, dims, inner: int) -> None:
        yv = _oid(y, outer, int(sum(dims)), inner)
        off = 0
        for xa, d in zip(xs, dims):
            yv[:, off:off + d, :] = _oid(xa, outer, d, inner)
            off += d

    def concat_bwd(self, dy, dxs, outer: int, dims, inner: int) -> None:
        dyv = _oid(dy, outer, int(sum(dims)), inner)
        off = 0
        for dxa, d in zip(dxs, dims):
            if dxa is not None:
                _oid(dxa, outer, d, inner)[...] = dyv[:, off:off + d, :]
            off += d

    def eltwise_max_fwd(self, xs, y, mask) -> None:
        a = xs[0].reshape(-1)
        b = xs[1].reshape(-1)
        yf = _flat(y)
        mf = _flat(mask)
        first = a > b
        res = np.where(first, a, b)
        mf[...] = np.where(first, 0, 1)
        for j in range(2, len(xs)):
            c = xs[j].reshape(-1)
            better = c > res
            res = np.where(better, c, res)
            mf[better] = j
        yf[...] = res

    def eltwise_max_bwd(self, dy, mask, index: int, dx) -> None:
        np.multiply(dy.reshape(-1), mask.reshape(-1) == index, out=_flat(dx))

    # ------------------------------------------------------------------ batch norm
    def channel_mean_var(self, x, mean, var, n: int, c: int, s: int) -> None:
        xv = _oid(x, n, c, s).astype(np.float64)
        m = xv.mean(axis=(0, 2))
        _flat(mean)[...] = m
        _flat(var)[...] = ((xv - m[None, :, None]) ** 2).mean(axis=(0, 2))

    def batchnorm_fwd(self, x, mean, var, eps: float, y, inv_std, n: int, c: int, s: int) -> None:
        t = y.dtype.type
        inv = (1.0 / np.sqrt(var.reshape(-1).astype(np.float64) + eps)).astype(y.dtype)
        _flat(inv_std)[...] = inv
        yv = _oid(y, n, c, s)
        np.subtract(_oid(x, n, c, s), mean.reshape(1, c, 1), out=yv)
        yv *= inv.reshape(1, c, 1)
        del t

    def batchnorm_bwd(self, y, dy, inv_std, dx, n: int, c: int, s: int, use_global_stats: bool) -> None:
        dyv = _oid(dy, n, c, s)
        inv = inv_std.reshape(1, c, 1)
        if use_global_stats:
            np.multiply(dyv, inv, out=_oid(dx, n, c, s))
            return
        yv = _oid(y, n, c, s)
        m_dy = dyv.mean(axis=(0, 2), keepdims=True, dtype=np.float64).astype(dy.dtype)
        m_dyy = (dyv * yv).mean(axis=(0, 2), keepdims=True, dtype=np.float64).astype(dy.dtype)
        res = (dyv - m_dy - yv * m_dyy) * inv
        _oid(dx, n, c, s)[...] = res

    # ------------------------------------------------------------------ Clip ... InfogainLoss
    # (numpy; index checks raise ValueError, the layer names itself)
    def clip_fwd(self, x, y, lo: float, hi: float) -> None:
        t = y.dtype.type
        v = np.where(t(hi) < x, t(hi), x)                 # std::min(x, hi)
        np.copyto(y, np.where(t(lo) < v, v, t(lo)))       # std::max(lo, v): a NaN gives lo

    def clip_bwd(self, x, dy, dx, lo: float, hi: float) -> None:
        t = dx.dtype.type
        np.multiply(dy, (x >= t(lo)) & (x <= t(hi)), out=dx)

    def threshold_fwd(self, x, y, threshold: float) -> None:
        np.copyto(y, (x > y.dtype.type(threshold)).astype(y.dtype))

    def swish_fwd(self, x, y, s, beta: float) -> None:
        t = y.dtype.type
        np.multiply(x, t(beta), out=s)                    # Caffe's sigmoid of beta * x
        s *= t(0.5)
        np.tanh(s, out=s)
        s *= t(0.5)
        s += t(0.5)
        np.multiply(x, s, out=y)

    def swish_bwd(self, y, s, dy, dx, beta: float) -> None:
        t = dx.dtype.type
        by = y * t(beta)
        np.multiply(dy, by + s * (t(1) - by), out=dx)

    @staticmethod
    def _prelu_views(x, slope, channels: int, dim: int, shared: bool):
        xv = x.reshape(-1, channels, dim)
        a = slope.reshape(-1)
        return xv, (a[0] if shared else a.reshape(1, channels, 1))

    def prelu_fwd(self, x, slope, y, channels: int, dim: int, shared: bool) -> None:
        xv, a = self._prelu_views(x, slope, channels, dim, shared)
        t = y.dtype.type
        np.copyto(y.reshape(xv.shape), np.maximum(xv, t(0)) + a * np.minimum(xv, t(0)))

    def prelu_bwd(self, x, slope, dy, dx, dslope, channels: int, dim: int, shared: bool) -> None:
        xv, a = self._prelu_views(x, slope, channels, dim, shared)
        dyv = dy.reshape(xv.shape)
        neg = xv <= 0
        if dslope is not None:
            g = dyv * xv * neg
            if shared:
                dslope.reshape(-1)[0] += g.sum()
            else:
                dslope.reshape(-1)[...] += g.sum(axis=(0, 2))
        if dx is not None:
            np.copyto(dx.reshape(xv.shape), dyv * ((xv > 0) + a * neg))

    def mvn_fwd(self, x, y, mean, std, rows: int, dim: int, normalize_variance: bool,
                eps: float) -> None:
        t = y.dtype.type
        xv = x.reshape(rows, dim)
        m = xv.mean(axis=1, keepdims=True) if dim else np.zeros((rows, 1), y.dtype)
        d = xv - m
        mean.reshape(-1)[...] = m[:, 0]
        if normalize_variance:
            sd = np.sqrt((d * d).mean(axis=1, keepdims=True) if dim else m) + t(eps)
            std.reshape(-1)[...] = sd[:, 0]
            d = d / sd
        else:
            std.reshape(-1)[...] = 1
        y.reshape(rows, dim)[...] = d

    def mvn_bwd(self, y, dy, std, dx, rows: int, dim: int, normalize_variance: bool) -> None:
        t = dx.dtype.type
        dyv = dy.reshape(rows, dim)
        s_dy = dyv.sum(axis=1, keepdims=True)
        if normalize_variance:
            yv = y.reshape(rows, dim)
            s_ydy = (yv * dyv).sum(axis=1, keepdims=True)
            res = (dyv - (yv * s_ydy + s_dy) * t(1.0 / max(dim, 1))) / std.reshape(rows, 1)
        else:
            res = dyv - s_dy * t(1.0 / max(dim, 1))
        dx.reshape(rows, dim)[...] = res

    def reduction_fwd(self, x, y, num: int, dim: int, op: int, coeff: float) -> None:
        xv = x.reshape(num, dim)
        if op == 2:
            r = np.abs(xv).sum(axis=1)
        elif op == 3:
            r = (xv * xv).sum(axis=1)
        elif op == 1:
            r = xv.sum(axis=1)
        else:
            raise ValueError(f"reduction: op must be SUM (1), ASUM (2) or SUMSQ (3), got {op}")
        if coeff != 1.0:
            r = r * y.dtype.type(coeff)
        y.reshape(-1)[...] = r

    def reduction_bwd(self, x, dy, dx, num: int, dim: int, op: int, coeff: float) -> None:
        t = dx.dtype.type
        g = (dy.reshape(num, 1) * t(coeff)).astype(dx.dtype)
        xv = x.reshape(num, dim)
        if op == 2:
            res = np.sign(xv) * g
        elif op == 3:
            res = (t(2) * g) * xv
        else:
            res = np.broadcast_to(g, (num, dim))
        dx.reshape(num, dim)[...] = res

    def tile_fwd(self, x, y, outer: int, inner: int, tiles: int) -> None:
        y.reshape(outer, tiles, inner)[...] = x.reshape(outer, 1, inner)

    def tile_bwd(self, dy, dx, outer: int, inner: int, tiles: int) -> None:
        dyv = dy.reshape(outer, tiles, inner)
        acc = dyv[:, 0].copy()
        for t in range(1, tiles):       # Caffe's order: copy, then add the tiles one by one
            acc += dyv[:, t]
        dx.reshape(outer, inner)[...] = acc

    @staticmethod
    def _window(x_shape, y_shape, offsets) -> tuple:
        if not len(x_shape) == len(y_shape) == len(offsets):
            raise ValueError(f"crop: x {tuple(x_shape)}, y {tuple(y_shape)} and offsets "
                             f"{tuple(offsets)} differ in rank")
        for xs, ys, o in zip(x_shape, y_shape, offsets):
            if o < 0 or o + ys > xs:
                raise ValueError(f"crop: window {tuple(y_shape)} at {tuple(offsets)} does not fit "
                                 f"{tuple(x_shape)}")
        return tuple(slice(int(o), int(o) + int(s)) for o, s in zip(offsets, y_shape))

    def crop_fwd(self, x, y, offsets) -> None:
        y[...] = x[self._window(x.shape, y.shape, offsets)]

    def crop_bwd(self, dy, dx, offsets) -> None:
        win = self._window(dx.shape, dy.shape, offsets)
        dx.fill(0)
        dx[win] = dy

    @staticmethod
    def _indices(index, bound: int, what: str, integral: bool = True) -> np.ndarray:
        """int64 copies of float indices (truncated toward zero, as Caffe's static_cast);
        ValueError for one outside [0, bound) or, with ``integral``, not an integer."""
        v = np.asarray(index).reshape(-1)
        k = v.astype(np.int64)
        bad = (v < 0) | (k >= bound)
        if integral:
            bad |= k != v
        if bad.any():
            kind = "an integer" if integral else "a value"
            raise ValueError(f"{what} {float(v[bad][0]):g} is not {kind} in [0, {bound})")
        return k

    def embed_fwd(self, index, w, b, y, m_rows: int, n_out: int, k_in: int) -> None:
        k = self._indices(index, k_in, "embed index")
        res = w.reshape(k_in, n_out)[k]
        if b is not None:
            res = res + b.reshape(1, n_out)
        y.reshape(m_rows, n_out)[...] = res

    def embed_bwd(self, index, dy, dw, db, m_rows: int, n_out: int, k_in: int) -> None:
        dyv = dy.reshape(m_rows, n_out)
        if dw is not None:
            np.add.at(dw.reshape(k_in, n_out), self._indices(index, k_in, "embed index"), dyv)
        if db is not None:
            db.reshape(-1)[...] += dyv.sum(axis=0)

    def take_rows(self, x, index, y, inner: int) -> None:
        rows = x.size // inner if inner else 0
        k = self._indices(index, rows, "row index", integral=False)
        if inner:
            y.reshape(len(k), inner)[...] = x.reshape(rows, inner)[k]

    def take_rows_bwd(self, dy, index, dx, inner: int) -> None:
        dx.fill(0)
        if not inner:
            return
        rows = dx.size // inner
        k = self._indices(index, rows, "row index", integral=False)
        np.add.at(dx.reshape(rows, inner), k, dy.reshape(len(k), inner))

    def put_rows(self, dy, where, dx, inner: int) -> None:
        w = np.asarray(where).reshape(-1).astype(np.int64)
        dxv = dx.reshape(len(w), inner)
        dxv.fill(0)
        sel = w >= 0
        if inner and sel.any():
            dxv[sel] = dy.reshape(-1, inner)[w[sel]]

    def im2col_layer_fwd(self, x, y, g: Im2colGeometry) -> None:
        xv = x.reshape(g.x_shape)
        pads = [(0, 0), (0, 0)] + [(p, p) for p in g.pad]
        xp = np.pad(xv, pads) if any(g.pad) else xv
        ksize = int(np.prod(g.kernel))
        yv = y.reshape((g.num, g.channels, ksize) + g.out_spatial)
        for i, (_, sl) in enumerate(tap_slices(g.kernel, g.stride, g.dilation, g.out_spatial)):
            yv[:, :, i] = xp[(slice(None), slice(None)) + sl]

    def im2col_layer_bwd(self, dy, dx, g: Im2colGeometry) -> None:
        padded = tuple(s + 2 * p for s, p in zip(g.in_spatial, g.pad))
        dxp = np.zeros((g.num, g.channels) + padded, dtype=dx.dtype)
        ksize = int(np.prod(g.kernel))
        dyv = dy.reshape((g.num, g.channels, ksize) + g.out_spatial)
        for i, (_, sl) in enumerate(tap_slices(g.kernel, g.stride, g.dilation, g.out_spatial)):
            dxp[(slice(None), slice(None)) + sl] += dyv[:, :, i]
        inner = tuple(slice(p, p + s) for p, s in zip(g.pad, g.in_spatial))
        dx.reshape(g.x_shape)[...] = dxp[(slice(None), slice(None)) + inner]

    def hinge_loss_fwd(self, x, label, margin, num: int, dim: int, norm: int) -> float:
        lab, _ = self._labels(label, num, 1, dim, None)
        m = x.reshape(num, dim).copy()
        rows = np.arange(num)
        m[rows, lab[:, 0]] *= -1
        np.maximum(m + m.dtype.type(1), 0, out=m)
        margin.reshape(num, dim)[...] = m
        m64 = m.astype(np.float64)
        return float(np.abs(m64).sum() if norm == 1 else (m64 * m64).sum())

    def hinge_loss_bwd(self, margin, label, dx, num: int, dim: int, norm: int, scale: float) -> None:
        lab, _ = self._labels(label, num, 1, dim, None)
        mv = margin.reshape(num, dim)
        g = np.sign(mv) if norm == 1 else mv.copy()
        g[np.arange(num), lab[:, 0]] *= -1
        dx.reshape(num, dim)[...] = g * dx.dtype.type(scale)

    def multinomial_logistic_loss_fwd(self, prob, label, num: int, dim: int) -> float:
        lab, _ = self._labels(label, num, 1, dim, None)
        pv = prob.reshape(num, dim)
        p = np.maximum(pv[np.arange(num), lab[:, 0]], pv.dtype.type(1e-20))
        return float(-np.log(p.astype(np.float64)).sum())

    def multinomial_logistic_loss_bwd(self, prob, label, dx, num: int, dim: int, scale: float) -> None:
        lab, _ = self._labels(label, num, 1, dim, None)
        t = dx.dtype.type
        pv = prob.reshape(num, dim)
        dv = dx.reshape(num, dim)
        dv.fill(0)
        rows = np.arange(num)
        dv[rows, lab[:, 0]] = t(scale) / np.maximum(pv[rows, lab[:, 0]], t(1e-20))

    def infogain_loss_fwd(self, prob, label, h, outer: int, dim: int, inner: int,
                          ignore_label: int | None) -> tuple[float, int]:
        lab, valid = self._labels(label, outer, inner, dim, ignore_label)
        pv = prob.reshape(outer, dim, inner)
        hv = h.reshape(dim, dim).astype(np.float64)
        logp = np.log(np.maximum(pv, pv.dtype.type(1e-20)).astype(np.float64))   # (outer, dim, inner)
        rows = hv[np.where(valid, lab, 0)]                                       # (outer, inner, dim)
        terms = -(rows * logp.transpose(0, 2, 1)).sum(axis=2)
        return float(terms[valid].sum()), int(valid.sum())

    def infogain_loss_bwd(self, prob, label, h, dx, outer: int, dim: int, inner: int,
                          ignore_label: int | None, scale: float) -> None:
        lab, valid = self._labels(label, outer, inner, dim, ignore_label)
        t = dx.dtype.type
        pv = prob.reshape(outer, dim, inner)
        hv = h.reshape(dim, dim)
        safe = np.where(valid, lab, 0)
        rowsum = hv.sum(axis=1)
        g = pv * rowsum[safe][:, None, :] - hv[safe].transpose(0, 2, 1)
        g *= valid[:, None, :]
        dx.reshape(outer, dim, inner)[...] = g * t(scale)
