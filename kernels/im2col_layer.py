"""Caffe's Im2colLayer: per-image im2col and its col2im backward over any number of spatial axes
(Caffe's im2col_cpu for 2-D, im2col_nd_cpu otherwise; the layouts agree).

Math: x is (num, C, *in) with D spatial axes, K = prod(kernel); y is (num, C*K, *out) with
out_d = (in_d + 2*pad_d - (dil_d*(k_d - 1) + 1)) // stride_d + 1. For row r = c*K + kofs (kofs the
C-order index of a kernel offset (k_0, ..., k_D-1)) and output position (o_0, ..., o_D-1):

    y[n, r, o] = x[n, c, o_d*stride_d - pad_d + k_d*dil_d for each d]   (0 outside the image)

The backward is col2im: dx[n, c, p] = sum over the kernel offsets kofs = 0, 1, ... (in order, as
Caffe's col2im adds them) of dy[n, c*K + kofs, o] for the output position o with
o_d*stride_d - pad_d + k_d*dil_d = p_d on every axis, when it exists. dx is written (``=``).

Versions (v1 each): ``im2col_layer_fwd_v1`` one thread per element of y (a gather);
``im2col_layer_bwd_v1`` one thread per element of dx, walking the K kernel offsets (a gather, no
atomics, Caffe's summation order). Shapes, kernel, stride, pad and dilation come from one int64
device array ``geom`` = (in, out, kernel, stride, pad, dilation), D values each, uploaded once per
geometry and cached.

Launch geometry: ``kernels._launch.grid_1d(n, THREADS)`` over the elements of y (forward) or dx
(backward).
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import cuda, float32, int64, void

from kernels._launch import SIMULATOR, THREADS_PER_BLOCK, as_device, grid_1d

#: threads per block of the 1-D grid-stride launches (fewer in the simulator, which runs each
#: thread in Python; the kernels do not depend on it)
THREADS = 32 if SIMULATOR else THREADS_PER_BLOCK

_ZERO = float32(0.0)


@cuda.jit
def im2col_layer_fwd_v1(x, y, geom, channels, ndim, ksize, in_total, out_total):
    """y[n, c*K + kofs, o] = x[n, c, window position] or 0 in the padding."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        o_rem = i % out_total
        r = (i // out_total) % (channels * ksize)
        n = i // (out_total * channels * ksize)
        c = r // ksize
        k_rem = r - c * ksize
        xi = 0
        stride_in = 1
        inside = True
        for d in range(ndim - 1, -1, -1):
            kd = k_rem % geom[2 * ndim + d]
            k_rem //= geom[2 * ndim + d]
            od = o_rem % geom[ndim + d]
            o_rem //= geom[ndim + d]
            pos = od * geom[3 * ndim + d] - geom[4 * ndim + d] + kd * geom[5 * ndim + d]
            if pos < 0 or pos >= geom[d]:
                inside = False
            xi += pos * stride_in
            stride_in *= geom[d]
        y[i] = x[(n * channels + c) * in_total + xi] if inside else _ZERO


@cuda.jit
def im2col_layer_bwd_v1(dy, dx, geom, channels, ndim, ksize, in_total, out_total):
    """dx[n, c, p] = sum over kernel offsets (ascending) of the column entries copied from p."""
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        p_flat = j % in_total
        nc = j // in_total
        c = nc % channels
        n = nc // channels
        row0 = (n * channels + c) * ksize
        acc = _ZERO
        for kofs in range(ksize):
            k_rem = kofs
            p_rem = p_flat
            oi = 0
            stride_out = 1
            hit = True
            for d in range(ndim - 1, -1, -1):
                kd = k_rem % geom[2 * ndim + d]
                k_rem //= geom[2 * ndim + d]
                pd = p_rem % geom[d]
                p_rem //= geom[d]
                t = pd + geom[4 * ndim + d] - kd * geom[5 * ndim + d]
                sd = geom[3 * ndim + d]
                if t < 0 or t % sd != 0 or t // sd >= geom[ndim + d]:
                    hit = False
                else:
                    oi += (t // sd) * stride_out
                stride_out *= geom[ndim + d]
            if hit:
                acc += dy[(row0 + kofs) * out_total + oi]
        dx[j] = acc


_F = float32[::1]
_G = int64[::1]
_I = int64
KERNELS: dict[str, tuple[Any, list]] = {
    "im2col_layer_fwd_v1": (im2col_layer_fwd_v1, [void(_F, _F, _G, _I, _I, _I, _I, _I)]),
    "im2col_layer_bwd_v1": (im2col_layer_bwd_v1, [void(_F, _F, _G, _I, _I, _I, _I, _I)]),
}


@functools.lru_cache(maxsize=256)
def _geom(in_spatial: tuple, out_spatial: tuple, kernel: tuple, stride: tuple, pad: tuple,
          dilation: tuple) -> Any:
    """The cached int64 device array the kernels read (one upload per geometry)."""
    vals = list(in_spatial) + list(out_spatial) + list(kernel) + list(stride) + list(pad) + list(dilation)
    return cuda.to_device(np.array(vals, dtype=np.int64))


def _prod(t: tuple) -> int:
    n = 1
    for v in t:
        n *= int(v)
    return n


def _args(num: int, channels: int, in_spatial, out_spatial, kernel, stride, pad, dilation):
    dims = [tuple(int(v) for v in t) for t in (in_spatial, out_spatial, kernel, stride, pad, dilation)]
    ndim = len(dims[0])
    if ndim < 1 or any(len(t) != ndim for t in dims):
        raise ValueError(f"im2col_layer: spatial parameters must all have the same length >= 1, "
                         f"got {dims}")
    ins, outs, ks = dims[0], dims[1], dims[2]
    return (_geom(*dims), channels, ndim, _prod(ks), _prod(ins), _prod(outs),
            num * channels * _prod(ins), num * channels * _prod(ks) * _prod(outs))


def _flat(name: str, a: Any, n: int) -> Any:
    d = as_device(a)
    if d.dtype != np.float32 or d.size != n:
        raise ValueError(f"{name}: expected {n} float32 values, got {d.size} {d.dtype}")
    return d if len(d.shape) == 1 else d.reshape(n)


def im2col_layer_fwd(x: Any, y: Any, num: int, channels: int, in_spatial, out_spatial, kernel,
                     stride, pad, dilation) -> None:
    """y (num, C*K, *out) = the im2col columns of each image of x (num, C, *in)."""
    geom, c, ndim, k, tin, tout, nx, ny = _args(num, channels, in_spatial, out_spatial, kernel,
                                                  stride, pad, dilation)
    xf, yf = _flat("im2col_layer_fwd", x, nx), _flat("im2col_layer_fwd", y, ny)
    if ny:
        blocks, threads = grid_1d(ny, THREADS)
        im2col_layer_fwd_v1[blocks, threads](xf, yf, geom, c, ndim, k, tin, tout)


def im2col_layer_bwd(dy: Any, dx: Any, num: int, channels: int, in_spatial, out_spatial, kernel,
                     stride, pad, dilation) -> None:
    """dx (num, C, *in) = col2im of dy (num, C*K, *out) (dx written)."""
    geom, c, ndim, k, tin, tout, nx, ny = _args(num, channels, in_spatial, out_spatial, kernel,
                                                  stride, pad, dilation)
    dyf, dxf = _flat("im2col_layer_bwd", dy, ny), _flat("im2col_layer_bwd", dx, nx)
    if nx:
        blocks, threads = grid_1d(nx, THREADS)
        im2col_layer_bwd_v1[blocks, threads](dyf, dxf, geom, c, ndim, k, tin, tout)
