"""N-D im2col / col2im (Caffe's im2col_nd / col2im_nd) for any number of spatial axes (1-D, 3-D,
...; the 2-D convolution path is ``kernels.im2col``): the columns of a chunk of images for
convolution as GEMM (``kernels.conv_nd``), and Caffe's Im2col layer (each image's columns as a blob).

Math. Input ``x`` (N, C, I_0, ..., I_{d-1}); per spatial axis a: kernel k_a, pad p_a, stride s_a,
dilation e_a, output size O_a (the caller's, from Caffe's rule in ``netdef.shapes``: the kernels
take it as given). K = prod(k_a), O = prod(O_a), I = prod(I_a). Row r = c*K + kidx(j) of image n
at output position o holds

    x[n, c, o_0 s_0 - p_0 + j_0 e_0, ..., o_{d-1} s_{d-1} - p_{d-1} + j_{d-1} e_{d-1}]

(0 where an index falls in the padding), kidx / oidx the row-major flat indices of the tap
(j_0..j_{d-1}) and the output position (o_0..o_{d-1}): Caffe's row and column order. Two layouts
of the same entries:

- convolution (``im2col_nd`` / ``col2im_nd``): for images n0 <= n < n1 (Nc = n1 - n0), ``col``
  (C*K, Nc*O) with entry (r, (n-n0)*O + oidx(o)): images side by side in the columns (as
  ``kernels.im2col``), so one GEMM per group covers the chunk;
- the Im2col layer (``im2col_layer_fwd`` / ``im2col_layer_bwd``): y (N, C*K, O), entry
  (n, r, oidx(o)).

The col2im direction is the exact adjoint, written (``=``) into dx (dx[n0:n1] for the chunk):
one thread per dx element gathers the column entries copied from it, in tap order, so no atomics
are needed.

The geometry (I_a, O_a, k_a, s_a, p_a, e_a for every axis) travels as one small int32 device array
(6 rows of d entries, ``kernels._launch.device_constants``: uploaded once per geometry), read by
every thread from global memory (cached): the kernels keep no per-thread arrays (no local memory),
so any number of spatial axes runs without a compile-time limit. Both layouts are one kernel with
the column array's strides as arguments (entry (r, n, o) at r*row_stride + n*img_stride + o).

Versions:
    im2col_nd_v1   one thread per column entry (grid-stride over C*K*Nc*O in (r, n, o) order:
                   consecutive threads on consecutive output positions, coalesced writes); the tap
                   and output position are split axis by axis (2 divisions per axis).
    col2im_nd_v1   one thread per dx element (grid-stride over Nc*C*I); for each of the K taps the
                   output position is (i_a + p_a - j_a e_a) / s_a on every axis, kept when it is a
                   whole number inside [0, O_a) (Caffe's col2im_nd test), summed in tap order.

Launch: 1-D grid-stride loops (``kernels._launch.launch_1d``). Indices are int64 (N-D volumes pass
2**31 elements sooner than images).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._index import flat_checked
from kernels._launch import as_device, device_constants, launch_1d

# rows of the geometry array (each d entries long)
G_IN, G_OUT, G_KERNEL, G_STRIDE, G_PAD, G_DIL = range(6)
_ZERO = float32(0.0)


@cuda.jit
def im2col_nd_v1(x, n0, geom, nsp, C, K, O, I, nc, row_stride, img_stride, col):
    """col[r*row_stride + n*img_stride + o] = the tap of row r = (c, j) of x[n0 + n] at output
    position o, for n < nc (Caffe's im2col_nd)."""
    ncols = nc * O
    total = C * K * ncols
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        row = e // ncols
        q = e - row * ncols
        n = q // O
        o = q - n * O
        dst = row * row_stride + n * img_stride + o
        c = row // K
        kk = row - c * K
        off = int64(0)
        mult = int64(1)
        inside = True
        for b in range(nsp):
            a = nsp - 1 - b                          # last axis first (row-major)
            k_a = geom[G_KERNEL * nsp + a]
            o_a = geom[G_OUT * nsp + a]
            i_a = geom[G_IN * nsp + a]
            j = kk % k_a
            kk = kk // k_a
            oa = o % o_a
            o = o // o_a
            pos = oa * geom[G_STRIDE * nsp + a] - geom[G_PAD * nsp + a] + j * geom[G_DIL * nsp + a]
            if pos < 0 or pos >= i_a:
                inside = False
            off += pos * mult
            mult *= i_a
        if inside:
            col[dst] = x[((n0 + n) * C + c) * I + off]
        else:
            col[dst] = _ZERO


@cuda.jit
def col2im_nd_v1(col, n0, geom, nsp, C, K, O, I, nc, row_stride, img_stride, dx):
    """dx[n0:n0+nc] flat = sum of the column entries im2col_nd copied from each element (written)."""
    total = nc * C * I
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        n = e // (C * I)
        r = e - n * (C * I)
        c = r // I
        p = r - c * I
        acc = _ZERO
        for kk in range(K):
            t = kk
            q = p
            ooff = int64(0)
            omult = int64(1)
            ok = True
            for b in range(nsp):
                a = nsp - 1 - b
                k_a = geom[G_KERNEL * nsp + a]
                i_a = geom[G_IN * nsp + a]
                o_a = geom[G_OUT * nsp + a]
                s_a = geom[G_STRIDE * nsp + a]
                j = t % k_a
                t = t // k_a
                ia = q % i_a
                q = q // i_a
                num = ia + geom[G_PAD * nsp + a] - j * geom[G_DIL * nsp + a]
                if num < 0 or num % s_a != 0:
                    ok = False
                else:
                    oa = num // s_a
                    if oa >= o_a:
                        ok = False
                    ooff += oa * omult
                omult *= o_a
            if ok:
                acc += col[(c * K + kk) * row_stride + n * img_stride + ooff]
        dx[(n0 + n) * C * I + r] = acc


_F = float32[::1]
_G = int32[::1]
_SIG = void(_F, int64, _G, int64, int64, int64, int64, int64, int64, int64, int64, _F)

KERNELS: dict[str, tuple[Any, list]] = {
    "im2col_nd_v1": (im2col_nd_v1, [_SIG]),
    "col2im_nd_v1": (col2im_nd_v1, [_SIG]),
}


# ------------------------------------------------------------------------------------- host side

class _Plan:
    """The launch arguments shared by both directions: the geometry array and the counts."""

    def __init__(self, who: str, channels: int, in_shape, out_shape, kernel, pad, stride, dilation):
        dims = [tuple(int(v) for v in t) for t in (in_shape, out_shape, kernel, stride, pad, dilation)]
        d = len(dims[0])
        if d < 1 or any(len(t) != d for t in dims):
            raise ValueError(f"{who}: in/out shape, kernel, stride, pad, dilation need the same "
                             f"number (>= 1) of entries, got {dims}")
        ins, outs, ks, strides, pads, dils = dims
        if min(ks + strides + dils) < 1 or min(pads) < 0 or min(outs) < 1:
            raise ValueError(f"{who}: kernel, stride, dilation and output sizes must be >= 1 and "
                             f"pad >= 0, got {dims}")
        self.geom = device_constants(tuple(v for t in dims for v in t), "int32")
        self.nsp, self.C = d, int(channels)
        self.K, self.O, self.I = math.prod(ks), math.prod(outs), math.prod(ins)

    def args(self, n0: int, nc: int, row_stride: int, img_stride: int) -> tuple:
        """The kernels' arguments between the two arrays, for images n0..n0+nc-1 and the column
        array's strides."""
        ints = (self.nsp, self.C, self.K, self.O, self.I, nc, row_stride, img_stride)
        return (np.int64(n0), self.geom, *(np.int64(v) for v in ints))


def _chunk(who: str, x_shape, n0: int, n1: int, col_shape, plan: _Plan) -> None:
    if not 0 <= n0 < n1 <= int(x_shape[0]):
        raise ValueError(f"{who}: image range [{n0}, {n1}) outside [0, {int(x_shape[0])})")
    want = (plan.C * plan.K, (n1 - n0) * plan.O)
    if tuple(col_shape) != want:
        raise ValueError(f"{who}: col {tuple(col_shape)} != expected {want}")


def im2col_nd(x: Any, n0: int, n1: int, kernel: Sequence[int], pad: Sequence[int],
              stride: Sequence[int], dilation: Sequence[int], out_shape: Sequence[int],
              col: Any) -> None:
    """col (C*K, (n1-n0)*O) = the N-D im2col of images n0..n1-1 of x (N, C, *in_shape) (see the
    module docstring); every argument sequence has one entry per spatial axis."""
    x, col = as_device(x), as_device(col)
    plan = _Plan("im2col_nd", x.shape[1], x.shape[2:], out_shape, kernel, pad, stride, dilation)
    _chunk("im2col_nd", x.shape, n0, n1, col.shape, plan)
    nc = n1 - n0
    launch_1d(im2col_nd_v1, plan.C * plan.K * nc * plan.O, flat_checked("im2col_nd", x),
              *plan.args(n0, nc, nc * plan.O, plan.O), flat_checked("im2col_nd", col))


def col2im_nd(col: Any, n0: int, n1: int, kernel: Sequence[int], pad: Sequence[int],
              stride: Sequence[int], dilation: Sequence[int], out_shape: Sequence[int],
              dx: Any) -> None:
    """dx[n0:n1] (N, C, *in_shape) = the adjoint of ``im2col_nd`` applied to col (written, ``=``);
    the rest of dx is untouched."""
    col, dx = as_device(col), as_device(dx)
    plan = _Plan("col2im_nd", dx.shape[1], dx.shape[2:], out_shape, kernel, pad, stride, dilation)
    _chunk("col2im_nd", dx.shape, n0, n1, col.shape, plan)
    nc = n1 - n0
    launch_1d(col2im_nd_v1, nc * plan.C * plan.I, flat_checked("col2im_nd", col),
              *plan.args(n0, nc, nc * plan.O, plan.O), flat_checked("col2im_nd", dx))


def im2col_layer_fwd(x: Any, y: Any, num: int, channels: int, in_spatial: Sequence[int],
                     out_spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                     pad: Sequence[int], dilation: Sequence[int]) -> None:
    """Caffe's Im2col layer: y (num, C*K, *out) = the columns of each image of x (num, C, *in)."""
    plan = _Plan("im2col_layer_fwd", channels, in_spatial, out_spatial, kernel, pad, stride, dilation)
    xf = flat_checked("im2col_layer_fwd", x, num * plan.C * plan.I)
    yf = flat_checked("im2col_layer_fwd", y, num * plan.C * plan.K * plan.O)
    launch_1d(im2col_nd_v1, yf.size, xf, *plan.args(0, num, plan.O, plan.C * plan.K * plan.O), yf)


def im2col_layer_bwd(dy: Any, dx: Any, num: int, channels: int, in_spatial: Sequence[int],
                     out_spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                     pad: Sequence[int], dilation: Sequence[int]) -> None:
    """The Im2col layer's backward: dx (num, C, *in) = col2im of dy (num, C*K, *out) (written)."""
    plan = _Plan("im2col_layer_bwd", channels, in_spatial, out_spatial, kernel, pad, stride, dilation)
    dyf = flat_checked("im2col_layer_bwd", dy, num * plan.C * plan.K * plan.O)
    dxf = flat_checked("im2col_layer_bwd", dx, num * plan.C * plan.I)
    launch_1d(col2im_nd_v1, dxf.size, dyf, *plan.args(0, num, plan.O, plan.C * plan.K * plan.O), dxf)
