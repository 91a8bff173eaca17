"""The op interface every backend implements (``cpu.py``: numpy + numba.njit; ``cuda.py``: kernels/).

Layers call only ``self.backend.<op>``; they never import kernels or numpy math on device arrays.
This file is the contract: names here are stable (ops are added, never renamed).

Conventions (all ops)
---------------------
- An *array* is the backend's array type: ``numpy.ndarray`` on cpu, a numba device array on cuda.
  float32, C-contiguous, NCHW unless stated. Index arrays (pool/eltwise masks) are int32; labels are
  float32 holding integers (Caffe stores labels as floats).
- Outputs are passed in preallocated and ops return None, except reductions that return host
  Python floats (``dot``, ``asum``, ``sumsq``, loss sums).
- **Accumulation rule** (as in Caffe and llm.c): parameter gradients (``dw``, ``db``, ``ds``)
  **accumulate** (``+=``, so ``iter_size`` > 1 works); bottom gradients (``dx``) are **written**
  (``=``). Ops whose name says otherwise say so in their docstring.
- In-place: every elementwise op accepts ``y is x`` / ``dx is dy`` (Caffe in-place layers).
- Geometry objects (``netdef.geometry``: ``ConvGeometry``, ``ConvNdGeometry``, ``PoolGeometry``,
  built only by ``netdef.shapes.infer``) are frozen and hashable, so a backend may
  cache launch configurations or workspaces per geometry.
- Shapes "(outer, dim, inner)": the array is viewed as a 3-D C-contiguous array; ``outer`` is the
  product of the axes before the active axis, ``inner`` of the axes after it (Caffe's
  ``outer_num_ / channels / inner_num_``).

Host mirror (how ``Blob`` uses ``host_mirror``)
-----------------------------------------------
When ``host_mirror`` is False (cpu), device arrays *are* host numpy arrays and ``Blob.data`` returns
them directly. When True (cuda), ``Blob`` keeps a numpy mirror and a head flag (see runner/blob.py).
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from netdef.geometry import (
    ConvGeometry,
    ConvNdGeometry,
    DetectionGeometry,
    Im2colGeometry,
    NormalizeGeometry,
    PoolGeometry,
    PriorBoxGeometry,
)

Array = Any  # numpy.ndarray on cpu, numba DeviceNDArray on cuda


def host_available_memory() -> int | None:
    """Linux's MemAvailable plus free swap, in bytes (None where /proc/meminfo is absent)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        kib = int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])
        return kib * 1024
    except (OSError, KeyError, ValueError):
        return None


class ConvCache:
    """What a backend may keep of one convolution input from its forward to its backward: the
    input's im2col columns, so that backward does not run im2col again (memory traded for time,
    as a cuDNN workspace is). A layer creates one per bottom and passes it to both calls and calls
    ``invalidate()`` when the input may have changed since the forward. The backend arms it at
    the first backward that fits its ``keep_columns_bytes`` budget, so a forward-only (test) net
    never pays the memory; ``state`` is the backend's own (None until armed)."""

    __slots__ = ("armed", "state", "reserved", "owner")

    def __init__(self) -> None:
        self.armed = False
        self.state: Any = None
        self.reserved = 0        # bytes counted against the owner backend's budget
        self.owner: Backend | None = None

    def invalidate(self) -> None:
        """The input may differ from what the last forward saw: backward must recompute."""
        if self.state is not None:
            self.state.valid = False

    def release(self) -> None:
        """Drop the kept columns and return their bytes to the backend's budget."""
        if self.owner is not None and self.reserved:
            self.owner._kept_columns_bytes -= self.reserved
        self.reserved = 0
        self.armed = False
        self.state = None

    def __del__(self) -> None:   # a net that goes away gives its budget back
        self.release()


class Backend(abc.ABC):
    """Abstract op set. ``name`` is "cpu" or "cuda"; ``dtype`` is the float type of arrays
    (float32; the cpu backend can also run float64 for gradient checks); ``precision`` the GEMMs'
    input format ("fp32", or tf32/fp16/bf16 on cuda's tensor cores, see ``runner.backend``)."""

    name: str = "abstract"
    precision: str = "fp32"
    host_mirror: bool = False
    dtype: np.dtype = np.dtype(np.float32)
    #: bytes of convolution columns that ConvCaches may keep, all layers together (0: none)
    keep_columns_bytes: int = 0
    _kept_columns_bytes: int = 0

    def available_memory(self) -> tuple[int | None, str]:
        """(bytes free for new arrays or None when unknown, what that memory is) for the Net's
        check before it allocates (runner/net.py). Default: the host's available memory."""
        return host_available_memory(), "available host memory"

    def workspace_cap(self) -> int | None:
        """Bytes this backend's im2col workspace is capped at (None: the whole batch's columns,
        as the cpu backend allocates them)."""
        return None

    def columns_fit(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more of kept columns fit in free memory now (cpu: always)."""
        return True

    def arm_conv_cache(self, cache: ConvCache | None, nbytes: int) -> bool:
        """Count ``nbytes`` of kept columns for ``cache`` against ``keep_columns_bytes`` (growing
        its reservation when its input grew); True when the cache may keep them. A cache that no
        longer fits is disarmed and its memory released."""
        if cache is None:
            return False
        if cache.owner is not None and cache.owner is not self:
            cache.release()          # a layer moved to another backend
        extra = nbytes - cache.reserved
        if extra <= 0:
            return cache.armed
        if self._kept_columns_bytes + extra <= self.keep_columns_bytes and self.columns_fit(extra):
            self._kept_columns_bytes += extra
            cache.reserved = nbytes
            cache.owner = self
            cache.armed = True
            return True
        cache.release()
        return False

    # ------------------------------------------------------------------ arrays
    @abc.abstractmethod
    def empty(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Uninitialised array of ``shape`` (dtype defaults to ``self.dtype``; int32 for masks)."""

    @abc.abstractmethod
    def zeros(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Zero-filled array of ``shape``."""

    @abc.abstractmethod
    def to_device(self, host: np.ndarray, out: Array | None = None) -> Array:
        """Copy a host numpy array to a new backend array (or into ``out``, same size, returned).
        On cpu, a new C-contiguous array of ``self.dtype`` (never aliases ``host``) unless ``out``."""

    @abc.abstractmethod
    def to_host(self, arr: Array, out: np.ndarray | None = None) -> np.ndarray:
        """Copy a backend array to host numpy (into ``out`` when given, same size). On cpu returns
        ``arr`` itself when ``out`` is None (no copy)."""

    def view(self, buf: Array, shape: Sequence[int]) -> Array:
        """A view of the first prod(shape) elements of the 1-D array ``buf`` with ``shape`` (no copy).
        Blob uses this to reshape within its capacity, like Caffe's Blob::Reshape."""
        n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        return buf[:n].reshape(tuple(int(s) for s in shape))

    def reshape(self, arr: Array, shape: Sequence[int]) -> Array:
        """A view of contiguous ``arr`` with another shape of the same size (no copy)."""
        return arr.reshape(tuple(int(s) for s in shape))

    @abc.abstractmethod
    def copy(self, src: Array, dst: Array) -> None:
        """dst = src (same number of elements; shapes may differ, flat order)."""

    @abc.abstractmethod
    def fill(self, arr: Array, value: float) -> None:
        """arr[...] = value."""

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on cpu); used by timing code."""
        return None

    # ------------------------------------------------------------------ BLAS-like
    @abc.abstractmethod
    def axpy(self, alpha: float, x: Array, y: Array) -> None:
        """y += alpha * x (flat, same size)."""

    @abc.abstractmethod
    def axpby(self, alpha: float, x: Array, beta: float, y: Array) -> None:
        """y = alpha * x + beta * y (flat, same size). beta == 0 must not read y (NaN-safe)."""

    @abc.abstractmethod
    def scal(self, alpha: float, x: Array) -> None:
        """x *= alpha in place (alpha == 0 writes zeros)."""

    @abc.abstractmethod
    def dot(self, x: Array, y: Array) -> float:
        """sum(x * y) over all elements, returned as a host float."""

    @abc.abstractmethod
    def asum(self, x: Array) -> float:
        """sum(|x|) as a host float."""

    @abc.abstractmethod
    def sumsq(self, x: Array) -> float:
        """sum(x * x) as a host float."""

    @abc.abstractmethod
    def sumsq_total(self, arrays: Sequence[Array]) -> float:
        """sum(x * x) over every element of every array, as one host float (the squared L2 norm
        of all parameter diffs for Caffe's clip_gradients)."""

    # ------------------------------------------------------------------ solver
    def executor(self, net: Any, replay: bool | None = None) -> Any:
        """How a Solver runs ``net`` here (``runner.executor``): eager; the cuda backend can
        replay recorded launches instead (``replay`` None: its default)."""
        from runner.executor import EagerExecutor
        return EagerExecutor(net)

    # Caffe's update rules, one op each (runner/solver/updates.py maps solver types to them). For
    # one parameter blob, in Caffe's order: diff *= diff_scale (Normalize, 1/iter_size); diff +=
    # local_decay * w (L2) or local_decay * sign(w) (L1) (Regularize, skipped for decay 0); the
    # rule below turns diff into the update value, updating the history blobs; then w -= diff.
    # w, diff and the histories have the same size; ``local_rate`` = rate * lr_mult.
    @abc.abstractmethod
    def sgd_update(self, w: Array, diff: Array, history: Array, local_rate: float, momentum: float,
                   local_decay: float = 0.0, regularization: str = "L2", diff_scale: float = 1.0) -> None:
        """h = momentum*h + local_rate*g; update = h."""

    @abc.abstractmethod
    def nesterov_update(self, w: Array, diff: Array, history: Array, local_rate: float,
                        momentum: float, local_decay: float = 0.0, regularization: str = "L2",
                        diff_scale: float = 1.0) -> None:
        """h_old = h; h = momentum*h + local_rate*g; update = (1+momentum)*h - momentum*h_old."""

    @abc.abstractmethod
    def adagrad_update(self, w: Array, diff: Array, history: Array, local_rate: float, delta: float,
                       local_decay: float = 0.0, regularization: str = "L2",
                       diff_scale: float = 1.0) -> None:
        """h += g^2; update = local_rate * g / (sqrt(h) + delta)."""

    @abc.abstractmethod
    def rmsprop_update(self, w: Array, diff: Array, history: Array, local_rate: float,
                       rms_decay: float, delta: float, local_decay: float = 0.0,
                       regularization: str = "L2", diff_scale: float = 1.0) -> None:
        """h = rms_decay*h + (1-rms_decay)*g^2; update = local_rate * g / (sqrt(h) + delta)."""

    @abc.abstractmethod
    def adadelta_update(self, w: Array, diff: Array, history: Array, update_history: Array,
                        local_rate: float, momentum: float, delta: float, local_decay: float = 0.0,
                        regularization: str = "L2", diff_scale: float = 1.0) -> None:
        """h = m*h + (1-m)*g^2; u = g*sqrt((h2+delta)/(h+delta)); h2 = m*h2 + (1-m)*u^2;
        update = local_rate*u (m = momentum; h2 = ``update_history``)."""

    @abc.abstractmethod
    def adam_update(self, w: Array, diff: Array, m: Array, v: Array, rate: float, beta1: float,
                    beta2: float, eps_hat: float, local_decay: float = 0.0,
                    regularization: str = "L2", diff_scale: float = 1.0) -> None:
        """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; update = rate * m / (sqrt(v) + eps_hat),
        where ``rate`` is the step's bias-corrected rate (local_rate * sqrt(1-b2^t)/(1-b1^t),
        runner.solver.updates.adam_rate)."""

    @abc.abstractmethod
    def gemm(self, trans_a: bool, trans_b: bool, alpha: float, a: Array, b: Array,
             beta: float, c: Array) -> None:
        """C = alpha * op(A) @ op(B) + beta * C with 2-D arrays; op(A) is (M, K), op(B) (K, N),
        C (M, N). beta == 0 must not read C (C may hold NaN garbage). A/B/C are C-contiguous
        2-D (possibly views of a larger buffer)."""

    # ------------------------------------------------------------------ elementwise arithmetic
    @abc.abstractmethod
    def add(self, a: Array, b: Array, out: Array) -> None:
        """out = a + b (elementwise, same size)."""

    @abc.abstractmethod
    def sub(self, a: Array, b: Array, out: Array) -> None:
        """out = a - b."""

    @abc.abstractmethod
    def mul(self, a: Array, b: Array, out: Array) -> None:
        """out = a * b."""

    @abc.abstractmethod
    def div(self, a: Array, b: Array, out: Array) -> None:
        """out = a / b."""

    # ------------------------------------------------------------------ activations (y = f(x))
    @abc.abstractmethod
    def relu_fwd(self, x: Array, y: Array, negative_slope: float = 0.0) -> None:
        """y = x if x > 0 else negative_slope * x (Caffe ReLU / leaky ReLU)."""

    @abc.abstractmethod
    def relu_bwd(self, x: Array, dy: Array, dx: Array, negative_slope: float = 0.0) -> None:
        """dx = dy * (1 if x > 0 else negative_slope). ``x`` is the bottom data (for an in-place ReLU
        it is the top data, which has the same sign). dx =."""

    @abc.abstractmethod
    def sigmoid_fwd(self, x: Array, y: Array) -> None:
        """y = 1 / (1 + exp(-x))."""

    @abc.abstractmethod
    def sigmoid_bwd(self, y: Array, dy: Array, dx: Array) -> None:
        """dx = dy * y * (1 - y) (uses the top data y)."""

    @abc.abstractmethod
    def tanh_fwd(self, x: Array, y: Array) -> None:
        """y = tanh(x)."""

    @abc.abstractmethod
    def tanh_bwd(self, y: Array, dy: Array, dx: Array) -> None:
        """dx = dy * (1 - y^2)."""

    @abc.abstractmethod
    def elu_fwd(self, x: Array, y: Array, alpha: float) -> None:
        """y = x if x > 0 else alpha * (exp(x) - 1)."""

    @abc.abstractmethod
    def elu_bwd(self, x: Array, y: Array, dy: Array, dx: Array, alpha: float) -> None:
        """dx = dy if x > 0 else dy * (y + alpha) (Caffe's ELU backward; x is the bottom data)."""

    @abc.abstractmethod
    def abs_fwd(self, x: Array, y: Array) -> None:
        """y = |x| (AbsVal)."""

    @abc.abstractmethod
    def abs_bwd(self, x: Array, dy: Array, dx: Array) -> None:
        """dx = sign(x) * dy (sign(0) = 0)."""

    @abc.abstractmethod
    def bnll_fwd(self, x: Array, y: Array) -> None:
        """y = x + log(1 + exp(-x)) if x > 0 else log(1 + exp(x))  (BNLL, overflow-safe)."""

    @abc.abstractmethod
    def bnll_bwd(self, x: Array, dy: Array, dx: Array) -> None:
        """dx = dy * e / (e + 1) with e = exp(min(x, 50)) (Caffe's kBNLL_THRESHOLD = 50)."""

    @abc.abstractmethod
    def power_fwd(self, x: Array, y: Array, power: float, scale: float, shift: float) -> None:
        """y = (shift + scale * x) ^ power (Caffe Power; power == 0 gives 1 everywhere)."""

    @abc.abstractmethod
    def power_bwd(self, x: Array, y: Array, dy: Array, dx: Array, power: float, scale: float,
                  shift: float) -> None:
        """dx = dy * scale * power * (shift + scale * x) ^ (power - 1); power == 0 or scale == 0
        gives dx = 0; power == 1 gives dx = dy * scale. dx =."""

    @abc.abstractmethod
    def exp_fwd(self, x: Array, y: Array, base: float, scale: float, shift: float) -> None:
        """y = base ^ (shift + scale * x); base == -1 means e (Caffe Exp)."""

    @abc.abstractmethod
    def exp_bwd(self, y: Array, dy: Array, dx: Array, base: float, scale: float) -> None:
        """dx = dy * y * ln(base) * scale (base == -1 means e)."""

    @abc.abstractmethod
    def log_fwd(self, x: Array, y: Array, base: float, scale: float, shift: float) -> None:
        """y = log_base(shift + scale * x); base == -1 means e (Caffe Log)."""

    @abc.abstractmethod
    def log_bwd(self, x: Array, dy: Array, dx: Array, base: float, scale: float, shift: float) -> None:
        """dx = dy * scale / ((shift + scale * x) * ln(base)) (ln(base) = 1 for base e)."""

    # ------------------------------------------------------------------ dropout
    @abc.abstractmethod
    def dropout_fwd(self, x: Array, y: Array, mask: Array, ratio: float, seed: int, counter: int) -> None:
        """TRAIN-phase dropout: mask (uint8, x's size) = kernels.dropout.dropout_mask_host(x.size,
        ratio, seed, stream=counter), i.e. mask[i] = philox(seed, counter, i) > UINT_MAX * ratio
        (Caffe's threshold), y = x * mask * float32(1 / (1 - ratio)). The generator is counter-based
        and shared by both backends, so masks agree bit for bit; the layer passes a new ``counter``
        (stream) for every forward."""

    @abc.abstractmethod
    def dropout_bwd(self, dy: Array, mask: Array, dx: Array, ratio: float) -> None:
        """dx = dy * mask / (1 - ratio)."""

    # ------------------------------------------------------------------ bias / scale (broadcast)
    @abc.abstractmethod
    def bias_fwd(self, x: Array, b: Array, y: Array, outer: int, dim: int, inner: int) -> None:
        """y[o, d, i] = x[o, d, i] + b[d]  (x, y viewed as (outer, dim, inner); b (dim,)). y may be x."""

    @abc.abstractmethod
    def bias_bwd(self, dy: Array, db: Array, outer: int, dim: int, inner: int) -> None:
        """db[d] += sum over o, i of dy[o, d, i]  (param gradient: accumulates)."""

    @abc.abstractmethod
    def scale_fwd(self, x: Array, s: Array, b: Array | None, y: Array, outer: int, dim: int,
                  inner: int) -> None:
        """y[o, d, i] = x[o, d, i] * s[d] (+ b[d] when b is given). y may be x."""

    @abc.abstractmethod
    def scale_bwd(self, x: Array, s: Array, dy: Array, dx: Array | None, ds: Array | None,
                  outer: int, dim: int, inner: int, accumulate_ds: bool = True) -> None:
        """dx[o, d, i] = dy[o, d, i] * s[d] (=), ds[d] += sum_{o,i} dy * x (accumulates; with
        ``accumulate_ds=False`` ds is written, used when s is a bottom rather than a param).
        ``x`` is the bottom data before the forward (a copy for in-place Scale). None skips."""

    # ------------------------------------------------------------------ convolution
    @abc.abstractmethod
    def conv_forward(self, x: Array, w: Array, b: Array | None, y: Array, g: ConvGeometry,
                     cache: ConvCache | None = None) -> None:
        """y = conv2d(x, w) (+ b per output channel), Caffe's cross-correlation with groups, pad,
        stride, dilation. Shapes from ``g``. An armed ``cache`` keeps x's columns for backward."""

    @abc.abstractmethod
    def conv_backward_data(self, dy: Array, w: Array, dx: Array, g: ConvGeometry) -> None:
        """dx = conv2d_transpose(dy, w): the gradient of ``conv_forward`` w.r.t. x (dx =).
        Deconvolution's forward is this op with (dy, dx) = (bottom, top)."""

    @abc.abstractmethod
    def conv_backward_weight(self, x: Array, dy: Array, dw: Array, g: ConvGeometry,
                             cache: ConvCache | None = None) -> None:
        """dw += gradient of ``conv_forward`` w.r.t. w (accumulates). With the forward's ``cache``
        the kept columns of x are used when valid (the backend may arm it here)."""

    def conv_backward(self, x: Array, w: Array, dy: Array, dx: Array | None, dw: Array | None,
                      db: Array | None, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        """All three gradients of ``conv_forward``; None skips one. db += sum over n, h, w of dy;
        dw += ; dx =. Default: composed of the three ops above."""
        if db is not None:
            self.bias_bwd(dy, db, g.n, g.c_out, g.out_h * g.out_w)
        if dw is not None:
            self.conv_backward_weight(x, dy, dw, g, cache)
        if dx is not None:
            self.conv_backward_data(dy, w, dx, g)

    # ------------------------------------------------------------------ pooling
    @abc.abstractmethod
    def max_pool_fwd(self, x: Array, y: Array, mask: Array, g: PoolGeometry) -> None:
        """y[n,c,ph,pw] = max over the window of x; mask (int32, y's shape) = flat index h*W + w of
        the first maximum in row-major window order (Caffe's argmax, first wins)."""

    @abc.abstractmethod
    def max_pool_bwd(self, dy: Array, mask: Array, dx: Array, g: PoolGeometry) -> None:
        """dx = 0 then dx[n, c, mask[n,c,ph,pw]] += dy[n,c,ph,pw] (overlapping windows add)."""

    @abc.abstractmethod
    def ave_pool_fwd(self, x: Array, y: Array, g: PoolGeometry) -> None:
        """y = sum of x over the clipped window / pool_size (pool_size counts padding, see
        PoolGeometry)."""

    @abc.abstractmethod
    def ave_pool_bwd(self, dy: Array, dx: Array, g: PoolGeometry) -> None:
        """dx = sum over windows containing (h, w) of dy / pool_size (dx =)."""

    # ------------------------------------------------------------------ stochastic pooling
    @abc.abstractmethod
    def sto_pool_fwd_train(self, x: Array, y: Array, idx: Array, g: PoolGeometry, seed: int,
                           stream: int) -> None:
        """TRAIN-phase STOCHASTIC pooling (Caffe's StoPoolForwardTrain; no padding): for each
        window [ph*stride, +kernel) clipped to the image, u = the output's uniform in (0, 1]
        (``kernels.pool.uniform_host(y.size, seed, stream)``, Philox words shared by
        both backends), thres = u * (window sum); the first element in row-major order whose running
        sum is >= thres is picked: y = its value, idx (int32, y's shape) = its h*W + w (y = 0, idx
        = -1 when none is). The layer passes a new ``stream`` every forward."""

    @abc.abstractmethod
    def sto_pool_fwd_test(self, x: Array, y: Array, g: PoolGeometry) -> None:
        """TEST-phase STOCHASTIC pooling: y = sum(x^2) / (FLT_MIN + sum(x)) over each window."""

    @abc.abstractmethod
    def sto_pool_bwd(self, dy: Array, idx: Array, dx: Array, g: PoolGeometry) -> None:
        """dx = 0 then dx[n, c, idx[n,c,ph,pw]] += dy[n,c,ph,pw] (idx -1: nothing) (dx =)."""

    # ------------------------------------------------------------------ N-D convolution
    @abc.abstractmethod
    def conv_nd_forward(self, x: Array, w: Array, b: Array | None, y: Array, g: ConvNdGeometry) -> None:
        """y (N, C_out, *out_shape) = the N-D cross-correlation of x (N, C_in, *in_shape) with w
        (C_out, C_in/group, *kernel), groups/pad/stride/dilation per spatial axis from ``g`` (+ b
        per output channel): Caffe's im2col_nd + GEMM path."""

    @abc.abstractmethod
    def conv_nd_backward(self, x: Array | None, w: Array | None, dy: Array, dx: Array | None,
                         dw: Array | None, db: Array | None, g: ConvNdGeometry) -> None:
        """Gradients of ``conv_nd_forward``: db += sum over n and positions of dy; dw += (x read
        only for it); dx = (w read only for it); None skips one (x / w may then be None).
        Deconvolution's forward is this op's dx with (dy, dx) = (bottom, top)."""

    # ------------------------------------------------------------------ LSTM unit
    @abc.abstractmethod
    def lstm_unit_fwd(self, c_prev: Array, x: Array, cont: Array, c: Array, h: Array) -> None:
        """Caffe's LSTMUnit step on N streams of D cells: x (N, 4D) = pre-activations [i, f, o, g];
        i, o = sigmoid, f = 0 if cont == 0 else cont * sigmoid(f'), g = 2*sigmoid(2g')-1;
        c = f * c_prev + i * g, h = o * tanh(c) (N, D); cont (N,)."""

    @abc.abstractmethod
    def lstm_unit_bwd(self, c_prev: Array, x: Array, cont: Array, c: Array, dc: Array, dh: Array,
                      dc_prev: Array, dx: Array) -> None:
        """Caffe's LSTMUnit backward: t = tanh(c), dc_term = dc + dh*o*(1-t^2); dc_prev =
        dc_term*f; dx (N, 4D) = [dc_term*g*i(1-i), dc_term*c_prev*f(1-f), dh*t*o(1-o),
        dc_term*i*(1-g^2)] (both written)."""

    # ------------------------------------------------------------------ LRN
    @abc.abstractmethod
    def lrn_across_fwd(self, x: Array, y: Array, scale: Array, local_size: int, alpha: float,
                       beta: float, k: float) -> None:
        """ACROSS_CHANNELS LRN on (N, C, H, W): scale = k + alpha/local_size * sum over channels
        c' in [c - (local_size-1)/2, c + local_size/2] (clipped) of x[c']^2; y = x * scale^-beta.
        ``scale`` (x's shape) is kept for the backward."""

    @abc.abstractmethod
    def lrn_across_bwd(self, x: Array, y: Array, scale: Array, dy: Array, dx: Array, local_size: int,
                       alpha: float, beta: float) -> None:
        """dx = dy * scale^-beta - 2*alpha*beta/local_size * x * sum_{c' window} dy[c'] * y[c'] /
        scale[c'] (Caffe's CrossChannelBackward). dx =."""

    @abc.abstractmethod
    def lrn_within_fwd(self, x: Array, y: Array, scale: Array, local_size: int, alpha: float,
                       beta: float) -> None:
        """WITHIN_CHANNEL LRN (Caffe composes Split/Power/AvePool/Power/Product): scale = 1 +
        alpha * avgpool_{local_size x local_size, pad (local_size-1)/2, stride 1}(x^2) with the AVE
        divisor local_size^2; y = x * scale^-beta. (k is not used by Caffe in this mode.)"""

    @abc.abstractmethod
    def lrn_within_bwd(self, x: Array, y: Array, scale: Array, dy: Array, dx: Array, local_size: int,
                       alpha: float, beta: float) -> None:
        """Gradient of ``lrn_within_fwd``: dx = dy * scale^-beta - 2*alpha*beta/local_size^2 * x *
        sum over windows containing (h, w) of (dy * y / scale). dx =."""

    # ------------------------------------------------------------------ softmax and losses
    @abc.abstractmethod
    def softmax_fwd(self, x: Array, y: Array, outer: int, dim: int, inner: int) -> None:
        """y = softmax over axis ``dim`` of x viewed as (outer, dim, inner) (max-subtracted)."""

    @abc.abstractmethod
    def softmax_bwd(self, y: Array, dy: Array, dx: Array, outer: int, dim: int, inner: int) -> None:
        """dx = y * (dy - sum_d(dy * y)) per (outer, inner) column. dx may be dy."""

    # ------------------------------------------------------------------ SSD fork detection layers
    @abc.abstractmethod
    def normalize_fwd(self, x: Array, scale: Array, y: Array, norm: Array,
                      g: NormalizeGeometry) -> None:
        """The SSD fork's Normalize on x viewed as (g.n, g.c, g.s): norm = sqrt(sum of x^2 + eps),
        over (c, s) per image into ``norm`` (n,) when ``g.across_spatial``, else over c per
        (n, s) into ``norm`` (n, s); y = x / norm * scale, ``scale`` (1,) when
        ``g.channel_shared`` else (c,). y must not be x (the layer keeps a copy)."""

    @abc.abstractmethod
    def normalize_bwd(self, x: Array, y: Array, dy: Array, scale: Array, norm: Array,
                      dx: Array | None, dscale: Array | None, g: NormalizeGeometry) -> None:
        """Gradients of ``normalize_fwd`` (``y`` its output, ``norm`` its norms), with
        a = sum of x * dy over the norm's axes: dx = (dy - x * a / norm^2) / norm * scale (=);
        dscale += sum over the scale's broadcast axes of y * dy / scale (accumulates; the fork's
        formula). None skips one."""

    @abc.abstractmethod
    def permute(self, x: Array, y: Array, shape: Sequence[int], order: Sequence[int]) -> None:
        """y = x.transpose(order), x C-contiguous with ``shape`` (any rank; y has the permuted
        shape). Permute's backward is this op with the inverse order."""

    @abc.abstractmethod
    def prior_box_fwd(self, y: Array, g: PriorBoxGeometry) -> None:
        """The SSD fork's prior boxes into y (1, 2, g.dim): channel 0 per (h, w, p) the box
        (cx -+ widths[p]/2) / img_w, (cy -+ heights[p]/2) / img_h with cx = (w + offset) * step_w,
        cy = (h + offset) * step_h, clipped to [0, 1] when ``g.clip``; channel 1 the variances."""

    @abc.abstractmethod
    def bbox_decode(self, loc: Array, prior: Array, boxes: Array, g: DetectionGeometry) -> None:
        """The SSD fork's DecodeBBox (g.code_type CORNER / CENTER_SIZE / CORNER_SIZE, variances from
        the prior's second channel unless ``g.variance_encoded_in_target``) of loc (num, P*L*4)
        against prior (1, 2, P*4) into boxes (num, P*L*4) as (xmin, ymin, xmax, ymax), clamped to
        [0, 1] when ``g.clip`` (OpenCV's extension; the fork does not clip)."""

    def detection_rows(self, boxes: Array, conf: Array, g: DetectionGeometry) -> np.ndarray:
        """Host (K, 7) float32 rows (image_id, label, score, xmin, ymin, xmax, ymax) of the fork's
        per-class NMS and keep_top_k over decoded ``boxes`` and ``conf`` (num, P*C); see
        ``runner.backend.detection``. Default: both arrays are copied to the host (Caffe-SSD's GPU
        path also runs its NMS on the host)."""
        from runner.backend.detection import detections
        return detections(self.to_host(boxes), self.to_host(conf), g)

    @abc.abstractmethod
    def softmax_loss_fwd(self, prob: Array, label: Array, outer: int, dim: int, inner: int,
                         ignore_label: int | None) -> tuple[float, int]:
        """(sum over (o, i) with label != ignore_label of -log(max(prob[o, label, i], FLT_MIN)),
        number of such (o, i)) as host values. label is (outer * inner,) floats. A label outside
        [0, dim) that is not ignored raises ValueError naming it."""

    @abc.abstractmethod
    def softmax_loss_bwd(self, prob: Array, label: Array, dx: Array, outer: int, dim: int, inner: int,
                         ignore_label: int | None, scale: float) -> None:
        """dx = scale * (prob - onehot(label)), 0 at ignored positions (dx =)."""

    @abc.abstractmethod
    def sigmoid_ce_loss_fwd(self, x: Array, target: Array, ignore_label: int | None) -> tuple[float, int]:
        """(sum over i with target != ignore of -(x*(t - (x>=0)) - log(1 + exp(x - 2x(x>=0)))),
        count of non-ignored) as host values (Caffe SigmoidCrossEntropyLoss, stable form)."""

    @abc.abstractmethod
    def sigmoid_ce_loss_bwd(self, x: Array, target: Array, dx: Array, ignore_label: int | None,
                            scale: float) -> None:
        """dx = scale * (sigmoid(x) - target), 0 where target == ignore_label (dx =)."""

    @abc.abstractmethod
    def contrastive_loss_fwd(self, a: Array, b: Array, sim: Array, diff: Array, dist_sq: Array,
                             margin: float, legacy: bool) -> float:
        """a, b: (N, D), sim: (N,) floats (1 similar, 0 dissimilar). Writes diff = a - b and
        dist_sq[n] = |diff_n|^2; returns sum_n of: sim ? d^2 : (legacy ? max(margin - d^2, 0)
        : max(margin - d, 0)^2), d = sqrt(d^2). (The layer divides by 2N.)"""

    @abc.abstractmethod
    def contrastive_loss_bwd(self, diff: Array, dist_sq: Array, sim: Array, dx: Array, sign: float,
                             margin: float, legacy: bool, scale: float) -> None:
        """dx (N, D) = sign * scale * g_n * diff_n with g = 1 for similar pairs; dissimilar:
        legacy: -1 if margin - d^2 > 0 else 0; else -(margin - d)/(d + 1e-4) if margin - d > 0 else
        0. ``sign`` is +1 for bottom a, -1 for bottom b (dx =)."""

    # ------------------------------------------------------------------ concat / slice / eltwise
    @abc.abstractmethod
    def concat_fwd(self, xs: Sequence[Array], y: Array, outer: int, dims: Sequence[int], inner: int) -> None:
        """y viewed as (outer, sum(dims), inner) = concatenation of xs[j] viewed as (outer, dims[j],
        inner) along the middle axis. Slice's backward is this op."""

    @abc.abstractmethod
    def concat_bwd(self, dy: Array, dxs: Sequence[Array | None], outer: int, dims: Sequence[int],
                   inner: int) -> None:
        """Split dy (outer, sum(dims), inner) into dxs[j] (outer, dims[j], inner); None entries are
        skipped (dx =). Slice's forward is this op."""

    @abc.abstractmethod
    def eltwise_max_fwd(self, xs: Sequence[Array], y: Array, mask: Array) -> None:
        """y = elementwise max of xs (len >= 2); mask (int32, y's size) = index of the bottom chosen,
        Caffe's rule exactly: start with (xs[0] if xs[0] > xs[1] else xs[1]) (a tie picks 1), then for
        j >= 2 take xs[j] only if strictly greater (a tie keeps the earlier)."""

    @abc.abstractmethod
    def eltwise_max_bwd(self, dy: Array, mask: Array, index: int, dx: Array) -> None:
        """dx = dy where mask == index else 0 (dx =)."""

    # ------------------------------------------------------------------ batch norm
    @abc.abstractmethod
    def channel_mean_var(self, x: Array, mean: Array, var: Array, n: int, c: int, s: int) -> None:
        """x viewed as (n, c, s): mean[c] = mean over (n, s), var[c] = mean of (x - mean)^2
        (biased). mean/var (c,) written."""

    @abc.abstractmethod
    def batchnorm_fwd(self, x: Array, mean: Array, var: Array, eps: float, y: Array, inv_std: Array,
                      n: int, c: int, s: int) -> None:
        """inv_std[c] = 1 / sqrt(var[c] + eps); y = (x - mean[c]) * inv_std[c]. y may be x."""

    @abc.abstractmethod
    def batchnorm_bwd(self, y: Array, dy: Array, inv_std: Array, dx: Array, n: int, c: int, s: int,
                      use_global_stats: bool) -> None:
        """Caffe BatchNorm backward (y = normalised top data): global stats: dx = dy * inv_std;
        else dx = (dy - mean_{n,s}(dy) - y * mean_{n,s}(dy * y)) * inv_std. dx may be dy (dx =)."""

    # ------------------------------------------------------------------ host-side evaluation ops
    def accuracy(self, x: Array, label: Array, outer: int, dim: int, inner: int, top_k: int,
                 ignore_label: int | None) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Caffe Accuracy (1.0): for each (o, i) with label != ignore, correct iff fewer than top_k
        classes other than the label have a score >= the label's score (ties count against).
        Returns (correct, count,
        per_class_correct (dim,), per_class_count (dim,)). Default: on the host."""
        xs = self.to_host(x).reshape(outer, dim, inner).astype(np.float64)
        lab = self.to_host(label).reshape(outer * inner).astype(np.int64)
        correct = 0
        count = 0
        pc_correct = np.zeros(dim, dtype=np.int64)
        pc_count = np.zeros(dim, dtype=np.int64)
        lab2 = lab.reshape(outer, inner)
        for o in range(outer):
            scores = xs[o]                  # (dim, inner)
            lbl = lab2[o]                   # (inner,)
            valid = np.ones(inner, dtype=bool) if ignore_label is None else (lbl != ignore_label)
            if not valid.any():
                continue
            if ((lbl[valid] < 0) | (lbl[valid] >= dim)).any():
                bad = lbl[valid][(lbl[valid] < 0) | (lbl[valid] >= dim)][0]
                raise ValueError(f"label {bad} outside [0, {dim})")
            idx = np.where(valid)[0]
            true_score = scores[lbl[idx], idx]
            larger = (scores[:, idx] >= true_score[None, :]).sum(axis=0) - 1
            ok = larger < top_k
            correct += int(ok.sum())
            count += len(idx)
            np.add.at(pc_count, lbl[idx], 1)
            np.add.at(pc_correct, lbl[idx][ok], 1)
        return correct, count, pc_correct, pc_count

    def argmax(self, x: Array, y: Array, outer: int, dim: int, inner: int, top_k: int,
               out_max_val: bool, has_axis: bool) -> None:
        """Caffe ArgMax: top_k indices (descending score, ties: higher index first) along the middle axis
        of x (outer, dim, inner). has_axis: y is (outer, top_k, inner) holding indices, or values
        when out_max_val. Without axis (inner == 1): y is (outer, 1 or 2, top_k): indices, and the
        values as the second row when out_max_val. Default: on the host."""
        xs = self.to_host(x).reshape(outer, dim, inner)
        rev = xs[:, ::-1, :]   # stable sort of the reversed axis: ties put the higher index first
        order = (dim - 1 - np.argsort(-rev, axis=1, kind="stable"))[:, :top_k, :]
        vals = np.take_along_axis(xs, order, axis=1)
        if has_axis:
            res = vals if out_max_val else order.astype(np.float64)
        else:
            res = order[:, :, 0].astype(np.float64)[:, None, :]
            if out_max_val:
                res = np.concatenate([res, vals[:, :, 0][:, None, :]], axis=1)
        self.to_device(np.ascontiguousarray(res, dtype=self.dtype), out=y)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {np.dtype(self.dtype).name}>"

    # ------------------------------------------------------------------ Clip, Threshold, Swish,
    # PReLU, MVN, Reduction, Tile, Crop, Embed, BatchReindex, Filter, Im2col, HingeLoss,
    # MultinomialLogisticLoss, InfogainLoss
    @abc.abstractmethod
    def clip_fwd(self, x: Array, y: Array, lo: float, hi: float) -> None:
        """y = max(lo, min(x, hi)) with std::min/max's comparison order (a NaN x gives lo)."""

    @abc.abstractmethod
    def clip_bwd(self, x: Array, dy: Array, dx: Array, lo: float, hi: float) -> None:
        """dx = dy where lo <= x <= hi, else 0 (x: the bottom data before the forward). dx =."""

    @abc.abstractmethod
    def threshold_fwd(self, x: Array, y: Array, threshold: float) -> None:
        """y = 1 if x > threshold else 0 (Caffe's Threshold; it has no backward)."""

    @abc.abstractmethod
    def swish_fwd(self, x: Array, y: Array, s: Array, beta: float) -> None:
        """s = sigmoid(beta * x) in Caffe's 0.5*tanh(0.5 v) + 0.5 form (kept for the backward),
        y = x * s. y may be x; s is its own buffer."""

    @abc.abstractmethod
    def swish_bwd(self, y: Array, s: Array, dy: Array, dx: Array, beta: float) -> None:
        """dx = dy * (beta*y + s*(1 - beta*y)) from the top data y and the forward's s. dx =."""

    @abc.abstractmethod
    def prelu_fwd(self, x: Array, slope: Array, y: Array, channels: int, dim: int,
                  shared: bool) -> None:
        """x viewed as (N, channels, dim): y = max(x, 0) + a * min(x, 0), a = slope[c] (slope[0]
        when ``shared``). y may be x."""

    @abc.abstractmethod
    def prelu_bwd(self, x: Array, slope: Array, dy: Array, dx: Array | None, dslope: Array | None,
                  channels: int, dim: int, shared: bool) -> None:
        """dslope[c] += sum over (n, s) of dy * x * (x <= 0) (all elements when shared), then
        dx = dy * ((x > 0) + a * (x <= 0)) (=; may be dy). None skips either."""

    @abc.abstractmethod
    def mvn_fwd(self, x: Array, y: Array, mean: Array, std: Array, rows: int, dim: int,
                normalize_variance: bool, eps: float) -> None:
        """Caffe MVN on x viewed as (rows, dim): mean (rows,) = row means; y = x - mean, and with
        ``normalize_variance`` std (rows,) = sqrt(mean((x - mean)^2)) + eps, y /= std (std = 1
        otherwise). y may be x."""

    @abc.abstractmethod
    def mvn_bwd(self, y: Array, dy: Array, std: Array, dx: Array, rows: int, dim: int,
                normalize_variance: bool) -> None:
        """Caffe's MVN backward per row: dx = (dy - (y * sum(y*dy) + sum(dy)) / dim) / std with
        ``normalize_variance``, else dx = dy - sum(dy) / dim. dx = (may be dy)."""

    @abc.abstractmethod
    def reduction_fwd(self, x: Array, y: Array, num: int, dim: int, op: int, coeff: float) -> None:
        """x viewed as (num, dim): y[r] = coeff * sum_j f(x[r, j]), f by Caffe's ReductionOp value
        ``op``: 1 SUM (x), 2 ASUM (|x|), 3 SUMSQ (x^2) (MEAN: SUM with coeff / dim). y (num,)."""

    @abc.abstractmethod
    def reduction_bwd(self, x: Array, dy: Array, dx: Array, num: int, dim: int, op: int,
                      coeff: float) -> None:
        """g = dy[r] * coeff; dx[r, j] = g (SUM), sign(x) * g (ASUM, sign(0) = 0), 2*g*x (SUMSQ).
        dx =."""

    @abc.abstractmethod
    def tile_fwd(self, x: Array, y: Array, outer: int, inner: int, tiles: int) -> None:
        """y (outer, tiles, inner)[o, t, :] = x (outer, inner)[o, :]."""

    @abc.abstractmethod
    def tile_bwd(self, dy: Array, dx: Array, outer: int, inner: int, tiles: int) -> None:
        """dx[o, :] = sum over t (ascending) of dy[o, t, :]. dx =."""

    @abc.abstractmethod
    def crop_fwd(self, x: Array, y: Array, offsets: Sequence[int]) -> None:
        """y = x[o_0 : o_0 + y.shape[0], o_1 : ..., ...] (x, y N-D of the same rank; one offset
        per axis)."""

    @abc.abstractmethod
    def crop_bwd(self, dy: Array, dx: Array, offsets: Sequence[int]) -> None:
        """dx = dy inside the window of ``crop_fwd``, 0 elsewhere. dx =."""

    @abc.abstractmethod
    def embed_fwd(self, index: Array, w: Array, b: Array | None, y: Array, m_rows: int,
                  n_out: int, k_in: int) -> None:
        """y (M, N)[m] = w (K, N)[index[m]] (+ b (N,)); ``index`` (M,) floats holding integers.
        An index outside [0, K) or not an integer: ValueError naming it on cpu, a row of NaN on
        cuda (no host read; the kernel never reads out of bounds)."""

    @abc.abstractmethod
    def embed_bwd(self, index: Array, dy: Array, dw: Array | None, db: Array | None, m_rows: int,
                  n_out: int, k_in: int) -> None:
        """dw[index[m]] += dy[m] for m ascending (repeats add up); db += sum over m of dy[m]
        (parameter gradients: accumulate). None skips one."""

    @abc.abstractmethod
    def take_rows(self, x: Array, index: Array, y: Array, inner: int) -> None:
        """x viewed as (B, inner), index (M,) floats: y (M, inner)[i] = x[int(index[i])]
        (BatchReindex and Filter forward). An index outside [0, B) gives NaN on cuda and a
        ValueError on cpu (the layers check their indices first)."""

    @abc.abstractmethod
    def take_rows_bwd(self, dy: Array, index: Array, dx: Array, inner: int) -> None:
        """dx (B, inner)[n] = sum over i (ascending) with int(index[i]) == n of dy[i] (BatchReindex
        backward; rows nothing picked get 0). dx =."""

    @abc.abstractmethod
    def put_rows(self, dy: Array, where: Array, dx: Array, inner: int) -> None:
        """dx (B, inner)[n] = dy[int(where[n])] where where[n] >= 0, else 0 (Filter backward;
        ``where`` (B,) floats). dx =."""

    @abc.abstractmethod
    def im2col_layer_fwd(self, x: Array, y: Array, g: Im2colGeometry) -> None:
        """Caffe's Im2col layer: y (num, C*prod(kernel), *out) = per-image im2col of x
        (num, C, *in), any number of spatial axes (``g``: netdef.geometry.Im2colGeometry)."""

    @abc.abstractmethod
    def im2col_layer_bwd(self, dy: Array, dx: Array, g: Im2colGeometry) -> None:
        """dx = col2im of dy, kernel offsets added in ascending order (Caffe's). dx =."""

    @abc.abstractmethod
    def hinge_loss_fwd(self, x: Array, label: Array, margin: Array, num: int, dim: int,
                       norm: int) -> float:
        """x (num, dim), label (num,): margin = max(0, 1 + s*x), s = -1 at j == label, +1
        elsewhere; returns sum |margin| (norm 1, L1) or sum margin^2 (norm 2, L2) as a host float.
        A label outside [0, dim) raises ValueError naming it."""

    @abc.abstractmethod
    def hinge_loss_bwd(self, margin: Array, label: Array, dx: Array, num: int, dim: int, norm: int,
                       scale: float) -> None:
        """dx = scale * s * sign(margin) (L1) or scale * s * margin (L2). dx =."""

    @abc.abstractmethod
    def multinomial_logistic_loss_fwd(self, prob: Array, label: Array, num: int, dim: int) -> float:
        """sum over i of -log(max(prob[i, label_i], 1e-20)) (Caffe's kLOG_THRESHOLD) as a host
        float; prob (num, dim). A label outside [0, dim) raises ValueError naming it."""

    @abc.abstractmethod
    def multinomial_logistic_loss_bwd(self, prob: Array, label: Array, dx: Array, num: int, dim: int,
                                      scale: float) -> None:
        """dx = 0 except dx[i, label_i] = scale / max(prob[i, label_i], 1e-20). dx =."""

    @abc.abstractmethod
    def infogain_loss_fwd(self, prob: Array, label: Array, h: Array, outer: int, dim: int,
                          inner: int, ignore_label: int | None) -> tuple[float, int]:
        """prob (outer, dim, inner), label (outer*inner,), H (dim, dim): (sum over positions whose
        label is not ignore_label of -sum_l H[label, l] * log(max(prob[o, l, s], 1e-20)), number
        of such positions) as host values. A label outside [0, dim) raises ValueError."""

    @abc.abstractmethod
    def infogain_loss_bwd(self, prob: Array, label: Array, h: Array, dx: Array, outer: int, dim: int,
                          inner: int, ignore_label: int | None, scale: float) -> None:
        """dx[o, l, s] = scale * (prob[o, l, s] * sum_l' H[label, l'] - H[label, l]), 0 at ignored
        positions. dx =."""
