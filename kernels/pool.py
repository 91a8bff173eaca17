"""Max and average pooling over NCHW float32 tensors, forward and backward, with Caffe's semantics.

Math (per image n, channel c, output cell (ph, pw)); Caffe's pooling_layer.cu to the letter:

    hstart = ph*stride_h - pad_h            wstart = pw*stride_w - pad_w
    MAX:  window = [max(hstart,0), min(hstart+kernel_h, H)) x [max(wstart,0), min(wstart+kernel_w, W))
          y = max over the window, starting from -FLT_MAX; the FIRST maximum wins (strict ``>``,
          scanning h then w); mask = its flat index h*W + w in the input plane (int32, -1 if the
          window holds nothing greater than -FLT_MAX).
    AVE:  hend = min(hstart+kernel_h, H+pad_h)  (the same for w)
          pool_size = (hend-hstart) * (wend-wstart)      -- computed BEFORE clipping to [0, H):
          padded cells inside the padded extent count, cells beyond H+pad_h do not
          y = (sum of x over the window clipped to [0,H) x [0,W)) / pool_size
    Backward (bottom gradient, written with ``=``):
    MAX:  dx[h, w] = sum of dy[ph, pw] over the outputs whose window covers (h, w) and whose mask is
          h*W + w  (i.e. dy is routed to the first argmax)
    AVE:  dx[h, w] = sum of dy[ph, pw] / pool_size(ph, pw) over the outputs whose window covers (h, w)

An empty window (only with stride > kernel and no padding, when the ceil rule's last window starts
past the image) gives y = -FLT_MAX / mask -1 for MAX and 0/0 = NaN for AVE, exactly as Caffe.

Global pooling is kernel = (H, W), pad 0, stride 1. Output sizes are passed in (the y array's shape);
``pooled_size`` implements Caffe's rule for callers. Stochastic pooling is not provided.

Shapes: x, dx (N, C, H, W); y, dy, mask (N, C, PH, PW); all C-contiguous, float32 (mask int32).

Versions:
    v1  one thread per output (forward) or per input element (backward, scanning the outputs whose
        window covers it, as Caffe's GPU code: no atomics); grid-stride loop.

Launch geometry: 1-D grid over the flat output (forward) / input (backward) index, POOL_THREADS
threads per block, block count from ``kernels._launch.grid_1d`` (capped, cached per size).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._launch import as_device, grid_1d

POOL_THREADS = 256          # threads per block for every pooling kernel (8 warps)
NEG_FLT_MAX = np.float32(-np.finfo(np.float32).max)   # Caffe's initial max: -FLT_MAX


def pooled_size(size: int, kernel: int, pad: int, stride: int, round_mode: str = "CEIL",
                any_pad: bool | None = None) -> int:
    """Caffe's pooled output length along one axis.

    ``CEIL`` (Caffe's default): ceil((size + 2*pad - kernel) / stride) + 1; ``FLOOR``: floor(...) + 1.
    Then, if the layer has any padding (Caffe tests ``pad_h || pad_w``: pass ``any_pad`` for the
    other axis' padding to count; default ``pad != 0``) and the last window would start at or beyond
    ``size + pad`` (``(out-1)*stride >= size + pad``), the last window is dropped (``out -= 1``).
    """
    if round_mode not in ("CEIL", "FLOOR"):
        raise ValueError(f"round_mode must be 'CEIL' or 'FLOOR', got {round_mode!r}")
    if kernel <= 0 or stride <= 0 or pad < 0:
        raise ValueError(f"pooling needs kernel > 0, stride > 0, pad >= 0 (got {kernel}, {stride}, {pad})")
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(f"pooling kernel {kernel} is larger than the padded input {size} + 2*{pad}")
    # Caffe computes in float: static_cast<float>(span) / stride
    q = float(np.float32(span) / np.float32(stride))
    out = (math.ceil(q) if round_mode == "CEIL" else math.floor(q)) + 1
    if (pad != 0 if any_pad is None else any_pad) and (out - 1) * stride >= size + pad:
        out -= 1
    return out


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit
def max_pool_fwd_v1(x, y, mask, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w):
    """y[n,c,ph,pw] = first max of x over the clipped window; mask = its flat index h*W+w."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        c = (i // (PW * PH)) % C
        n = i // (PW * PH * C)
        hstart = ph * stride_h - pad_h
        wstart = pw * stride_w - pad_w
        hend = min(hstart + kernel_h, H)
        wend = min(wstart + kernel_w, W)
        hstart = max(hstart, 0)
        wstart = max(wstart, 0)
        plane = (n * C + c) * H * W
        maxval = NEG_FLT_MAX
        maxidx = -1
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                v = x[plane + h * W + w]
                if v > maxval:          # strict: the first maximum wins, as Caffe
                    maxval = v
                    maxidx = h * W + w
        y[i] = maxval
        mask[i] = maxidx


@cuda.jit
def max_pool_bwd_v1(dy, mask, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w,
                    pad_h, pad_w):
    """dx[n,c,h,w] = sum of dy over the outputs covering (h,w) whose argmax is h*W+w."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        # outputs whose window [ph*stride-pad, ph*stride-pad+kernel) contains h
        phstart = 0 if h + pad_h < kernel_h else (h + pad_h - kernel_h) // stride_h + 1
        phend = min((h + pad_h) // stride_h + 1, PH)
        pwstart = 0 if w + pad_w < kernel_w else (w + pad_w - kernel_w) // stride_w + 1
        pwend = min((w + pad_w) // stride_w + 1, PW)
        out_plane = (n * C + c) * PH * PW
        target = h * W + w
        gradient = float32(0)
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                if mask[out_plane + ph * PW + pw] == target:
                    gradient += dy[out_plane + ph * PW + pw]
        dx[i] = gradient


@cuda.jit
def ave_pool_fwd_v1(x, y, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    """y[n,c,ph,pw] = sum of x over the clipped window / Caffe's pool_size (padded extent)."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        pw = i % PW
        ph = (i // PW) % PH
        c = (i // (PW * PH)) % C
        n = i // (PW * PH * C)
        hstart = ph * stride_h - pad_h
        wstart = pw * stride_w - pad_w
        hend = min(hstart + kernel_h, H + pad_h)
        wend = min(wstart + kernel_w, W + pad_w)
        pool_size = (hend - hstart) * (wend - wstart)
        hstart = max(hstart, 0)
        wstart = max(wstart, 0)
        hend = min(hend, H)
        wend = min(wend, W)
        plane = (n * C + c) * H * W
        total = float32(0)
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                total += x[plane + h * W + w]
        y[i] = total / float32(pool_size)


@cuda.jit
def ave_pool_bwd_v1(dy, dx, C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    """dx[n,c,h,w] = sum of dy[ph,pw] / pool_size(ph,pw) over the outputs covering (h,w)."""
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % W
        h = (i // W) % H
        c = (i // (W * H)) % C
        n = i // (W * H * C)
        hp = h + pad_h              # position in the padded plane
        wp = w + pad_w
        phstart = 0 if hp < kernel_h else (hp - kernel_h) // stride_h + 1
        phend = min(hp // stride_h + 1, PH)
        pwstart = 0 if wp < kernel_w else (wp - kernel_w) // stride_w + 1
        pwend = min(wp // stride_w + 1, PW)
        out_plane = (n * C + c) * PH * PW
        gradient = float32(0)
        for ph in range(phstart, phend):
            for pw in range(pwstart, pwend):
                hstart = ph * stride_h - pad_h
                wstart = pw * stride_w - pad_w
                hend = min(hstart + kernel_h, H + pad_h)
                wend = min(wstart + kernel_w, W + pad_w)
                pool_size = (hend - hstart) * (wend - wstart)
                gradient += dy[out_plane + ph * PW + pw] / float32(pool_size)
        dx[i] = gradient


_F = float32[::1]
_I = int32[::1]
_GEOM = (int64,) * 11       # C, H, W, PH, PW, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w

KERNELS: dict[str, tuple[Any, list]] = {
    "max_pool_fwd_v1": (max_pool_fwd_v1, [void(_F, _F, _I, *_GEOM)]),
    "max_pool_bwd_v1": (max_pool_bwd_v1, [void(_F, _I, _F, *_GEOM)]),
    "ave_pool_fwd_v1": (ave_pool_fwd_v1, [void(_F, _F, *_GEOM)]),
    "ave_pool_bwd_v1": (ave_pool_bwd_v1, [void(_F, _F, *_GEOM)]),
}


# ------------------------------------------------------------------------------------- public API

def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _geometry(big: Any, small: Any, kernel, stride, pad) -> tuple[int, ...]:
    """(C, H, W, PH, PW, kh, kw, sh, sw, pad_h, pad_w) after checking the two NCHW shapes agree."""
    if len(big.shape) != 4 or len(small.shape) != 4:
        raise ValueError(f"pooling needs 4-D NCHW arrays, got {big.shape} and {small.shape}")
    N, C, H, W = big.shape
    if tuple(small.shape[:2]) != (N, C):
        raise ValueError(f"pooling input {big.shape} and output {small.shape} differ in N or C")
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    pad_h, pad_w = _pair(pad, "pad")
    if min(kh, kw, sh, sw) <= 0 or min(pad_h, pad_w) < 0:
        raise ValueError(f"pooling needs kernel > 0, stride > 0, pad >= 0; got kernel={kernel}, "
                         f"stride={stride}, pad={pad}")
    return (C, H, W, small.shape[2], small.shape[3], kh, kw, sh, sw, pad_h, pad_w)


def _flat(a: Any, dtype: Any) -> Any:
    """The device array ``a`` viewed as 1-D, after checking its dtype."""
    if a.dtype != dtype:
        raise TypeError(f"expected a {np.dtype(dtype).name} array, got {a.dtype}")
    return a.reshape(a.size)


def _launch(kernel, n: int, *args) -> None:
    if n == 0:
        return
    blocks, threads = grid_1d(n, POOL_THREADS)
    kernel[blocks, threads](*args)


def max_pool_fwd(x: Any, y: Any, mask: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Max pooling: y (N,C,PH,PW) = max of x (N,C,H,W) over each window (Caffe's clipping, first
    max on ties); mask (N,C,PH,PW) int32 receives the argmax as h*W+w in the input plane (-1 when
    a window holds nothing above -FLT_MAX). PH, PW are taken from y's shape (see ``pooled_size``).
    ``kernel``, ``stride``, ``pad``: an int or an (h, w) pair."""
    x, y, mask = as_device(x), as_device(y), as_device(mask)
    geom = _geometry(x, y, kernel, stride, pad)
    if tuple(mask.shape) != tuple(y.shape):
        raise ValueError(f"max pool mask shape {mask.shape} != output shape {y.shape}")
    yf = _flat(y, np.float32)
    _launch(max_pool_fwd_v1, yf.size, _flat(x, np.float32), yf, _flat(mask, np.int32), *geom)


def max_pool_bwd(dy: Any, mask: Any, dx: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Max pooling backward: dx (N,C,H,W) = dy (N,C,PH,PW) routed to the argmax recorded in mask
    by ``max_pool_fwd`` (summed where windows overlap); dx is overwritten."""
    dy, mask, dx = as_device(dy), as_device(mask), as_device(dx)
    geom = _geometry(dx, dy, kernel, stride, pad)
    if tuple(mask.shape) != tuple(dy.shape):
        raise ValueError(f"max pool mask shape {mask.shape} != top diff shape {dy.shape}")
    dxf = _flat(dx, np.float32)
    _launch(max_pool_bwd_v1, dxf.size, _flat(dy, np.float32), _flat(mask, np.int32), dxf, *geom)


def ave_pool_fwd(x: Any, y: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Average pooling: y (N,C,PH,PW) = sum of x (N,C,H,W) over each clipped window divided by
    Caffe's pool_size (the window clipped to the padded extent H+pad, W+pad)."""
    x, y = as_device(x), as_device(y)
    geom = _geometry(x, y, kernel, stride, pad)
    yf = _flat(y, np.float32)
    _launch(ave_pool_fwd_v1, yf.size, _flat(x, np.float32), yf, *geom)


def ave_pool_bwd(dy: Any, dx: Any, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0) -> None:
    """Average pooling backward: dx (N,C,H,W) = sum over covering windows of dy / pool_size;
    dx is overwritten."""
    dy, dx = as_device(dy), as_device(dx)
    geom = _geometry(dx, dy, kernel, stride, pad)
    dxf = _flat(dx, np.float32)
    _launch(ave_pool_bwd_v1, dxf.size, _flat(dy, np.float32), dxf, *geom)
