"""im2col / col2im for convolution as GEMM (Caffe's layout, batched over a chunk of images).

Math. Input ``x`` (N, C, H, W); kernel kh x kw, padding ph/pw, stride sh/sw, dilation dh/dw;
output size OH x OW (the caller's, from Caffe's rule in ``netdef.shapes``: the kernels take it as
given). For the images ``n0 <= n < n1`` (Nc = n1 - n0), ``col`` has shape (C*kh*kw, Nc*OH*OW) with

    col[c*kh*kw + i*kw + j, (n-n0)*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

(0 where the input index falls in the padding). Rows are Caffe's per-image order, images sit side
by side in the columns, so one GEMM ``W (Cout, C*kh*kw) @ col`` computes the convolution of the whole
chunk, in "channel-major" layout (Cout, Nc*OH*OW) (see ``kernels/layout.py``).
``col2im`` is the exact adjoint: ``dx[n, c, h, w] = sum of col entries that im2col copied from
x[n, c, h, w]``, written (``=``, bottom gradients are not accumulated) into ``dx[n0:n1]``; one thread
per input pixel gathers its contributions, so no atomics are needed.

Grouped convolution (``group = G``): channel group g uses rows ``g*(C/G)*kh*kw : (g+1)*(C/G)*kh*kw``
of ``col`` (a contiguous row slice) with the weights ``W[g*Cout/G:(g+1)*Cout/G]`` viewed as
(Cout/G, C/G*kh*kw): one im2col serves every group. A 1x1 convolution with stride 1 and no padding
needs no im2col: for one image, ``x[n]`` viewed as (C, H*W) already is ``col`` (``conv.py`` skips it).

Composition (``kernels/conv.py``): forward ``im2col -> gemm(W, col) -> layout.cn_to_nc (+bias)``;
backward ``layout.nc_to_cn(dy) -> gemm(dy, col^T, beta=1) for dW and gemm(W^T, dy) -> col2im``.

Versions (``PROMOTED``: v3 for both; where a version does not apply the next older one runs):

- ``im2col_v1``: one thread per ``col`` element (grid-stride over C*kh*kw*Nc*OH*OW); consecutive
  threads write consecutive columns (coalesced), read x with stride sw.
- ``im2col_v2``: Caffe's scheme, one thread per (c, n, oh, ow) column entry, looping over
  the kh*kw taps; the input offset and bounds are computed once per tap row. Grid-stride over
  C*Nc*OH*OW, 256 threads per block.
- ``im2col_v3`` (int32 indices): block (256 threads over the columns q = (n, oh, ow) of col) x
  (grid y over groups of 8 rows r = (c, i, j)); each thread splits its column once (two
  multiply-shift "magic" divisions, ``kernels._index.magic_div``) and its group's first row once,
  then walks the 8 rows by incrementing (j, i, c) -- no division per element, int32 index math on
  flat arrays. Four taps are loaded before the four stores (memory-level parallelism); every store
  is 32 consecutive floats of one col row (coalesced).
- ``col2im_v1``: one thread per input pixel (n, c, h, w) of dx[n0:n1], looping over the
  kh*kw taps and keeping those with an output position on the stride grid. Grid-stride over
  Nc*C*H*W.
- ``col2im_v2`` (int32 indices): Caffe's gather form: one thread per dx pixel, grid-stride over
  Nc*C*H*W in int32 with magic divisions; the output positions covering the pixel are the ranges
  ``hs <= oh < he``, ``ws <= ow < we`` (``hs = 0 if h+ph < ext else (h+ph-ext)//sh + 1``,
  ``he = min((h+ph)//sh + 1, OH)``, ext = dh*(kh-1)+1). With dilation 1 every (oh, ow) in the
  ranges is a tap (i = h+ph - oh*sh) and its col offset is linear in (oh, ow), so the loop is one
  add per tap, unrolled by 4 (four loads in flight before the adds); with dilation > 1 it keeps
  the candidates where (h+ph - oh*sh) is a multiple of dh (Caffe's test, with magic divisions).
  It skips the taps off the stride grid without testing them.
- ``col2im_v3`` (stride 1, any dilation, int32 indices): every thread walks all kh*kw taps in the
  same order, masking those whose output position (h+ph - i*dh, w+pw - j*dw) is outside the
  output (at stride 1 no divisibility test is needed), so at each step a warp's 32 pixels read
  consecutive col entries of one row; offsets advance by two constants, 4 predicated loads in
  flight. Edge pixels cost masked lanes, not extra sectors.

All integer arguments are int32 (the magic multipliers uint32); ``x``/``dx`` are C-contiguous
(N, C, H, W), ``col`` C-contiguous 2-D; the int32 kernels take them flattened (1-D views) and need
every flat index below 2**31 (``_fits_int32``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, int32, uint32

from kernels._index import INT32_LIMIT, magic_div, udiv31
from kernels._launch import as_device, grid_1d

I2C_THREADS = 256   # im2col_v3: threads per block (over columns of col)
I2C_ROWS = 8        # im2col_v3: col rows per thread (grid y = row groups); a multiple of 4
C2I_THREADS = 128   # col2im_v2/v3: threads per block (one dx pixel each)
GRID_Y_MAX = 65535  # CUDA's limit on gridDim.y; the row-group loop strides past it

PROMOTED: dict[str, str] = {"im2col": "v3", "col2im": "v3"}


@cuda.jit
def im2col_v1(x, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, col):
    """im2col, one thread per col element (row r = c*kh*kw + i*kw + j, column (n-n0)*OH*OW + oh*OW
    + ow); grid-stride, 256 threads per block."""
    ncols = (n1 - n0) * OH * OW
    total = col.shape[0] * ncols
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = idx // ncols
        q = idx - r * ncols
        n = q // (OH * OW)
        p = q - n * (OH * OW)
        oh = p // OW
        ow = p - oh * OW
        c = r // (kh * kw)
        t = r - c * (kh * kw)
        i = t // kw
        j = t - i * kw
        h = oh * sh - ph + i * dh
        w = ow * sw - pw + j * dw
        if c < C and h >= 0 and h < H and w >= 0 and w < W:
            col[r, q] = x[n0 + n, c, h, w]
        else:
            col[r, q] = float32(0.0)


@cuda.jit
def im2col_v2(x, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, col):
    """im2col, one thread per (c, n, oh, ow) looping over the kh*kw taps (Caffe's im2col_gpu);
    grid-stride over C*Nc*OH*OW, 256 threads per block."""
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    S = OH * OW
    ncols = (n1 - n0) * S
    total = C * ncols
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = idx // ncols
        q = idx - c * ncols          # column of col: (n - n0)*S + oh*OW + ow
        n = q // S
        p = q - n * S
        oh = p // OW
        ow = p - oh * OW
        h0 = oh * sh - ph
        w0 = ow * sw - pw
        r = c * kh * kw
        for i in range(kh):
            h = h0 + i * dh
            hin = h >= 0 and h < H
            for j in range(kw):
                w = w0 + j * dw
                if hin and w >= 0 and w < W:
                    col[r, q] = x[n0 + n, c, h, w]
                else:
                    col[r, q] = float32(0.0)
                r += 1


@cuda.jit
def col2im_v1(col, n0, n1, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, dx):
    """col2im (adjoint of im2col), one thread per input pixel of dx[n0:n1] summing its kh*kw
    possible contributions (no atomics); grid-stride over Nc*C*H*W, 256 threads per block."""
    C = dx.shape[1]
    H = dx.shape[2]
    W = dx.shape[3]
    S = OH * OW
    total = (n1 - n0) * C * H * W
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        w = idx % W
        t = idx // W
        h = t % H
        t = t // H
        c = t % C
        n = t // C
        acc = float32(0.0)
        for i in range(kh):
            hh = h + ph - i * dh          # = oh * sh when tap i of output row oh reads row h
            if hh >= 0 and hh % sh == 0:
                oh = hh // sh
                if oh < OH:
                    for j in range(kw):
                        ww = w + pw - j * dw
                        if ww >= 0 and ww % sw == 0:
                            ow = ww // sw
                            if ow < OW:
                                acc += col[(c * kh + i) * kw + j, n * S + oh * OW + ow]
        dx[n0 + n, c, h, w] = acc


@cuda.jit(device=True)
def _x_tap(xf, ok, xt, h0, w0, c, i, j, H, W, HW, dh, dw):
    """x value of tap (c, i, j) for the column whose window corner is (h0, w0) and whose flat x
    offset of (c, h, w) = (0, h0, w0) is xt; 0 in the padding or when not ok (a row past the end
    of col). (c, i, j) are the same for the whole block (uniform registers): per thread this is
    two adds for (h, w), two compares and one add for the offset."""
    hi = int32(i * dh)
    wj = int32(j * dw)
    v = float32(0.0)
    # unsigned compares: 0 <= h < H in one test; uint32 index: no negative-index wraparound code
    if ok and uint32(h0 + hi) < uint32(H) and uint32(w0 + wj) < uint32(W):
        v = xf[uint32(xt + (c * HW + hi * W + wj))]
    return v


@cuda.jit(device=True)
def _next_row(c, i, j, kh, kw):
    """(c, i, j) of col row r + 1 from those of row r, without a division."""
    j = int32(j + 1)
    if j == kw:
        j = int32(0)
        i = int32(i + 1)
        if i == kh:
            i = int32(0)
            c = int32(c + 1)
    return c, i, j


@cuda.jit
def im2col_v3(xf, n0, C, H, W, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, K, ncols, ngroups,
              mS, sS, mOW, sOW, mkk, skk, mkw, skw, colf):
    """im2col on flat arrays: thread = (column q, group of I2C_ROWS rows); block 256 x 1, grid
    (ceil(ncols/256), min(ngroups, 65535)) striding over the row groups. int32 indices."""
    q = int32(int32(cuda.blockIdx.x) * I2C_THREADS + int32(cuda.threadIdx.x))
    if q >= ncols:
        return
    S = int32(OH * OW)
    n = udiv31(q, mS, sS)                      # column q = n*S + oh*OW + ow, split once
    p = int32(q - n * S)
    oh = udiv31(p, mOW, sOW)
    ow = int32(p - oh * OW)
    h0 = int32(oh * sh - ph)
    w0 = int32(ow * sw - pw)
    HW = int32(H * W)
    xt = int32((n0 + n) * C * HW + h0 * W + w0)   # may be < 0 (padding); xt + tap offset is not
    khkw = int32(kh * kw)
    g = int32(cuda.blockIdx.y)
    gstep = int32(cuda.gridDim.y)
    while g < ngroups:
        r = int32(g * I2C_ROWS)
        c = udiv31(r, mkk, skk)                # first row of the group split once
        t = int32(r - c * khkw)
        i = udiv31(t, mkw, skw)
        j = int32(t - i * kw)
        for _ in range(I2C_ROWS // 4):
            # four independent loads first, then the four stores: 4 loads in flight per thread
            v0 = _x_tap(xf, r < K, xt, h0, w0, c, i, j, H, W, HW, dh, dw)
            c, i, j = _next_row(c, i, j, kh, kw)
            v1 = _x_tap(xf, r + 1 < K, xt, h0, w0, c, i, j, H, W, HW, dh, dw)
            c, i, j = _next_row(c, i, j, kh, kw)
            v2 = _x_tap(xf, r + 2 < K, xt, h0, w0, c, i, j, H, W, HW, dh, dw)
            c, i, j = _next_row(c, i, j, kh, kw)
            v3 = _x_tap(xf, r + 3 < K, xt, h0, w0, c, i, j, H, W, HW, dh, dw)
            c, i, j = _next_row(c, i, j, kh, kw)
            o = int32(r * ncols + q)           # < (K + 4) * ncols < 2**31 (host check)
            if r < K:
                colf[uint32(o)] = v0
            if r + 1 < K:
                colf[uint32(o + ncols)] = v1
            if r + 2 < K:
                colf[uint32(o + 2 * ncols)] = v2
            if r + 3 < K:
                colf[uint32(o + 3 * ncols)] = v3
            r = int32(r + 4)
        g = int32(g + gstep)


@cuda.jit(device=True)
def _next_tap(o, jw, cw, wrap, nw):
    """Flat col offset of the next (oh, ow) tap of a dilation-1 gather: +cw along ow, +wrap at
    the end of a run of nw taps (next oh)."""
    o = int32(o + cw)
    jw = int32(jw + 1)
    if jw == nw:
        jw = int32(0)
        o = int32(o + wrap)
    return o, jw


@cuda.jit
def col2im_v2(colf, n0, C, H, W, kh, kw, ph, pw, sh, sw, dh, dw, OH, OW, ncols, total,
              mHW, sHW, mW, sW, mC, sC, msh, ssh, msw, ssw, mdh, sdh, mdw, sdw, dxf):
    """col2im, Caffe's gather: one thread per dx pixel (grid-stride over total = Nc*C*H*W, int32),
    summing the col entries of the output positions whose window covers it (no atomics)."""
    HW = int32(H * W)
    S = int32(OH * OW)
    exth = int32((kh - 1) * dh + 1)
    extw = int32((kw - 1) * dw + 1)
    dbase = int32(n0 * C * HW)
    idx = int32(int32(cuda.blockIdx.x) * C2I_THREADS + int32(cuda.threadIdx.x))
    step = int32(int32(cuda.gridDim.x) * C2I_THREADS)
    while idx < total:
        plane = udiv31(idx, mHW, sHW)          # (n - n0)*C + c
        p = int32(idx - plane * HW)
        n = udiv31(plane, mC, sC)
        c = int32(plane - n * C)
        h = udiv31(p, mW, sW)
        hp = int32(h + ph)
        wp = int32(p - h * W + pw)
        hs = int32(0)
        if hp >= exth:
            hs = int32(udiv31(int32(hp - exth), msh, ssh) + 1)
        he = min(int32(udiv31(hp, msh, ssh) + 1), OH)
        ws = int32(0)
        if wp >= extw:
            ws = int32(udiv31(int32(wp - extw), msw, ssw) + 1)
        we = min(int32(udiv31(wp, msw, ssw) + 1), OW)
        acc = float32(0.0)
        if dh == 1 and dw == 1:
            nh = int32(he - hs)
            nw = int32(we - ws)
            if nh > 0 and nw > 0:
                # tap (oh, ow) reads row ((c*kh + hp - oh*sh)*kw + wp - ow*sw), column n*S + oh*OW + ow:
                # linear in (oh, ow) -> +cw per ow, +ch per oh (wrap = ch - nw*cw after a run)
                cw = int32(1 - sw * ncols)
                ch = int32(OW - sh * kw * ncols)
                wrap = int32(ch - nw * cw)
                o = int32(((c * kh + hp - hs * sh) * kw + wp - ws * sw) * ncols + n * S + hs * OW + ws)
                T = int32(nh * nw)
                jw = int32(0)
                t = int32(0)
                while t + 4 <= T:
                    # four offsets, then four independent loads in flight, then the adds
                    o0 = o
                    o, jw = _next_tap(o, jw, cw, wrap, nw)
                    o1 = o
                    o, jw = _next_tap(o, jw, cw, wrap, nw)
                    o2 = o
                    o, jw = _next_tap(o, jw, cw, wrap, nw)
                    o3 = o
                    o, jw = _next_tap(o, jw, cw, wrap, nw)
                    a0 = colf[uint32(o0)]
                    a1 = colf[uint32(o1)]
                    a2 = colf[uint32(o2)]
                    a3 = colf[uint32(o3)]
                    acc += a0
                    acc += a1
                    acc += a2
                    acc += a3
                    t = int32(t + 4)
                while t < T:
                    acc += colf[uint32(o)]
                    o, jw = _next_tap(o, jw, cw, wrap, nw)
                    t = int32(t + 1)
        else:
            col0 = int32(n * S)
            oh = hs
            while oh < he:
                th = int32(hp - oh * sh)       # = i*dh for a tap
                i = udiv31(th, mdh, sdh)
                if i * dh == th:
                    rowi = int32((c * kh + i) * kw)
                    ow = ws
                    while ow < we:
                        tw = int32(wp - ow * sw)
                        j = udiv31(tw, mdw, sdw)
                        if j * dw == tw:
                            acc += colf[uint32((rowi + j) * ncols + col0 + oh * OW + ow)]
                        ow = int32(ow + 1)
                oh = int32(oh + 1)
        dxf[uint32(dbase + idx)] = acc
        idx = int32(idx + step)


@cuda.jit(device=True)
def _col_tap(colf, o, oh, ow, OH, OW):
    """col value at flat offset o when output position (oh, ow) exists, else 0 (predicated load)."""
    v = float32(0.0)
    if uint32(oh) < uint32(OH) and uint32(ow) < uint32(OW):
        v = colf[uint32(o)]
    return v


@cuda.jit(device=True)
def _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i):
    """Tap (i, j) -> (i, j+1), or (i+1, 0) at the end of a kernel row: output position
    (oh, ow) = (h+ph - i*dh, w+pw - j*dw) and its flat col offset o. j is the same in every thread
    (uniform branch)."""
    j = int32(j + 1)
    ow = int32(ow - dw)
    o = int32(o + step_j)
    if j == kw:
        j = int32(0)
        ow = wp
        oh = int32(oh - dh)
        o = int32(o + step_i)
    return o, oh, ow, j


@cuda.jit
def col2im_v3(colf, n0, C, H, W, kh, kw, ph, pw, dh, dw, OH, OW, ncols, total, mHW, sHW, mW, sW,
              mC, sC, dxf):
    """col2im for stride 1 (any dilation): one thread per dx pixel (grid-stride over Nc*C*H*W,
    int32), walking all kh*kw taps in the same order in every thread so each load of a warp reads
    consecutive col entries; taps whose output position (h+ph - i*dh, w+pw - j*dw) falls outside
    the output are masked (no stride test needed at stride 1)."""
    HW = int32(H * W)
    S = int32(OH * OW)
    T = int32(kh * kw)
    dbase = int32(n0 * C * HW)
    step_j = int32(ncols - dw)                 # j+1: next col row, output column ow - dw
    step_i = int32(kw * ncols - dh * OW - kw * step_j)   # back to j = 0, next kernel row
    idx = int32(int32(cuda.blockIdx.x) * C2I_THREADS + int32(cuda.threadIdx.x))
    step = int32(int32(cuda.gridDim.x) * C2I_THREADS)
    while idx < total:
        plane = udiv31(idx, mHW, sHW)          # (n - n0)*C + c
        p = int32(idx - plane * HW)
        n = udiv31(plane, mC, sC)
        c = int32(plane - n * C)
        h = udiv31(p, mW, sW)
        hp = int32(h + ph)
        wp = int32(p - h * W + pw)
        # tap (0, 0): row c*kh*kw, output position (hp, wp) (outside the output for edge pixels;
        # o is then only used after the steps bring it back in range)
        o = int32(c * T * ncols + n * S + hp * OW + wp)
        oh = hp
        ow = wp
        j = int32(0)
        acc = float32(0.0)
        t = int32(0)
        while t + 4 <= T:
            # four predicated loads in flight, then the adds
            a0 = _col_tap(colf, o, oh, ow, OH, OW)
            o, oh, ow, j = _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i)
            a1 = _col_tap(colf, o, oh, ow, OH, OW)
            o, oh, ow, j = _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i)
            a2 = _col_tap(colf, o, oh, ow, OH, OW)
            o, oh, ow, j = _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i)
            a3 = _col_tap(colf, o, oh, ow, OH, OW)
            o, oh, ow, j = _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i)
            acc += a0
            acc += a1
            acc += a2
            acc += a3
            t = int32(t + 4)
        while t < T:
            acc += _col_tap(colf, o, oh, ow, OH, OW)
            o, oh, ow, j = _next_tap_major(o, oh, ow, j, kw, wp, dh, dw, step_j, step_i)
            t = int32(t + 1)
        dxf[uint32(dbase + idx)] = acc
        idx = int32(idx + step)


_SIG = ("void(float32[:, :, :, ::1], int32, int32, int32, int32, int32, int32, int32, int32, int32, "
        "int32, int32, int32, float32[:, ::1])")
_SIG_BWD = ("void(float32[:, ::1], int32, int32, int32, int32, int32, int32, int32, int32, int32, "
            "int32, int32, int32, float32[:, :, :, ::1])")
_M = "uint32, int32"    # a magic_div pair
_SIG3 = (f"void(float32[::1], {', '.join(['int32'] * 17)}, {_M}, {_M}, {_M}, {_M}, float32[::1])")
_SIG_BWD2 = (f"void(float32[::1], {', '.join(['int32'] * 16)}, {_M}, {_M}, {_M}, {_M}, {_M}, {_M}, {_M}, "
             "float32[::1])")
_SIG_BWD3 = f"void(float32[::1], {', '.join(['int32'] * 14)}, {_M}, {_M}, {_M}, float32[::1])"

KERNELS: dict[str, tuple[Any, list[str]]] = {
    "im2col_v1": (im2col_v1, [_SIG]),
    "im2col_v2": (im2col_v2, [_SIG]),
    "im2col_v3": (im2col_v3, [_SIG3]),
    "col2im_v1": (col2im_v1, [_SIG_BWD]),
    "col2im_v2": (col2im_v2, [_SIG_BWD2]),
    "col2im_v3": (col2im_v3, [_SIG_BWD3]),
}


def _geometry(x_shape, n0, n1, kernel, pad, stride, dilation, out_hw, col_shape, who):
    N, C, H, W = x_shape
    kh, kw = kernel
    ph, pw = pad
    sh, sw = stride
    dh, dw = dilation
    OH, OW = out_hw
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{who}: bad kernel/stride/dilation/pad {kernel} {stride} {dilation} {pad}")
    if not (0 <= n0 < n1 <= N):
        raise ValueError(f"{who}: image range [{n0}, {n1}) outside the batch of {N}")
    if OH < 1 or OW < 1:
        raise ValueError(f"{who}: output size {OH}x{OW} is empty")
    want = (C * kh * kw, (n1 - n0) * OH * OW)
    if tuple(col_shape) != want:
        raise ValueError(f"{who}: col has shape {tuple(col_shape)}, expected {want}")


def _ints(*values):
    return [np.int32(v) for v in values]


def _fits_int32(C: int, H: int, W: int, N: int, kh: int, kw: int, ph: int, pw: int, sh: int, sw: int,
                OH: int, OW: int, ncols: int) -> bool:
    """True when every int32 intermediate of the int32 kernels stays below 2**31: flat x/dx
    offsets (a window corner up to (OH*sh, OW*sw) past an image's start), col offsets up to
    max(4, kw) rows past the end plus an out-of-range column, and col2im's per-tap offset steps."""
    K = C * kh * kw
    worst = max(N * C * H * W + OH * sh * W + OW * sw, (K + max(4, kw)) * ncols + (H + ph) * OW + W + pw,
                sh * kw * ncols + OW, sw * ncols + 1)
    return worst < INT32_LIMIT


def im2col(x, n0: int, n1: int, kernel_h: int, kernel_w: int, pad_h: int, pad_w: int,
           stride_h: int, stride_w: int, dil_h: int, dil_w: int, out_h: int, out_w: int, col) -> None:
    """Fill ``col`` (C*kh*kw, (n1-n0)*out_h*out_w) from images ``x[n0:n1]`` of ``x`` (N, C, H, W).

    Row ``c*kh*kw + i*kw + j``, column ``(n-n0)*out_h*out_w + oh*out_w + ow`` holds
    ``x[n, c, oh*stride_h - pad_h + i*dil_h, ow*stride_w - pad_w + j*dil_w]`` (0 in the padding).
    """
    x = as_device(x)
    col = as_device(col)
    _geometry(x.shape, n0, n1, (kernel_h, kernel_w), (pad_h, pad_w), (stride_h, stride_w),
              (dil_h, dil_w), (out_h, out_w), col.shape, "im2col")
    N, C, H, W = x.shape
    K, ncols = col.shape
    version = PROMOTED["im2col"]
    if version == "v3" and not (
            _fits_int32(C, H, W, N, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, out_h, out_w, ncols)
            and x.is_c_contiguous() and col.is_c_contiguous()):
        version = "v2"
    geo = _ints(n0, n1, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, out_h, out_w)
    if version == "v3":
        ngroups = -(-K // I2C_ROWS)
        grid = (-(-ncols // I2C_THREADS), min(ngroups, GRID_Y_MAX))
        im2col_v3[grid, I2C_THREADS](
            x.reshape(x.size), *_ints(n0, C, H, W), *geo[2:], *_ints(K, ncols, ngroups),
            *magic_div(out_h * out_w), *magic_div(out_w), *magic_div(kernel_h * kernel_w),
            *magic_div(kernel_w), col.reshape(col.size))
        return
    kernel = KERNELS[f"im2col_{version}"][0]
    total = K * ncols if version == "v1" else C * ncols
    blocks, threads = grid_1d(total)
    kernel[blocks, threads](x, *geo, col)


def col2im(col, n0: int, n1: int, kernel_h: int, kernel_w: int, pad_h: int, pad_w: int,
           stride_h: int, stride_w: int, dil_h: int, dil_w: int, out_h: int, out_w: int, dx) -> None:
    """Adjoint of ``im2col``: write (=) into ``dx[n0:n1]`` of ``dx`` (N, C, H, W) the sum, for each
    input pixel, of the ``col`` (C*kh*kw, (n1-n0)*out_h*out_w) entries im2col would have copied
    from it."""
    col = as_device(col)
    dx = as_device(dx)
    _geometry(dx.shape, n0, n1, (kernel_h, kernel_w), (pad_h, pad_w), (stride_h, stride_w),
              (dil_h, dil_w), (out_h, out_w), col.shape, "col2im")
    N, C, H, W = dx.shape
    ncols = col.shape[1]
    fits = (_fits_int32(C, H, W, N, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, out_h, out_w, ncols)
            and col.is_c_contiguous() and dx.is_c_contiguous())
    version = PROMOTED["col2im"]
    if version == "v3" and not (fits and stride_h == 1 and stride_w == 1):
        version = "v2"
    if version == "v2" and not fits:
        version = "v1"
    geo = _ints(n0, n1, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, out_h, out_w)
    total = (n1 - n0) * C * H * W
    if version == "v1":
        blocks, threads = grid_1d(total)
        col2im_v1[blocks, threads](col, *geo, dx)
        return
    blocks, threads = grid_1d(total, C2I_THREADS)
    common = (*_ints(n0, C, H, W, kernel_h, kernel_w, pad_h, pad_w),)
    if version == "v3":
        col2im_v3[blocks, threads](
            col.reshape(col.size), *common, *_ints(dil_h, dil_w, out_h, out_w, ncols, total),
            *magic_div(H * W), *magic_div(W), *magic_div(C), dx.reshape(dx.size))
    else:
        col2im_v2[blocks, threads](
            col.reshape(col.size), *common, *geo[6:], *_ints(ncols, total),
            *magic_div(H * W), *magic_div(W), *magic_div(C), *magic_div(stride_h), *magic_div(stride_w),
            *magic_div(dil_h), *magic_div(dil_w), dx.reshape(dx.size))
