"""N-D im2col / col2im for convolution as GEMM (Caffe's im2col_nd / col2im_nd), batched over a
chunk of images, for any number of spatial axes (1-D, 3-D, ...; the 2-D path is ``kernels.im2col``).

Math. Input ``x`` (N, C, I_0, ..., I_{d-1}); per spatial axis a: kernel k_a, pad p_a, stride s_a,
dilation e_a, output size O_a = (I_a + 2 p_a - (e_a (k_a - 1) + 1)) // s_a + 1. K = prod(k_a),
O = prod(O_a), I = prod(I_a). For images n0 <= n < n1 (Nc = n1 - n0), ``col`` (C*K, Nc*O) holds

    col[c*K + kidx(j), (n-n0)*O + oidx(o)] = x[n, c, o_0 s_0 - p_0 + j_0 e_0, ..., o_{d-1} s_{d-1}
                                               - p_{d-1} + j_{d-1} e_{d-1}]

(0 where an index falls in the padding), kidx / oidx the row-major flat indices of the tap
(j_0..j_{d-1}) and the output position (o_0..o_{d-1}): Caffe's row and column order, images side
by side in the columns (as ``kernels.im2col``), so one GEMM per group covers the chunk.
``col2im_nd`` is the exact adjoint, written (``=``) into dx[n0:n1]: one thread per dx element
gathers the column entries copied from it, so no atomics are needed.

The geometry (I_a, O_a, k_a, s_a, p_a, e_a for every axis) travels as one small int32 device array
(``geometry_array``: 6 rows of d entries, uploaded once per geometry), read by every thread from
global memory (cached): the kernels keep no per-thread arrays (no local memory), so any number of
spatial axes runs without a compile-time limit.

Versions:
    im2col_nd_v1   one thread per col element (grid-stride over C*K*Nc*O, consecutive threads on
                   consecutive columns: coalesced col writes); the tap and output position are
                   split axis by axis (2 divisions per axis).
    col2im_nd_v1   one thread per dx element (grid-stride over Nc*C*I); for each of the K taps the
                   output position is (i_a + p_a - j_a e_a) / s_a on every axis, kept when it is a
                   whole number inside [0, O_a) (Caffe's col2im_nd test), summed in tap order.

Launch: 1-D grid-stride loops, ND_THREADS threads per block (``kernels._launch.grid_1d``). Indices
are int64 (N-D volumes pass 2**31 elements sooner than images).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, void

from kernels._launch import as_device, grid_1d

ND_THREADS = 256      # threads per block for both kernels
# rows of the geometry array (each d entries long)
G_IN, G_OUT, G_KERNEL, G_STRIDE, G_PAD, G_DIL = range(6)
_ZERO = float32(0.0)


@cuda.jit
def im2col_nd_v1(x, n0, geom, nsp, C, K, O, I, ncols, col):
    """col (C*K, Nc*O) flat = the padded, strided taps of x[n0:n0+Nc] (Caffe's im2col_nd)."""
    total = C * K * ncols
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        row = e // ncols
        q = e - row * ncols
        n = q // O
        o = q - n * O
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
            col[e] = x[((n0 + n) * C + c) * I + off]
        else:
            col[e] = _ZERO


@cuda.jit
def col2im_nd_v1(col, n0, geom, nsp, C, K, O, I, ncols, nc, dx):
    """dx[n0:n0+Nc] flat = sum of the col entries im2col_nd copied from each element (written)."""
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
                acc += col[(c * K + kk) * ncols + n * O + ooff]
        dx[(n0 + n) * C * I + r] = acc


_F = float32[::1]
_G = int32[::1]

KERNELS: dict[str, tuple[Any, list]] = {
    "im2col_nd_v1": (im2col_nd_v1, [void(_F, int64, _G, int64, int64, int64, int64, int64, int64, _F)]),
    "col2im_nd_v1": (col2im_nd_v1, [void(_F, int64, _G, int64, int64, int64, int64, int64, int64,
                                         int64, _F)]),
}


# ------------------------------------------------------------------------------------- host side

def out_shape(in_shape: Sequence[int], kernel: Sequence[int], pad: Sequence[int],
              stride: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """Caffe's output size per spatial axis: (I + 2p - (e(k-1)+1)) // s + 1."""
    return tuple((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                 for i, k, p, s, d in zip(in_shape, kernel, pad, stride, dilation))


@functools.lru_cache(maxsize=256)
def geometry_array(in_shape: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
                   stride: tuple[int, ...], pad: tuple[int, ...], dilation: tuple[int, ...]) -> Any:
    """The kernels' int32 geometry array (rows G_IN..G_DIL of d entries), on the device; cached."""
    rows = (in_shape, out, kernel, stride, pad, dilation)
    return cuda.to_device(np.array([v for row in rows for v in row], dtype=np.int32))


def _check(x_shape, n0: int, n1: int, kernel, pad, stride, dilation, col_shape, who: str):
    d = len(x_shape) - 2
    if d < 1:
        raise ValueError(f"{who}: x must be (N, C, spatial...), got {tuple(x_shape)}")
    kernel, pad, stride, dilation = (tuple(int(v) for v in t) for t in (kernel, pad, stride, dilation))
    if not len(kernel) == len(pad) == len(stride) == len(dilation) == d:
        raise ValueError(f"{who}: kernel/pad/stride/dilation need {d} entries each")
    if min(kernel + stride + dilation) < 1 or min(pad) < 0:
        raise ValueError(f"{who}: kernel, stride, dilation must be >= 1 and pad >= 0")
    N, C = int(x_shape[0]), int(x_shape[1])
    in_shape = tuple(int(v) for v in x_shape[2:])
    out = out_shape(in_shape, kernel, pad, stride, dilation)
    if min(out) < 1:
        raise ValueError(f"{who}: kernel extent larger than the padded input {in_shape}")
    if not 0 <= n0 < n1 <= N:
        raise ValueError(f"{who}: image range [{n0}, {n1}) outside [0, {N})")
    K, O = int(np.prod(kernel)), int(np.prod(out))
    if tuple(col_shape) != (C * K, (n1 - n0) * O):
        raise ValueError(f"{who}: col {tuple(col_shape)} != expected {(C * K, (n1 - n0) * O)}")
    return C, in_shape, out, kernel, pad, stride, dilation, K, O


def im2col_nd(x: Any, n0: int, n1: int, kernel: Sequence[int], pad: Sequence[int],
              stride: Sequence[int], dilation: Sequence[int], col: Any) -> None:
    """col (C*K, (n1-n0)*O) = the N-D im2col of images n0..n1-1 of x (N, C, *in_shape) (see the
    module docstring); every argument sequence has one entry per spatial axis."""
    x, col = as_device(x), as_device(col)
    C, ins, out, kernel, pad, stride, dil, K, O = _check(x.shape, n0, n1, kernel, pad, stride,
                                                         dilation, col.shape, "im2col_nd")
    if x.dtype != np.float32 or col.dtype != np.float32:
        raise TypeError("im2col_nd: float32 arrays only")
    g = geometry_array(ins, out, kernel, stride, pad, dil)
    ncols = (n1 - n0) * O
    blocks, threads = grid_1d(C * K * ncols, ND_THREADS)
    im2col_nd_v1[blocks, threads](x.reshape(x.size), np.int64(n0), g, np.int64(len(ins)), np.int64(C),
                                  np.int64(K), np.int64(O), np.int64(int(np.prod(ins))),
                                  np.int64(ncols), col.reshape(col.size))


def col2im_nd(col: Any, n0: int, n1: int, kernel: Sequence[int], pad: Sequence[int],
              stride: Sequence[int], dilation: Sequence[int], dx: Any) -> None:
    """dx[n0:n1] (N, C, *in_shape) = the adjoint of ``im2col_nd`` applied to col (written, ``=``);
    the rest of dx is untouched."""
    col, dx = as_device(col), as_device(dx)
    C, ins, out, kernel, pad, stride, dil, K, O = _check(dx.shape, n0, n1, kernel, pad, stride,
                                                         dilation, col.shape, "col2im_nd")
    if dx.dtype != np.float32 or col.dtype != np.float32:
        raise TypeError("col2im_nd: float32 arrays only")
    g = geometry_array(ins, out, kernel, stride, pad, dil)
    nc = n1 - n0
    I = int(np.prod(ins))
    blocks, threads = grid_1d(nc * C * I, ND_THREADS)
    col2im_nd_v1[blocks, threads](col.reshape(col.size), np.int64(n0), g, np.int64(len(ins)),
                                  np.int64(C), np.int64(K), np.int64(O), np.int64(I),
                                  np.int64(nc * O), np.int64(nc), dx.reshape(dx.size))
