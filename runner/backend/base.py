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
- Geometry objects (``ConvGeometry``, ``PoolGeometry``) are frozen and hashable, so a backend may
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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray on cpu, numba DeviceNDArray on cuda


@dataclass(frozen=True)
class ConvGeometry:
    """2-D convolution geometry for a batch of images (Caffe's BaseConvolutionLayer fields).

    Input x: (N, C_in, H, W); weight w: (C_out, C_in // group, KH, KW); output y: (N, C_out, OH, OW)
    with OH = (H + 2*pad_h - (dilation_h*(KH-1)+1)) // stride_h + 1 (same for W).
    For Deconvolution the same geometry describes the *forward convolution* from the deconv's top
    to its bottom (Caffe's ``reverse_dimensions``): see ``conv_backward_data``.
    """

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    group: int = 1

    @property
    def is_1x1(self) -> bool:
        """True when the convolution is a plain GEMM (1x1 kernel, stride 1, no pad): Caffe's
        ``is_1x1_`` skips im2col."""
        return (self.kernel_h == 1 and self.kernel_w == 1 and self.stride_h == 1 and self.stride_w == 1
                and self.pad_h == 0 and self.pad_w == 0)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_in, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_out, self.out_h, self.out_w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in // self.group, self.kernel_h, self.kernel_w)


@dataclass(frozen=True)
class PoolGeometry:
    """2-D pooling geometry, Caffe's PoolingLayer (x: (N, C, H, W) -> y: (N, C, OH, OW)).

    OH/OW are computed by netdef.shapes (ceil mode, with Caffe's "last window must start inside the
    padded image" clip). Window (ph, pw): hstart = ph*stride_h - pad_h, hend = min(hstart + kernel_h,
    H + pad_h); AVE divides by (hend - hstart)*(wend - wstart) computed *before* clipping hstart/hend
    to [0, H) (so padding counts), MAX ignores padding.
    """

    n: int
    c: int
    h: int
    w: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0


def conv_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Caffe's convolution output size along one axis."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True) -> int:
    """Caffe's pooling output size along one axis (ceil mode by default, last window clipped)."""
    if ceil_mode:
        out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    else:
        out = (size + 2 * pad - kernel) // stride + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


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
