"""CUDA backend: the op interface of ``runner.backend.base`` on numba device arrays, every op a
launch of a hand-written kernel from ``kernels/`` (no cuBLAS, no CuPy).

Design
------
- **Arrays stay on the device.** Every array this backend hands out is a numba device array
  (``numba.cuda.device_array``; in Numba's simulator, NUMBA_ENABLE_CUDASIM=1, a FakeCUDAArray over
  host memory, which is how CI tests it). Ops also accept any object with
  ``__cuda_array_interface__`` (CuPy, PyTorch) through ``kernels._launch.as_device`` without a
  copy. Nothing is copied to the host between layers: the only device->host transfers are
  ``to_host`` (asked for explicitly, e.g. by ``Blob``'s host mirror) and the host scalars that the
  interface returns (``dot``/``asum``/``sumsq``, loss sums and counts, accuracy counts), which
  synchronise by nature. ``argmax`` uses the base class's host implementation (a deploy-time op),
  and so does ``detection_rows`` (DetectionOutput's NMS: the device-decoded boxes and the
  confidences come to the host, as in Caffe-SSD's GPU path).
- **Blob memory like Caffe.** ``Blob`` keeps one flat buffer per data/diff with a capacity; a
  smaller reshape takes a view of the first elements (``view``), a larger one reallocates. The
  ``host_mirror`` flag tells ``Blob`` to keep a lazily synced numpy mirror (SyncedMemory-style).
- **Cached views.** ``view``/``reshape`` and the flat (1-D) views the kernels take are memoised
  on the array object itself (a small dict attribute keyed by the shape), so steady-state
  iterations create no new device-array objects: a layer asking for ``blob.dev_data`` or
  ``backend.reshape(x, (M, K))`` every iteration gets the same object back. Views never own
  memory, so the cache costs nothing on the device; a reallocated buffer starts a new cache.
- **Launch overhead.** Every op calls its ``kernels/`` module's public function, which owns the
  version choice (e.g. 128-bit ReLU/copy when the arrays are 16-byte aligned, uint32 templates
  below 2**31 elements, v1 otherwise) and caches its geometry per size; flat views come from the
  cache above. A training iteration does not pay this Python at all in its steady state:
  ``runner/backend/replay.py`` re-issues the recorded launches pre-bound. Scratch memory (convolution
  column buffer, accuracy counters) is allocated once and reused. Numba's low-occupancy warning
  is switched off at backend creation (tiny bias/solver kernels would otherwise issue a Python
  warning per launch). Nothing synchronises unless it returns a host value.
- **Convolution** is ``kernels.conv`` (im2col + the GEMM kernels over the whole batch, chunked so the
  column workspace stays under ``conv_workspace_bytes()``); the Python code never loops over images
  except through those chunks. 1x1 convolutions skip im2col. A training net's convolutions keep
  their input's columns from forward to backward (``ConvCache``, armed at the first backward while
  all kept columns fit ``keep_columns_bytes``, 1/8 of device memory): backward then skips im2col
  and the batch is one chunk.
- **Dropout** uses ``kernels.dropout``'s counter-based generator (Philox-4x32-10 keyed by the
  layer's seed, the layer's counter as the stream): the cpu backend's host twin
  (``dropout_mask_host``) produces the same uint8 mask bit for bit. Masks are uint8 here.
- **Accuracy** runs ``kernels.softmax.accuracy_fwd`` with ties counted against the label (the
  base class's rule, Caffe 1.0's ``>=`` count); only the counts come back.
- **Losses** SoftmaxWithLoss (``kernels.softmax``), SigmoidCrossEntropyLoss, ContrastiveLoss,
  HingeLoss, MultinomialLogisticLoss and InfogainLoss (``kernels.loss``) reduce on the device and
  return host scalars. The only other host reads of the layers of Caffe 1.0 are Caffe's own:
  BatchReindex checks its indices and Filter reads its selector on the host (in the layers; the
  backend ops stay on the device).
- float32 only (``get_backend("cuda", float64)`` is refused in ``runner.backend``).
- **Precision.** ``precision`` "tf32"/"fp16"/"bf16" sends ``gemm`` and the convolutions' GEMMs to
  ``kernels.gemm_tc`` (tensor cores, inputs rounded to that format, FP32 accumulation).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import config, cuda

from kernels import activation as _act
from kernels import batchnorm as _bn
from kernels import bias as _bias
from kernels import blas1 as _blas1
from kernels import concat as _concat
from kernels import conv as _conv
from kernels import conv_nd as _cnd
from kernels import detection as _det
from kernels import dropout as _dropout
from kernels import eltwise as _elt
from kernels import gemm as _gemm
from kernels import gemm_tc as _gemm_tc
from kernels import im2col_nd as _i2c
from kernels import index_copy as _idx
from kernels import loss as _loss
from kernels import lrn as _lrn
from kernels import lstm_unit as _lstm
from kernels import mvn as _mvn
from kernels import normalize as _norm
from kernels import permute as _perm
from kernels import pool as _pool
from kernels import reduce as _red
from kernels import scale as _scale
from kernels import softmax as _sm
from kernels import solver_update as _su
from kernels._launch import SIMULATOR, as_device
from netdef.geometry import DetectionGeometry, NormalizeGeometry, PriorBoxGeometry
from runner.backend.base import Backend, ConvCache, ConvGeometry, ConvNdGeometry, PoolGeometry

Array = Any

#: upper bound of the im2col column workspace (bytes); the batch is processed in chunks that fit
CONV_WORKSPACE_BYTES = 256 << 20
#: on a GPU the cap grows with the device: 1/32 of its memory, at most 1 GiB (H100/H200: 1 GiB, so
#: AlexNet's conv1 runs as 2 chunks of 128 images instead of 5 of <= 61 at 256 MiB)
CONV_WORKSPACE_MAX_BYTES = 1 << 30


#: kept convolution columns (ConvCache), all layers together: this fraction of device memory
KEEP_COLUMNS_FRACTION = 8
KEEP_COLUMNS_SIM_BYTES = 64 << 20     # in the simulator (no device memory to ask)
KEEP_COLUMNS_SPARE = 8                # ... and only while 1/8 of device memory stays free


def device_memory() -> tuple[int, int] | None:
    """(free, total) bytes of the current device, or None (simulator, or the driver gave no
    answer): the sizing rules below then take their conservative defaults."""
    if SIMULATOR:
        return None
    try:
        free, total = cuda.current_context().get_memory_info()
    except Exception:            # no context / driver query failed
        return None
    return int(free), int(total)


def keep_columns_budget() -> int:
    """Bytes of convolution columns kept from forward to backward (see ``KEEP_COLUMNS_FRACTION``;
    nothing when the device does not answer)."""
    if SIMULATOR:
        return KEEP_COLUMNS_SIM_BYTES
    mem = device_memory()
    return 0 if mem is None else mem[1] // KEEP_COLUMNS_FRACTION


def conv_workspace_bytes() -> int:
    """The im2col workspace cap for this device (see ``CONV_WORKSPACE_MAX_BYTES``)."""
    mem = device_memory()
    if mem is None:
        return CONV_WORKSPACE_BYTES
    return max(CONV_WORKSPACE_BYTES, min(CONV_WORKSPACE_MAX_BYTES, mem[1] // 32))

_F32 = np.dtype(np.float32)
_VIEWS = "_nbcaffe_views"


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _shaped(arr: Any, shape: tuple[int, ...]) -> Any:
    """The first prod(shape) elements of contiguous device array ``arr`` with ``shape``; memoised
    on ``arr`` so the same object comes back for the same shape (see the module docstring)."""
    if arr.shape == shape:          # not cached: a self-reference would delay freeing the buffer
        return arr
    cache = getattr(arr, _VIEWS, None)
    if cache is None:
        cache = {}
        try:
            setattr(arr, _VIEWS, cache)
        except AttributeError:      # an object that takes no attributes: no caching
            pass
    v = cache.get(shape)
    if v is not None:
        return v
    n = _prod(shape)
    base = arr if len(arr.shape) == 1 else arr.reshape(arr.size)
    if base.size != n:
        if base.size < n:
            raise ValueError(f"cannot view {base.size} elements as {shape}")
        base = base[:n]
    v = base.reshape(*shape) if shape else base.reshape(())
    cache[shape] = v
    return v


def _dev(a: Any) -> Any:
    """A numba device array for ``a`` (numba arrays unchanged; CUDA array interface wrapped)."""
    if getattr(a, "__cuda_ndarray__", False):
        return a
    return as_device(a)


def _flat(a: Any) -> Any:
    """1-D view of a contiguous device array (cached)."""
    a = _dev(a)
    if len(a.shape) == 1:
        return a
    return _shaped(a, (a.size,))


def _flats(name: str, *arrays: Any) -> list:
    """Cached 1-D float32 views of same-sized arrays (checked: a wrong size or dtype would make
    a kernel read out of bounds or compile a float64 variant)."""
    out = [_flat(a) for a in arrays]
    n = out[0].size
    for a in out:
        if a.size != n or a.dtype != _F32:
            raise ValueError(f"{name}: expected float32 arrays of one size, got "
                             f"{[(tuple(b.shape), str(b.dtype)) for b in out]}")
    return out


class CudaBackend(Backend):
    """Numba CUDA implementation of :class:`runner.backend.base.Backend` (see the module docstring)."""

    name = "cuda"
    host_mirror = True
    dtype = _F32

    def __init__(self, precision: str = "fp32") -> None:
        config.CUDA_LOW_OCCUPANCY_WARNINGS = False
        self.precision = precision
        self._conv_gemm = _gemm.gemm if precision == "fp32" else functools.partial(_gemm_tc.gemm,
                                                                                  precision=precision)
        self._workspaces: dict[Any, Any] = {}
        self._conv_workspace = conv_workspace_bytes()
        self.keep_columns_bytes = keep_columns_budget()

    def available_memory(self) -> tuple[int | None, str]:
        """Free device memory (the simulator's arrays live on the host: host memory)."""
        mem = device_memory()
        if mem is None:
            return super().available_memory()
        return mem[0], "free device memory"

    def workspace_cap(self) -> int | None:
        return self._conv_workspace

    # ------------------------------------------------------------------ arrays
    def empty(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Uninitialised device array of ``shape`` (float32 unless ``dtype``)."""
        shape = tuple(int(s) for s in shape)
        return cuda.device_array(shape, dtype=np.dtype(dtype) if dtype is not None else _F32)

    def zeros(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Zero-filled device array (a fill kernel for float32; a one-time upload otherwise)."""
        shape = tuple(int(s) for s in shape)
        dt = np.dtype(dtype) if dtype is not None else _F32
        if dt != _F32:
            return cuda.to_device(np.zeros(shape, dtype=dt))
        arr = cuda.device_array(shape, dtype=dt)
        if arr.size:
            _blas1.fill(_flat(arr), 0.0)
        return arr

    def to_device(self, host: Any, out: Array | None = None) -> Array:
        """Upload ``host`` (numpy, or a device array: device-to-device copy) to a new device array
        of float32, or into ``out`` (same number of elements; its dtype is kept)."""
        if not isinstance(host, np.ndarray) and (getattr(host, "__cuda_ndarray__", False) or getattr(
                host, "__cuda_array_interface__", None) is not None):
            src = _dev(host)
            if out is None:
                out = cuda.device_array(tuple(src.shape), dtype=src.dtype)
            dst = _dev(out)
            if dst.size != src.size:
                raise ValueError(f"to_device: {tuple(src.shape)} into {tuple(dst.shape)}")
            self.copy(src, dst)
            return out
        h = np.asarray(host)
        if out is None:
            return cuda.to_device(np.ascontiguousarray(h, dtype=_F32))
        o = _dev(out)
        if o.size != h.size:
            raise ValueError(f"to_device: host array {h.shape} into device array {tuple(o.shape)}")
        if o.size:
            _flat(o).copy_to_device(np.ascontiguousarray(h, dtype=o.dtype).reshape(-1))
        return out

    def to_host(self, arr: Array, out: np.ndarray | None = None) -> np.ndarray:
        """Download ``arr`` to a new numpy array of its shape, or into ``out`` (same size)."""
        a = _dev(arr)
        if out is None:
            return a.copy_to_host()
        if out.size != a.size:
            raise ValueError(f"to_host: device array {tuple(a.shape)} into host array {out.shape}")
        if a.size:
            flat_out = out.reshape(-1)
            if not np.shares_memory(flat_out, out):
                raise ValueError("to_host: out must be C-contiguous")
            _flat(a).copy_to_host(flat_out)
        return out

    def view(self, buf: Array, shape: Sequence[int]) -> Array:
        """Cached view of the first prod(shape) elements of ``buf`` (see the module docstring)."""
        if type(shape) is not tuple:
            shape = tuple(int(s) for s in shape)
        return _shaped(buf, shape)

    def reshape(self, arr: Array, shape: Sequence[int]) -> Array:
        """Cached view of ``arr`` with another shape of the same size."""
        if type(shape) is not tuple:
            shape = tuple(int(s) for s in shape)
        a = _dev(arr)
        if _prod(shape) != a.size:
            raise ValueError(f"cannot reshape {tuple(a.shape)} to {shape}")
        return _shaped(a, shape)

    def copy(self, src: Array, dst: Array) -> None:
        """dst = src (flat order, same size), on the device."""
        if src is dst:
            return
        s, d = _flat(src), _flat(dst)
        if s.size != d.size:
            raise ValueError(f"copy: {tuple(_dev(src).shape)} into {tuple(_dev(dst).shape)}")
        if s.size == 0:
            return
        if s.dtype == _F32 and d.dtype == _F32:
            _blas1.copy(s, d)        # kernels.blas1 picks the version (128-bit when aligned)
        else:
            d.copy_to_device(s)

    def fill(self, arr: Array, value: float) -> None:
        a = _flat(arr)
        if a.size:
            if a.dtype != _F32:
                raise TypeError(f"fill: float32 arrays only, got {a.dtype}")
            _blas1.fill(a, value)

    def synchronize(self) -> None:
        cuda.synchronize()

    # ------------------------------------------------------------------ BLAS-like
    def axpy(self, alpha: float, x: Array, y: Array) -> None:
        xf, yf = _flats("axpy", x, y)
        _blas1.axpy(alpha, xf, yf)

    def axpby(self, alpha: float, x: Array, beta: float, y: Array) -> None:
        xf, yf = _flats("axpby", x, y)
        _blas1.axpby(alpha, xf, beta, yf)    # beta == 0 does not read y (Caffe's NaN safety)

    def scal(self, alpha: float, x: Array) -> None:
        (xf,) = _flats("scal", x)
        _blas1.scal(xf, alpha)               # alpha == 0 writes zeros without reading x

    def dot(self, x: Array, y: Array) -> float:
        return float(_red.dot(_flat(x), _flat(y)))

    def asum(self, x: Array) -> float:
        return float(_red.asum(_flat(x)))

    def sumsq(self, x: Array) -> float:
        return float(_red.sumsq(_flat(x)))

    def sumsq_total(self, arrays: Sequence[Array]) -> float:
        return _red.sumsq_total(list(arrays))     # accumulated on the device, one host read

    # ------------------------------------------------------------------ solver
    def executor(self, net: Any, replay: bool | None = None) -> Any:
        """A NetReplay (launches recorded once, then re-issued pre-bound: runner/backend/replay.py)
        unless ``replay`` is False or, with None, NBCAFFE_REPLAY=0."""
        from runner.backend.replay import NetReplay, replay_enabled
        if replay if replay is not None else replay_enabled():
            return NetReplay(net)
        return super().executor(net, replay)

    # the update rules are kernels.solver_update's fused one-launch-per-blob kernels
    sgd_update = staticmethod(_su.sgd_update)
    nesterov_update = staticmethod(_su.nesterov_update)
    adagrad_update = staticmethod(_su.adagrad_update)
    rmsprop_update = staticmethod(_su.rmsprop_update)
    adadelta_update = staticmethod(_su.adadelta_update)
    adam_update = staticmethod(_su.adam_update)

    def gemm(self, trans_a: bool, trans_b: bool, alpha: float, a: Array, b: Array,
             beta: float, c: Array) -> None:
        """C = alpha op(A) op(B) + beta C through ``kernels.gemm.gemm`` (its planner picks the
        kernel, split-K included); on the tensor cores (``kernels.gemm_tc``) unless the precision
        is fp32."""
        self._conv_gemm(trans_a, trans_b, alpha, _dev(a), _dev(b), beta, _dev(c))

    # ------------------------------------------------------------------ elementwise arithmetic
    def _binary(self, op, name: str, a, b, out) -> None:
        op(*_flats(name, a, b, out))

    def add(self, a, b, out) -> None:
        self._binary(_blas1.add, "add", a, b, out)

    def sub(self, a, b, out) -> None:
        self._binary(_blas1.sub, "sub", a, b, out)

    def mul(self, a, b, out) -> None:
        self._binary(_blas1.mul, "mul", a, b, out)

    def div(self, a, b, out) -> None:
        self._binary(_blas1.div, "div", a, b, out)

    # ------------------------------------------------------------------ activations
    # the hot ones (ReLU, sigmoid, TanH) launch their kernels directly with cached flat views;
    # the others go through kernels.activation's wrappers (parameter special cases live there)
    def relu_fwd(self, x, y, negative_slope: float = 0.0) -> None:
        xf, yf = _flats("relu_fwd", x, y)
        _act.relu_fwd(xf, yf, negative_slope)

    def relu_bwd(self, x, dy, dx, negative_slope: float = 0.0) -> None:
        xf, dyf, dxf = _flats("relu_bwd", x, dy, dx)
        _act.relu_bwd(dyf, xf, dxf, negative_slope)

    def sigmoid_fwd(self, x, y) -> None:
        _act.sigmoid_fwd(*_flats("sigmoid_fwd", x, y))

    def sigmoid_bwd(self, y, dy, dx) -> None:
        yf, dyf, dxf = _flats("sigmoid_bwd", y, dy, dx)
        _act.sigmoid_bwd(dyf, yf, dxf)

    def tanh_fwd(self, x, y) -> None:
        _act.tanh_fwd(*_flats("tanh_fwd", x, y))

    def tanh_bwd(self, y, dy, dx) -> None:
        yf, dyf, dxf = _flats("tanh_bwd", y, dy, dx)
        _act.tanh_bwd(dyf, yf, dxf)

    def elu_fwd(self, x, y, alpha: float) -> None:
        _act.elu_fwd(_flat(x), _flat(y), alpha)

    def elu_bwd(self, x, y, dy, dx, alpha: float) -> None:
        _act.elu_bwd(_flat(dy), _flat(x), _flat(y), _flat(dx), alpha)

    def abs_fwd(self, x, y) -> None:
        _act.absval_fwd(_flat(x), _flat(y))

    def abs_bwd(self, x, dy, dx) -> None:
        _act.absval_bwd(_flat(dy), _flat(x), _flat(dx))

    def bnll_fwd(self, x, y) -> None:
        _act.bnll_fwd(_flat(x), _flat(y))

    def bnll_bwd(self, x, dy, dx) -> None:
        _act.bnll_bwd(_flat(dy), _flat(x), _flat(dx))

    def power_fwd(self, x, y, power: float, scale: float, shift: float) -> None:
        _act.power_fwd(_flat(x), _flat(y), power, scale, shift)

    def power_bwd(self, x, y, dy, dx, power: float, scale: float, shift: float) -> None:
        _act.power_bwd(_flat(dy), _flat(x), _flat(y), _flat(dx), power, scale, shift)

    def exp_fwd(self, x, y, base: float, scale: float, shift: float) -> None:
        _act.exp_fwd(_flat(x), _flat(y), base, scale, shift)

    def exp_bwd(self, y, dy, dx, base: float, scale: float) -> None:
        _act.exp_bwd(_flat(dy), _flat(y), _flat(dx), base, scale)

    def log_fwd(self, x, y, base: float, scale: float, shift: float) -> None:
        _act.log_fwd(_flat(x), _flat(y), base, scale, shift)

    def log_bwd(self, x, dy, dx, base: float, scale: float, shift: float) -> None:
        _act.log_bwd(_flat(dy), _flat(x), _flat(dx), base, scale, shift)

    # ------------------------------------------------------------------ dropout
    def dropout_fwd(self, x, y, mask, ratio: float, seed: int, counter: int) -> None:
        """Philox(seed, stream=counter) keep mask, as the cpu backend's host twin; ``mask`` must be
        uint8 (the Dropout layer's dtype) on this backend."""
        _dropout.dropout_fwd(_flat(x), _flat(y), _flat(mask), ratio, seed, counter)

    def dropout_bwd(self, dy, mask, dx, ratio: float) -> None:
        dyf, dxf = _flats("dropout_bwd", dy, dx)
        mf = _flat(mask)
        if mf.size != dyf.size or mf.dtype != np.uint8:
            raise ValueError(f"dropout_bwd: mask must be uint8 of {dyf.size} elements, got "
                             f"{mf.size} {mf.dtype}")
        _dropout.dropout_bwd(dyf, mf, dxf, ratio)

    # ------------------------------------------------------------------ bias / scale
    def bias_fwd(self, x, b, y, outer: int, dim: int, inner: int) -> None:
        shp = (outer, dim, inner)
        yv = _shaped(_dev(y), shp)
        if x is not y:
            self.copy(x, yv)
        if yv.size:
            _bias.bias_fwd(yv, _flat(b))

    def bias_bwd(self, dy, db, outer: int, dim: int, inner: int) -> None:
        if dim and outer * inner:
            _bias.bias_bwd(_shaped(_dev(dy), (outer, dim, inner)), _flat(db))

    def scale_fwd(self, x, s, b, y, outer: int, dim: int, inner: int) -> None:
        _scale.scale_fwd(_flat(x), _flat(s), None if b is None else _flat(b), _flat(y), outer, dim, inner)

    def scale_bwd(self, x, s, dy, dx, ds, outer: int, dim: int, inner: int,
                  accumulate_ds: bool = True) -> None:
        _scale.scale_bwd(_flat(x), _flat(s), _flat(dy), None if dx is None else _flat(dx),
                         None if ds is None else _flat(ds), outer, dim, inner, accumulate_ds)

    # ------------------------------------------------------------------ convolution
    def _conv_args(self, g: ConvGeometry) -> dict:
        return {"pad": (g.pad_h, g.pad_w), "stride": (g.stride_h, g.stride_w),
                "dilation": (g.dilation_h, g.dilation_w), "group": g.group,
                "max_col_bytes": self._conv_workspace, "gemm": self._conv_gemm}

    def columns_fit(self, nbytes: int) -> bool:
        """Kept columns never take the last of the device memory: they are armed only while at
        least ``KEEP_COLUMNS_SPARE`` of the device's free memory would remain."""
        if SIMULATOR:
            return True
        mem = device_memory()
        return mem is not None and mem[0] - nbytes >= mem[1] // KEEP_COLUMNS_SPARE

    @staticmethod
    def _kept(cache: ConvCache | None) -> _conv.KeptColumns | None:
        """The armed cache's kept columns (created on first use), else None."""
        if cache is None or not cache.armed:
            return None
        if cache.state is None:
            cache.state = _conv.KeptColumns()
        return cache.state

    def conv_forward(self, x, w, b, y, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        if not g.n or not g.c_out:
            return
        _conv.conv_forward(_shaped(_dev(x), g.x_shape), _shaped(_dev(w), g.w_shape),
                           None if b is None else _flat(b), _shaped(_dev(y), g.y_shape),
                           keep=self._kept(cache), **self._conv_args(g))

    def conv_backward_data(self, dy, w, dx, g: ConvGeometry) -> None:
        self.conv_backward(None, w, dy, dx, None, None, g)

    def conv_backward_weight(self, x, dy, dw, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        self.conv_backward(x, None, dy, None, dw, None, g, cache)

    def conv_backward(self, x, w, dy, dx, dw, db, g: ConvGeometry, cache: ConvCache | None = None) -> None:
        """All gradients in one pass over the batch chunks (the im2col buffer of a chunk serves dw,
        then its memory takes the column gradient for dx): db +=, dw +=, dx =. With a ``cache``
        (armed here when the columns fit the budget) the whole batch is one chunk and dw reads the
        forward's kept columns when they are valid."""
        if dx is None and dw is None and db is None:
            return
        dyv = _shaped(_dev(dy), g.y_shape)
        dxv = None if dx is None else _shaped(_dev(dx), g.x_shape)
        dwv = None if dw is None else _shaped(_dev(dw), g.w_shape)
        # kernels.conv reads x only for dw and w only for dx; otherwise they give shapes
        xv = _shaped(_dev(x), g.x_shape) if x is not None else dxv
        wv = _shaped(_dev(w), g.w_shape) if w is not None else dwv
        if not g.n or not g.c_out:
            if dxv is not None and dxv.size:
                self.fill(dxv, 0.0)
            return
        if cache is not None and dwv is not None and not (g.n == 1 and g.is_1x1):
            self.arm_conv_cache(cache, 4 * g.c_in * g.kernel_h * g.kernel_w * g.n * g.out_h * g.out_w)
        _conv.conv_backward(xv, wv, dyv, dxv, dwv, None if db is None else _flat(db),
                            keep=self._kept(cache), **self._conv_args(g))

    # ------------------------------------------------------------------ pooling
    @staticmethod
    def _pool_views(big, small, g: PoolGeometry, small_mask=None):
        b = _shaped(_dev(big), (g.n, g.c, g.h, g.w))
        s = _shaped(_dev(small), (g.n, g.c, g.out_h, g.out_w))
        m = None if small_mask is None else _shaped(_dev(small_mask), (g.n, g.c, g.out_h, g.out_w))
        return b, s, m

    def max_pool_fwd(self, x, y, mask, g: PoolGeometry) -> None:
        xv, yv, mv = self._pool_views(x, y, g, mask)
        _pool.max_pool_fwd(xv, yv, mv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                           (g.pad_h, g.pad_w))

    def max_pool_bwd(self, dy, mask, dx, g: PoolGeometry) -> None:
        dxv, dyv, mv = self._pool_views(dx, dy, g, mask)
        _pool.max_pool_bwd(dyv, mv, dxv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                           (g.pad_h, g.pad_w))

    def ave_pool_fwd(self, x, y, g: PoolGeometry) -> None:
        xv, yv, _ = self._pool_views(x, y, g)
        _pool.ave_pool_fwd(xv, yv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                           (g.pad_h, g.pad_w))

    def ave_pool_bwd(self, dy, dx, g: PoolGeometry) -> None:
        dxv, dyv, _ = self._pool_views(dx, dy, g)
        _pool.ave_pool_bwd(dyv, dxv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                           (g.pad_h, g.pad_w))

    # ------------------------------------------------------------------ stochastic pooling
    def sto_pool_fwd_train(self, x, y, idx, g: PoolGeometry, seed: int, stream: int) -> None:
        xv, yv, iv = self._pool_views(x, y, g, idx)
        _pool.sto_pool_fwd_train(xv, yv, iv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                                 seed, stream)

    def sto_pool_fwd_test(self, x, y, g: PoolGeometry) -> None:
        xv, yv, _ = self._pool_views(x, y, g)
        _pool.sto_pool_fwd_test(xv, yv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w))

    def sto_pool_bwd(self, dy, idx, dx, g: PoolGeometry) -> None:
        dxv, dyv, iv = self._pool_views(dx, dy, g, idx)
        _pool.sto_pool_bwd(dyv, iv, dxv, (g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w))

    # ------------------------------------------------------------------ N-D convolution, LSTM unit
    def conv_nd_forward(self, x, w, b, y, g: ConvNdGeometry) -> None:
        _cnd.conv_nd_forward(_shaped(_dev(x), g.x_shape), _shaped(_dev(w), g.w_shape),
                             None if b is None else _flat(b), _shaped(_dev(y), g.y_shape), g.pad,
                             g.stride, g.dilation, g.group, self._conv_workspace)

    def conv_nd_backward(self, x, w, dy, dx, dw, db, g: ConvNdGeometry) -> None:
        dxv = None if dx is None else _shaped(_dev(dx), g.x_shape)
        dwv = None if dw is None else _shaped(_dev(dw), g.w_shape)
        # kernels.conv_nd reads x only for dw and w only for dx; otherwise they give shapes
        xv = dxv if x is None else _shaped(_dev(x), g.x_shape)
        wv = dwv if w is None else _shaped(_dev(w), g.w_shape)
        if xv is None or wv is None:
            raise ValueError("conv_nd_backward: x (or dx) and w (or dw) must be given")
        _cnd.conv_nd_backward(xv, wv, _shaped(_dev(dy), g.y_shape), dxv, dwv,
                              None if db is None else _flat(db), g.pad, g.stride, g.dilation,
                              g.group, self._conv_workspace)

    def lstm_unit_fwd(self, c_prev, x, cont, c, h) -> None:
        _lstm.lstm_unit_fwd(_flat(c_prev), _flat(x), _flat(cont), _flat(c), _flat(h))

    def lstm_unit_bwd(self, c_prev, x, cont, c, dc, dh, dc_prev, dx) -> None:
        _lstm.lstm_unit_bwd(_flat(c_prev), _flat(x), _flat(cont), _flat(c), _flat(dc), _flat(dh),
                            _flat(dc_prev), _flat(dx))

    # ------------------------------------------------------------------ LRN
    @staticmethod
    def _nchw(*arrays):
        """Cached 4-D views (N, C, H, W) of same-shaped arrays (N, C, ...) (trailing axes merged)."""
        devs = [_dev(a) for a in arrays]
        shp = tuple(devs[0].shape)
        if len(shp) != 4:
            shp = (shp[0], shp[1] if len(shp) > 1 else 1, _prod(shp[2:]), 1)
        return [_shaped(d, shp) for d in devs]

    def lrn_across_fwd(self, x, y, scale, local_size: int, alpha: float, beta: float, k: float) -> None:
        xv, yv, sv = self._nchw(x, y, scale)
        _lrn.lrn_fwd(xv, sv, yv, local_size, alpha, beta, k)

    def lrn_across_bwd(self, x, y, scale, dy, dx, local_size: int, alpha: float, beta: float) -> None:
        xv, yv, sv, dyv, dxv = self._nchw(x, y, scale, dy, dx)
        _lrn.lrn_bwd(dyv, xv, yv, sv, dxv, local_size, alpha, beta)

    def lrn_within_fwd(self, x, y, scale, local_size: int, alpha: float, beta: float) -> None:
        xv, yv, sv = self._nchw(x, y, scale)
        _lrn.lrn_within_fwd(xv, sv, yv, local_size, alpha, beta)

    def lrn_within_bwd(self, x, y, scale, dy, dx, local_size: int, alpha: float, beta: float) -> None:
        xv, sv, dyv, dxv = self._nchw(x, scale, dy, dx)
        _lrn.lrn_within_bwd(dyv, xv, sv, dxv, local_size, alpha, beta)

    # ------------------------------------------------------------------ softmax and losses
    def softmax_fwd(self, x, y, outer: int, dim: int, inner: int) -> None:
        shp = (outer, dim, inner)
        _sm.softmax_fwd(_shaped(_dev(x), shp), _shaped(_dev(y), shp), 1)

    def softmax_bwd(self, y, dy, dx, outer: int, dim: int, inner: int) -> None:
        shp = (outer, dim, inner)
        _sm.softmax_bwd(_shaped(_dev(dy), shp), _shaped(_dev(y), shp), _shaped(_dev(dx), shp), 1)

    # ------------------------------------------------------------------ SSD fork detection layers
    def normalize_fwd(self, x, scale, y, norm, g: NormalizeGeometry) -> None:
        _norm.normalize_fwd(_flat(x), _flat(scale), _flat(y), _flat(norm), (g.n, g.c, g.s),
                            g.across_spatial, g.eps)

    def normalize_bwd(self, x, y, dy, scale, norm, dx, dscale, g: NormalizeGeometry) -> None:
        _norm.normalize_bwd(_flat(x), _flat(y), _flat(dy), _flat(scale), _flat(norm),
                            None if dx is None else _flat(dx),
                            None if dscale is None else _flat(dscale), (g.n, g.c, g.s),
                            g.across_spatial)

    def permute(self, x, y, shape, order) -> None:
        _perm.permute(_flat(x), _flat(y), shape, order)

    def prior_box_fwd(self, y, g: PriorBoxGeometry) -> None:
        key = ("prior_box", g.widths, g.heights)
        sizes = self._workspaces.get(key)
        if sizes is None:      # the prior sizes, uploaded once per geometry
            sizes = self._workspaces[key] = (cuda.to_device(np.asarray(g.widths, dtype=_F32)),
                                             cuda.to_device(np.asarray(g.heights, dtype=_F32)))
        _det.prior_box_fwd(_flat(y), sizes[0], sizes[1], g.layer_h, g.layer_w, g.img_h, g.img_w,
                           g.step_h, g.step_w, g.offset, g.clip, g.variance)

    def bbox_decode(self, loc, prior, boxes, g: DetectionGeometry) -> None:
        _det.bbox_decode(_flat(loc), _flat(prior), _flat(boxes), g.num_priors, g.num_loc_classes,
                         g.code_type, g.variance_encoded_in_target, g.clip)

    def softmax_loss_fwd(self, prob, label, outer: int, dim: int, inner: int,
                         ignore_label: int | None) -> tuple[float, int]:
        loss, valid = _sm.softmax_loss_fwd(_shaped(_dev(prob), (outer, dim, inner)), _flat(label), 1,
                                           ignore_label)
        return float(loss), int(valid)

    def softmax_loss_bwd(self, prob, label, dx, outer: int, dim: int, inner: int,
                         ignore_label: int | None, scale: float) -> None:
        shp = (outer, dim, inner)
        _sm.softmax_loss_bwd(_shaped(_dev(prob), shp), _flat(label), _shaped(_dev(dx), shp), scale, 1,
                             ignore_label)

    def sigmoid_ce_loss_fwd(self, x, target, ignore_label: int | None) -> tuple[float, int]:
        loss, count = _loss.sigmoid_ce_fwd(_flat(x), _flat(target), ignore_label)
        return float(loss), int(count)

    def sigmoid_ce_loss_bwd(self, x, target, dx, ignore_label: int | None, scale: float) -> None:
        _loss.sigmoid_ce_bwd(_flat(x), _flat(target), _flat(dx), scale, ignore_label)

    @staticmethod
    def _pairs2d(*arrays):
        """Cached (N, D) views of arrays with N = the first axis of the first one."""
        devs = [_dev(a) for a in arrays]
        n = int(devs[0].shape[0]) if len(devs[0].shape) else 1
        shp = (n, devs[0].size // max(n, 1))
        return [_shaped(d, shp) for d in devs]

    def contrastive_loss_fwd(self, a, b, sim, diff, dist_sq, margin: float, legacy: bool) -> float:
        a2, b2, d2 = self._pairs2d(a, b, diff)
        return float(_loss.contrastive_fwd(a2, b2, _flat(sim), d2, _flat(dist_sq), margin, legacy))

    def contrastive_loss_bwd(self, diff, dist_sq, sim, dx, sign: float, margin: float, legacy: bool,
                             scale: float) -> None:
        d2, dx2 = self._pairs2d(diff, dx)
        _loss.contrastive_bwd(d2, _flat(dist_sq), _flat(sim), dx2, sign, margin, legacy, scale)

    def accuracy(self, x, label, outer: int, dim: int, inner: int, top_k: int,
                 ignore_label: int | None) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Caffe Accuracy on the device (``kernels.softmax.accuracy_fwd`` with ties counted
        against the label, the base class's rule); only the counts come back to the host."""
        if not 1 <= top_k <= dim or outer * inner == 0:
            return super().accuracy(x, label, outer, dim, inner, top_k, ignore_label)
        pc = self._workspaces.get(("per_class", dim))
        if pc is None:
            pc = self._workspaces[("per_class", dim)] = cuda.device_array((2, dim), dtype=np.int32)
        correct, count = _sm.accuracy_fwd(_shaped(_dev(x), (outer, dim, inner)), _flat(label), top_k, 1,
                                          ignore_label, ties="gpu", per_class=pc)
        h = pc.copy_to_host().astype(np.int64)
        return int(correct), int(count), h[0], h[1]

    # ------------------------------------------------------------------ concat / eltwise
    def concat_fwd(self, xs, y, outer: int, dims, inner: int) -> None:
        _concat.concat_fwd_all([_flat(a) for a in xs], _flat(y), outer, list(dims), inner)

    def concat_bwd(self, dy, dxs, outer: int, dims, inner: int) -> None:
        _concat.concat_bwd_all(_flat(dy), [None if a is None else _flat(a) for a in dxs], outer,
                               list(dims), inner)

    def eltwise_max_fwd(self, xs, y, mask) -> None:
        _elt.eltwise_max_fwd([_flat(a) for a in xs], _flat(y), _flat(mask))

    def eltwise_max_bwd(self, dy, mask, index: int, dx) -> None:
        _elt.eltwise_max_bwd(_flat(dy), _flat(mask), index, _flat(dx))

    # ------------------------------------------------------------------ batch norm
    def channel_mean_var(self, x, mean, var, n: int, c: int, s: int) -> None:
        _bn.channel_mean_var(_flat(x), _flat(mean), _flat(var), n, c, s)

    def batchnorm_fwd(self, x, mean, var, eps: float, y, inv_std, n: int, c: int, s: int) -> None:
        _bn.batchnorm_fwd(_flat(x), _flat(mean), _flat(var), eps, _flat(y), _flat(inv_std), n, c, s)

    def batchnorm_bwd(self, y, dy, inv_std, dx, n: int, c: int, s: int, use_global_stats: bool) -> None:
        _bn.batchnorm_bwd(_flat(y), _flat(dy), _flat(inv_std), _flat(dx), n, c, s, use_global_stats)

    # ------------------------------------------------------------------ Clip ... InfogainLoss
    # (kernels.activation, mvn, reduce, index_copy, im2col_nd, loss); everything stays on the
    # device except the loss sums the interface returns
    def clip_fwd(self, x, y, lo: float, hi: float) -> None:
        _act.clip_fwd(*_flats("clip_fwd", x, y), lo, hi)

    def clip_bwd(self, x, dy, dx, lo: float, hi: float) -> None:
        _act.clip_bwd(*_flats("clip_bwd", x, dy, dx), lo, hi)

    def threshold_fwd(self, x, y, threshold: float) -> None:
        _act.threshold_fwd(*_flats("threshold_fwd", x, y), threshold)

    def swish_fwd(self, x, y, s, beta: float) -> None:
        _act.swish_fwd(*_flats("swish_fwd", x, y, s), beta)

    def swish_bwd(self, y, s, dy, dx, beta: float) -> None:
        _act.swish_bwd(*_flats("swish_bwd", y, s, dy, dx), beta)

    def prelu_fwd(self, x, slope, y, channels: int, dim: int, shared: bool) -> None:
        _act.prelu_fwd(_flat(x), _flat(slope), _flat(y), channels, dim, shared)

    def prelu_bwd(self, x, slope, dy, dx, dslope, channels: int, dim: int, shared: bool) -> None:
        _act.prelu_bwd(_flat(x), _flat(slope), _flat(dy), None if dx is None else _flat(dx),
                        None if dslope is None else _flat(dslope), channels, dim, shared)

    def mvn_fwd(self, x, y, mean, std, rows: int, dim: int, normalize_variance: bool,
                eps: float) -> None:
        _mvn.mvn_fwd(_flat(x), _flat(y), _flat(mean), _flat(std), rows, dim, normalize_variance, eps)

    def mvn_bwd(self, y, dy, std, dx, rows: int, dim: int, normalize_variance: bool) -> None:
        _mvn.mvn_bwd(_flat(y), _flat(dy), _flat(std), _flat(dx), rows, dim, normalize_variance)

    def reduction_fwd(self, x, y, num: int, dim: int, op: int, coeff: float) -> None:
        _red.reduction_fwd(_flat(x), _flat(y), num, dim, op, coeff)

    def reduction_bwd(self, x, dy, dx, num: int, dim: int, op: int, coeff: float) -> None:
        _red.reduction_bwd(_flat(x), _flat(dy), _flat(dx), num, dim, op, coeff)

    def tile_fwd(self, x, y, outer: int, inner: int, tiles: int) -> None:
        _idx.tile_fwd(_flat(x), _flat(y), outer, inner, tiles)

    def tile_bwd(self, dy, dx, outer: int, inner: int, tiles: int) -> None:
        _idx.tile_bwd(_flat(dy), _flat(dx), outer, inner, tiles)

    def crop_fwd(self, x, y, offsets) -> None:
        _idx.crop_fwd(_dev(x), _dev(y), tuple(offsets))

    def crop_bwd(self, dy, dx, offsets) -> None:
        _idx.crop_bwd(_dev(dy), _dev(dx), tuple(offsets))

    def embed_fwd(self, index, w, b, y, m_rows: int, n_out: int, k_in: int) -> None:
        _idx.embed_fwd(_flat(index), _flat(w), None if b is None else _flat(b), _flat(y), m_rows,
                       n_out, k_in)

    def embed_bwd(self, index, dy, dw, db, m_rows: int, n_out: int, k_in: int) -> None:
        _idx.embed_bwd(_flat(index), _flat(dy), None if dw is None else _flat(dw),
                       None if db is None else _flat(db), m_rows, n_out, k_in)

    def take_rows(self, x, index, y, inner: int) -> None:
        _idx.take_rows_fwd(_flat(x), _flat(index), _flat(y), inner)

    def take_rows_bwd(self, dy, index, dx, inner: int) -> None:
        _idx.take_rows_bwd(_flat(dy), _flat(index), _flat(dx), inner)

    def put_rows(self, dy, where, dx, inner: int) -> None:
        _idx.put_rows(_flat(dy), _flat(where), _flat(dx), inner)

    @staticmethod
    def _im2col_args(g) -> tuple:
        return (g.num, g.channels, g.in_spatial, g.out_spatial, g.kernel, g.stride, g.pad, g.dilation)

    def im2col_layer_fwd(self, x, y, g) -> None:
        _i2c.im2col_layer_fwd(_flat(x), _flat(y), *self._im2col_args(g))

    def im2col_layer_bwd(self, dy, dx, g) -> None:
        _i2c.im2col_layer_bwd(_flat(dy), _flat(dx), *self._im2col_args(g))

    def hinge_loss_fwd(self, x, label, margin, num: int, dim: int, norm: int) -> float:
        return _loss.hinge_loss_fwd(_flat(x), _flat(label), _flat(margin), num, dim, norm)

    def hinge_loss_bwd(self, margin, label, dx, num: int, dim: int, norm: int, scale: float) -> None:
        _loss.hinge_loss_bwd(_flat(margin), _flat(label), _flat(dx), num, dim, norm, scale)

    def multinomial_logistic_loss_fwd(self, prob, label, num: int, dim: int) -> float:
        return _loss.multinomial_logistic_loss_fwd(_flat(prob), _flat(label), num, dim)

    def multinomial_logistic_loss_bwd(self, prob, label, dx, num: int, dim: int, scale: float) -> None:
        _loss.multinomial_logistic_loss_bwd(_flat(prob), _flat(label), _flat(dx), num, dim, scale)

    def infogain_loss_fwd(self, prob, label, h, outer: int, dim: int, inner: int,
                          ignore_label: int | None) -> tuple[float, int]:
        return _loss.infogain_loss_fwd(_flat(prob), _flat(label), _flat(h), outer, dim, inner,
                                     ignore_label)

    def infogain_loss_bwd(self, prob, label, h, dx, outer: int, dim: int, inner: int,
                          ignore_label: int | None, scale: float) -> None:
        _loss.infogain_loss_bwd(_flat(prob), _flat(label), _flat(h), _flat(dx), outer, dim, inner,
                              ignore_label, scale)
