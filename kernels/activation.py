"""Elementwise activation layers, forward and backward, with Caffe's formulas to the letter.

Math (x: bottom data, y: top data, dy: top diff, dx: bottom diff; every array float32 with the same
number of elements, any shape, flattened in C order; bottom diffs are written with ``=``):

    ReLU     y = x > 0 ? x : x*negative_slope        dx = dy*((x > 0) + negative_slope*(x <= 0))
    Sigmoid  y = 0.5*tanh(0.5*x) + 0.5               dx = dy*y*(1 - y)
    TanH     y = tanh(x)                             dx = dy*(1 - y*y)
    Power    y = (shift + scale*x)^power             dx = dy*dy/dx as Caffe's PowerLayer:
               diff_scale = power*scale;
               diff_scale == 0 (scale or power 0):   y = power == 0 ? 1 : shift^power, dx = 0
               power == 1:                           dx = dy*diff_scale
               power == 2:                           dx = dy*(diff_scale*scale*x + diff_scale*shift)
               shift == 0:                           dx = dy*power*y/x      (NaN/inf at x == 0, as Caffe)
               otherwise:                            dx = dy*diff_scale*y/(shift + scale*x)  (NaN where 0)
             the forward skips the multiply when scale == 1, the add when shift == 0 and the pow
             when power == 1 (so -0.0 keeps its sign, as in Caffe)
    Exp      y = base^(shift + scale*x) = outer*exp(inner*x), base == -1 means e;
             inner = ln(base)*scale, outer = shift == 0 ? 1 : base^shift
                                                     dx = dy*y*inner
    Log      y = log_base(shift + scale*x) = ln(shift + scale*x) / ln(base), base == -1 means e
                                                     dx = dy*(scale/ln(base)) / (shift + scale*x)
    AbsVal   y = |x|                                 dx = dy*sign(x)   (sign(0) = 0)
    BNLL     y = x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))   (log1p, no overflow for any x)
                                                     dx = dy*e/(e + 1), e = exp(min(x, 50))
    ELU      y = x > 0 ? x : alpha*(exp(x) - 1)      dx = dy*((x > 0) + (alpha + y)*(x <= 0))
    Clip     y = max(lo, min(x, hi)) with std::min/max's comparisons (a NaN x gives lo)
                                                     dx = dy*(lo <= x <= hi)
    Threshold  y = x > t ? 1 : 0                     (no backward: Caffe's is NOT_IMPLEMENTED)
    Swish    s = 0.5*tanh(0.5*beta*x) + 0.5 (kept),  y = x*s
                                                     dx = dy*(beta*y + s*(1 - beta*y))
    PReLU    x viewed as (N, C, S) (C channels, S = count(2)); a = slope[c], slope[0] when shared:
             y = max(x, 0) + a*min(x, 0)             dx = dy*((x > 0) + a*(x <= 0))
             dslope[c] += sum over (n, s) of dy*x*(x <= 0)   (over every element when shared)

Host-computed constants (Exp's inner/outer, Log's 1/ln(base), Power's diff_scale) are rounded to
float32 before the launch, as Caffe stores them in Dtype. Every elementwise kernel may run in place
(y is x, dx is dy) since each thread reads its element before writing it (Swish's s must not alias
x or y). The PReLU slope gradient is the one parameter gradient here: it accumulates (``+=``), and
``prelu_bwd`` computes it before dx, so dx may be dy.

Versions (``PROMOTED`` names the one each public function launches: v3 for ReLU, v2 for the others;
``kernels._elementwise.runnable`` gives the fallback: v3 needs 16-byte aligned arrays, v2 and v3
fewer than 2**31 elements):
    v1  one thread per element in a grid-stride loop (memory bound: one read or two, one write per
        element; nothing to tile); int64 index arithmetic.
    v2  the same per-element expressions (bit-identical results) in the ``kernels._elementwise``
        v2 templates: uint32 indices and the grid stride unrolled by 4 (4 elements' loads -- 8 or
        12 for the backward kernels' two or three inputs -- issued before any use).
    v3  ReLU only: the v3 templates, 128-bit loads and stores (two groups of four elements per
        thread per step).
Clip, Threshold, Swish and PReLU have v1 only (no ``PROMOTED`` entry). ``prelu_slope_grad_v1``
runs one block per channel (one block when shared): each thread walks its strided share of the
channel (``kernels._block.walk_start``), ``kernels._block.block_sum`` adds the partials and
thread 0 adds the sum to dslope.

Launch geometry: 1-D grid, ACT_THREADS per block; v1 ``kernels._launch.grid_1d(n, ACT_THREADS)``,
v2/v3 ``kernels._elementwise.configured_v2``/``configured_v3``; cached per n. The slope gradient:
C (or 1) blocks of ``kernels._block.BLOCK_THREADS``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32, int64, uint32, void

from kernels import _elementwise as ew
from kernels._block import BLOCK_THREADS, block_sum, walk_next, walk_start
from kernels._launch import LAUNCH_THREADS, as_device, grid_1d

ACT_THREADS = LAUNCH_THREADS     # threads per block for every elementwise kernel
BNLL_THRESHOLD = float32(50.0)   # Caffe's kBNLL_THRESHOLD: exp is clamped there in the backward

_ZERO = float32(0.0)
_ONE = float32(1.0)
_HALF = float32(0.5)


# --------------------------------------------------------------------------------------------- kernels

@cuda.jit
def relu_fwd_v1(x, y, negative_slope):
    """y = x if x > 0 else negative_slope * x; one thread per element, grid-stride."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > _ZERO else v * negative_slope


@cuda.jit
def relu_bwd_v1(dy, x, dx, negative_slope):
    """dx = dy * (x > 0) + negative_slope * dy * (x <= 0) (bottom data, Caffe's rule)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * (float32(v > _ZERO) + negative_slope * float32(v <= _ZERO))


@cuda.jit
def sigmoid_fwd_v1(x, y):
    """y = 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 x) + 0.5 (Caffe's form, no overflow)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = _HALF * math.tanh(_HALF * x[i]) + _HALF


@cuda.jit
def sigmoid_bwd_v1(dy, y, dx):
    """dx = dy * y * (1 - y), from the top data."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        s = y[i]
        dx[i] = dy[i] * s * (_ONE - s)


@cuda.jit
def tanh_fwd_v1(x, y):
    """y = tanh(x)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = math.tanh(x[i])


@cuda.jit
def tanh_bwd_v1(dy, y, dx):
    """dx = dy * (1 - y^2), from the top data."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        t = y[i]
        dx[i] = dy[i] * (_ONE - t * t)


@cuda.jit
def power_fwd_v1(x, y, power, scale, shift):
    """y = (shift + scale*x)^power, skipping the identity steps as Caffe does (diff_scale != 0)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if scale != _ONE:
            v = v * scale
        if shift != _ZERO:
            v = v + shift
        if power != _ONE:
            v = math.pow(v, power)
        y[i] = v


@cuda.jit
def power_fill_fwd_v1(y, value):
    """diff_scale == 0 (scale or power is 0): y ignores x, y = power == 0 ? 1 : shift^power."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = value


@cuda.jit
def power_bwd_v1(dy, x, y, dx, power, scale, shift):
    """dx = dy * power*scale*(shift + scale*x)^(power-1), in Caffe's special-cased forms."""
    diff_scale = power * scale
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        if diff_scale == _ZERO or power == _ONE:
            d = diff_scale
        elif power == float32(2.0):
            d = diff_scale * scale * x[i]
            if shift != _ZERO:
                d = d + diff_scale * shift
        elif shift == _ZERO:
            d = y[i] / x[i] * power
        else:
            base = x[i]
            if scale != _ONE:
                base = base * scale
            if shift != _ZERO:
                base = base + shift
            d = y[i] / base
            if diff_scale != _ONE:
                d = d * diff_scale
        dx[i] = dy[i] * d


@cuda.jit
def exp_fwd_v1(x, y, inner_scale, outer_scale):
    """y = outer_scale * exp(inner_scale * x) (base^(shift + scale x) with the constants folded)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if inner_scale != _ONE:
            v = v * inner_scale
        v = math.exp(v)
        if outer_scale != _ONE:
            v = v * outer_scale
        y[i] = v


@cuda.jit
def exp_bwd_v1(dy, y, dx, inner_scale):
    """dx = dy * y * inner_scale."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        d = y[i] * dy[i]
        if inner_scale != _ONE:
            d = d * inner_scale
        dx[i] = d


@cuda.jit
def log_fwd_v1(x, y, scale, shift, base_scale):
    """y = log(shift + scale x) * base_scale (log base b via 1/ln b)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if scale != _ONE:
            v = v * scale
        if shift != _ZERO:
            v = v + shift
        v = math.log(v)
        if base_scale != _ONE:
            v = v * base_scale
        y[i] = v


@cuda.jit
def log_bwd_v1(dy, x, dx, scale, shift, backward_num_scale):
    """dx = dy * backward_num_scale / (shift + scale x)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if scale != _ONE:
            v = v * scale
        if shift != _ZERO:
            v = v + shift
        d = _ONE / v
        if backward_num_scale != _ONE:
            d = d * backward_num_scale
        dx[i] = dy[i] * d


@cuda.jit
def absval_fwd_v1(x, y):
    """y = |x|."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = abs(x[i])


@cuda.jit
def absval_bwd_v1(dy, x, dx):
    """dx = dy * sign(x)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * (float32(_ZERO < v) - float32(v < _ZERO))


@cuda.jit
def bnll_fwd_v1(x, y):
    """y = log(1 + exp(x)), stable: x + log1p(exp(-x)) for x > 0, log1p(exp(x)) otherwise."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > _ZERO:
            y[i] = v + math.log1p(math.exp(-v))
        else:
            y[i] = math.log1p(math.exp(v))


@cuda.jit
def bnll_bwd_v1(dy, x, dx):
    """dx = dy * sigmoid(x), with exp clamped at Caffe's threshold 50."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        e = math.exp(min(x[i], BNLL_THRESHOLD))
        dx[i] = dy[i] * e / (e + _ONE)


@cuda.jit
def elu_fwd_v1(x, y, alpha):
    """y = x if x > 0 else alpha * (exp(x) - 1)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > _ZERO else alpha * (math.exp(v) - _ONE)


@cuda.jit
def elu_bwd_v1(dy, x, y, dx, alpha):
    """dx = dy if x > 0 else dy * (y + alpha)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * (float32(v > _ZERO) + (alpha + y[i]) * float32(v <= _ZERO))


@cuda.jit
def clip_fwd_v1(x, y, lo, hi):
    """y = max(lo, min(x, hi)) with C++'s std::min/std::max comparisons (NaN -> lo)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        v = hi if hi < v else v
        y[i] = v if lo < v else lo


@cuda.jit
def clip_bwd_v1(x, dy, dx, lo, hi):
    """dx = dy where lo <= x <= hi, else 0 (x: the bottom data before the forward)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * float32(v >= lo and v <= hi)


@cuda.jit
def threshold_fwd_v1(x, y, t):
    """y = 1 if x > t else 0."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = _ONE if x[i] > t else _ZERO


@cuda.jit
def swish_fwd_v1(x, y, s, beta):
    """s = 0.5*tanh(0.5*beta*x) + 0.5 (kept for the backward), y = x * s."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        sg = _HALF * math.tanh(_HALF * (beta * v)) + _HALF
        s[i] = sg
        y[i] = v * sg


@cuda.jit
def swish_bwd_v1(y, s, dy, dx, beta):
    """dx = dy * (beta*y + s*(1 - beta*y)) from the top data y and the kept sigmoid s."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        by = beta * y[i]
        dx[i] = dy[i] * (by + s[i] * (_ONE - by))


@cuda.jit
def prelu_fwd_v1(x, slope, y, channels, dim, shared):
    """y = max(x, 0) + slope[c]*min(x, 0), c = (i // dim) % channels (0 when shared)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = 0 if shared != 0 else (i // dim) % channels
        v = x[i]
        y[i] = max(v, _ZERO) + slope[c] * min(v, _ZERO)


@cuda.jit
def prelu_bwd_v1(x, slope, dy, dx, channels, dim, shared):
    """dx = dy * ((x > 0) + slope[c]*(x <= 0))."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = 0 if shared != 0 else (i // dim) % channels
        v = x[i]
        dx[i] = dy[i] * (float32(v > _ZERO) + slope[c] * float32(v <= _ZERO))


@cuda.jit
def prelu_slope_grad_v1(x, dy, dslope, channels, dim, shared):
    """Block c: dslope[c] += sum over channel c's (n, s) of dy * x * (x <= 0) (block 0 over every
    element when shared)."""
    partial = cuda.shared.array(BLOCK_THREADS, float32)
    tid = cuda.threadIdx.x
    c = cuda.blockIdx.x
    acc = _ZERO
    if shared != 0:
        for i in range(tid, x.size, BLOCK_THREADS):
            v = x[i]
            acc += dy[i] * v * float32(v <= _ZERO)
    else:
        n, s, n_step, s_step = walk_start(tid, BLOCK_THREADS, dim)
        for _ in range(tid, (x.size // (channels * dim)) * dim, BLOCK_THREADS):
            i = (n * channels + c) * dim + s
            v = x[i]
            acc += dy[i] * v * float32(v <= _ZERO)
            n, s = walk_next(n, s, n_step, s_step, dim)
    partial[tid] = acc
    total = block_sum(partial, tid)
    if tid == 0:
        dslope[c] += total


# --------------------------------------------------------------------------------- v2 (templates)
# Each op is the v1 kernel's per-element expression, verbatim, as an inline device function
# (a, [b, [c,]] p0, p1, p2); the templates in kernels._elementwise add the loop.

@cuda.jit(device=True, inline=True)
def _relu(v, negative_slope, p1, p2):
    return v if v > _ZERO else v * negative_slope


@cuda.jit(device=True, inline=True)
def _relu_grad(g, v, negative_slope, p1, p2):
    return g * (float32(v > _ZERO) + negative_slope * float32(v <= _ZERO))


@cuda.jit(device=True, inline=True)
def _sigmoid(v, p0, p1, p2):
    return _HALF * math.tanh(_HALF * v) + _HALF


@cuda.jit(device=True, inline=True)
def _sigmoid_grad(g, s, p0, p1, p2):
    return g * s * (_ONE - s)


@cuda.jit(device=True, inline=True)
def _tanh(v, p0, p1, p2):
    return math.tanh(v)


@cuda.jit(device=True, inline=True)
def _tanh_grad(g, t, p0, p1, p2):
    return g * (_ONE - t * t)


@cuda.jit(device=True, inline=True)
def _power(v, power, scale, shift):
    if scale != _ONE:
        v = v * scale
    if shift != _ZERO:
        v = v + shift
    if power != _ONE:
        v = math.pow(v, power)
    return v


@cuda.jit(device=True, inline=True)
def _power_grad(g, xv, yv, power, scale, shift):
    diff_scale = power * scale
    if diff_scale == _ZERO or power == _ONE:
        d = diff_scale
    elif power == float32(2.0):
        d = diff_scale * scale * xv
        if shift != _ZERO:
            d = d + diff_scale * shift
    elif shift == _ZERO:
        d = yv / xv * power
    else:
        base = xv
        if scale != _ONE:
            base = base * scale
        if shift != _ZERO:
            base = base + shift
        d = yv / base
        if diff_scale != _ONE:
            d = d * diff_scale
    return g * d


@cuda.jit(device=True, inline=True)
def _exp(v, inner_scale, outer_scale, p2):
    if inner_scale != _ONE:
        v = v * inner_scale
    v = math.exp(v)
    if outer_scale != _ONE:
        v = v * outer_scale
    return v


@cuda.jit(device=True, inline=True)
def _exp_grad(g, yv, inner_scale, p1, p2):
    d = yv * g
    if inner_scale != _ONE:
        d = d * inner_scale
    return d


@cuda.jit(device=True, inline=True)
def _log(v, scale, shift, base_scale):
    if scale != _ONE:
        v = v * scale
    if shift != _ZERO:
        v = v + shift
    v = math.log(v)
    if base_scale != _ONE:
        v = v * base_scale
    return v


@cuda.jit(device=True, inline=True)
def _log_grad(g, v, scale, shift, backward_num_scale):
    if scale != _ONE:
        v = v * scale
    if shift != _ZERO:
        v = v + shift
    d = _ONE / v
    if backward_num_scale != _ONE:
        d = d * backward_num_scale
    return g * d


@cuda.jit(device=True, inline=True)
def _absval(v, p0, p1, p2):
    return abs(v)


@cuda.jit(device=True, inline=True)
def _absval_grad(g, v, p0, p1, p2):
    return g * (float32(_ZERO < v) - float32(v < _ZERO))


@cuda.jit(device=True, inline=True)
def _bnll(v, p0, p1, p2):
    if v > _ZERO:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


@cuda.jit(device=True, inline=True)
def _bnll_grad(g, v, p0, p1, p2):
    e = math.exp(min(v, BNLL_THRESHOLD))
    return g * e / (e + _ONE)


@cuda.jit(device=True, inline=True)
def _elu(v, alpha, p1, p2):
    return v if v > _ZERO else alpha * (math.exp(v) - _ONE)


@cuda.jit(device=True, inline=True)
def _elu_grad(g, v, yv, alpha, p1, p2):
    return g * (float32(v > _ZERO) + (alpha + yv) * float32(v <= _ZERO))


relu_fwd_v2 = ew.map1_v2(_relu, "y = x > 0 ? x : negative_slope*x (p0); uint32, unrolled by 4.")
relu_bwd_v2 = ew.map2_v2(_relu_grad, "dx = dy*((x > 0) + negative_slope*(x <= 0)) (a = dy, b = x).")
relu_fwd_v3 = ew.map1_v3(_relu, "y = x > 0 ? x : negative_slope*x (p0); 128-bit loads and stores.")
relu_bwd_v3 = ew.map2_v3(_relu_grad, "dx = dy*((x > 0) + negative_slope*(x <= 0)); 128-bit accesses.")
sigmoid_fwd_v2 = ew.map1_v2(_sigmoid, "y = 0.5*tanh(0.5*x) + 0.5; uint32, unrolled by 4.")
sigmoid_bwd_v2 = ew.map2_v2(_sigmoid_grad, "dx = dy*y*(1 - y) (a = dy, b = y).")
tanh_fwd_v2 = ew.map1_v2(_tanh, "y = tanh(x); uint32, unrolled by 4.")
tanh_bwd_v2 = ew.map2_v2(_tanh_grad, "dx = dy*(1 - y^2) (a = dy, b = y).")
power_fwd_v2 = ew.map1_v2(_power, "y = (shift + scale*x)^power (p0 power, p1 scale, p2 shift).")
power_bwd_v2 = ew.map3_v2(_power_grad, "dx = dy*power*scale*(shift + scale*x)^(power-1), Caffe's forms "
                       "(a = dy, b = x, c = y).")
exp_fwd_v2 = ew.map1_v2(_exp, "y = outer*exp(inner*x) (p0 inner, p1 outer).")
exp_bwd_v2 = ew.map2_v2(_exp_grad, "dx = dy*y*inner (a = dy, b = y, p0 inner).")
log_fwd_v2 = ew.map1_v2(_log, "y = log(shift + scale*x)*base_scale (p0 scale, p1 shift, p2 base_scale).")
log_bwd_v2 = ew.map2_v2(_log_grad, "dx = dy*num_scale/(shift + scale*x) (a = dy, b = x).")
absval_fwd_v2 = ew.map1_v2(_absval, "y = |x|; uint32, unrolled by 4.")
absval_bwd_v2 = ew.map2_v2(_absval_grad, "dx = dy*sign(x) (a = dy, b = x).")
bnll_fwd_v2 = ew.map1_v2(_bnll, "y = log(1 + exp(x)), Caffe's stable form.")
bnll_bwd_v2 = ew.map2_v2(_bnll_grad, "dx = dy*e/(e + 1), e = exp(min(x, 50)) (a = dy, b = x).")
elu_fwd_v2 = ew.map1_v2(_elu, "y = x > 0 ? x : alpha*(exp(x) - 1) (p0 alpha).")
elu_bwd_v2 = ew.map3_v2(_elu_grad, "dx = dy*((x > 0) + (alpha + y)*(x <= 0)) (a = dy, b = x, c = y).")


_F = float32[::1]
_S = float32

KERNELS: dict[str, tuple[Any, list]] = {
    "relu_fwd_v1": (relu_fwd_v1, [void(_F, _F, _S)]),
    "relu_bwd_v1": (relu_bwd_v1, [void(_F, _F, _F, _S)]),
    "sigmoid_fwd_v1": (sigmoid_fwd_v1, [void(_F, _F)]),
    "sigmoid_bwd_v1": (sigmoid_bwd_v1, [void(_F, _F, _F)]),
    "tanh_fwd_v1": (tanh_fwd_v1, [void(_F, _F)]),
    "tanh_bwd_v1": (tanh_bwd_v1, [void(_F, _F, _F)]),
    "power_fwd_v1": (power_fwd_v1, [void(_F, _F, _S, _S, _S)]),
    "power_fill_fwd_v1": (power_fill_fwd_v1, [void(_F, _S)]),
    "power_bwd_v1": (power_bwd_v1, [void(_F, _F, _F, _F, _S, _S, _S)]),
    "exp_fwd_v1": (exp_fwd_v1, [void(_F, _F, _S, _S)]),
    "exp_bwd_v1": (exp_bwd_v1, [void(_F, _F, _F, _S)]),
    "log_fwd_v1": (log_fwd_v1, [void(_F, _F, _S, _S, _S)]),
    "log_bwd_v1": (log_bwd_v1, [void(_F, _F, _F, _S, _S, _S)]),
    "absval_fwd_v1": (absval_fwd_v1, [void(_F, _F)]),
    "absval_bwd_v1": (absval_bwd_v1, [void(_F, _F, _F)]),
    "bnll_fwd_v1": (bnll_fwd_v1, [void(_F, _F)]),
    "bnll_bwd_v1": (bnll_bwd_v1, [void(_F, _F, _F)]),
    "elu_fwd_v1": (elu_fwd_v1, [void(_F, _F, _S)]),
    "elu_bwd_v1": (elu_bwd_v1, [void(_F, _F, _F, _F, _S)]),
    "clip_fwd_v1": (clip_fwd_v1, [void(_F, _F, _S, _S)]),
    "clip_bwd_v1": (clip_bwd_v1, [void(_F, _F, _F, _S, _S)]),
    "threshold_fwd_v1": (threshold_fwd_v1, [void(_F, _F, _S)]),
    "swish_fwd_v1": (swish_fwd_v1, [void(_F, _F, _F, _S)]),
    "swish_bwd_v1": (swish_bwd_v1, [void(_F, _F, _F, _F, _S)]),
    "prelu_fwd_v1": (prelu_fwd_v1, [void(_F, _F, _F, int64, int64, int64)]),
    "prelu_bwd_v1": (prelu_bwd_v1, [void(_F, _F, _F, _F, int64, int64, int64)]),
    "prelu_slope_grad_v1": (prelu_slope_grad_v1, [void(_F, _F, _F, int64, int64, int64)]),
}
_U = uint32
_SIG1 = void(_F, _F, _U, _S, _S, _S)
_SIG2 = void(_F, _F, _F, _U, _S, _S, _S)
_SIG3 = void(_F, _F, _F, _F, _U, _S, _S, _S)
for _name, _k, _sig in (
        ("relu_fwd_v2", relu_fwd_v2, _SIG1), ("relu_bwd_v2", relu_bwd_v2, _SIG2),
        ("relu_fwd_v3", relu_fwd_v3, _SIG1), ("relu_bwd_v3", relu_bwd_v3, _SIG2),
        ("sigmoid_fwd_v2", sigmoid_fwd_v2, _SIG1), ("sigmoid_bwd_v2", sigmoid_bwd_v2, _SIG2),
        ("tanh_fwd_v2", tanh_fwd_v2, _SIG1), ("tanh_bwd_v2", tanh_bwd_v2, _SIG2),
        ("power_fwd_v2", power_fwd_v2, _SIG1), ("power_bwd_v2", power_bwd_v2, _SIG3),
        ("exp_fwd_v2", exp_fwd_v2, _SIG1), ("exp_bwd_v2", exp_bwd_v2, _SIG2),
        ("log_fwd_v2", log_fwd_v2, _SIG1), ("log_bwd_v2", log_bwd_v2, _SIG2),
        ("absval_fwd_v2", absval_fwd_v2, _SIG1), ("absval_bwd_v2", absval_bwd_v2, _SIG2),
        ("bnll_fwd_v2", bnll_fwd_v2, _SIG1), ("bnll_bwd_v2", bnll_bwd_v2, _SIG2),
        ("elu_fwd_v2", elu_fwd_v2, _SIG1), ("elu_bwd_v2", elu_bwd_v2, _SIG3)):
    KERNELS[_name] = (_k, [_sig])

PROMOTED: dict[str, str] = {
    op: ("v3" if op.startswith("relu") else "v2")
    for op in (f"{name}_{d}" for name in ("relu", "sigmoid", "tanh", "power", "exp", "log", "absval",
                                            "bnll", "elu") for d in ("fwd", "bwd"))}


# ------------------------------------------------------------------------------------- public API

def _flat(*arrays: Any) -> list:
    """Device views (1-D) of same-sized float32 arrays."""
    out = [as_device(a) for a in arrays]
    n = out[0].size
    for a in out:
        if a.dtype != np.float32:
            raise TypeError(f"activation kernels take float32 arrays, got {a.dtype}")
        if a.size != n:
            raise ValueError(f"activation arrays differ in size: {[b.shape for b in out]}")
    return [a.reshape(n) for a in out]


def _launch(op: str, arrays: list, *scalars) -> None:
    """Launch ``op``'s promoted version (v1 for an op without a ``PROMOTED`` entry; where the
    promoted one does not apply, the one ``runnable`` falls back to): v1 takes (arrays, scalars),
    the templates (arrays, n, three float32 parameters: the scalars padded)."""
    n = arrays[0].size
    if n == 0:
        return
    version = ew.runnable(PROMOTED.get(op, "v1"), n, *arrays)
    kernel = KERNELS[f"{op}_{version}"][0]
    if version == "v1":
        blocks, threads = grid_1d(n, ACT_THREADS)
        kernel[blocks, threads](*arrays, *scalars)
        return
    params = (*scalars, np.float32(0), np.float32(0), np.float32(0))[:3]
    launch = ew.configured_v3 if version == "v3" else ew.configured_v2
    launch(kernel, n, ACT_THREADS)(*arrays, np.uint32(n), *params)


def relu_fwd(x: Any, y: Any, negative_slope: float = 0.0) -> None:
    """ReLU: y = x > 0 ? x : negative_slope*x (y may be x)."""
    _launch("relu_fwd", _flat(x, y), np.float32(negative_slope))


def relu_bwd(dy: Any, x: Any, dx: Any, negative_slope: float = 0.0) -> None:
    """ReLU backward from the bottom data x: dx = dy*((x > 0) + negative_slope*(x <= 0))."""
    _launch("relu_bwd", _flat(dy, x, dx), np.float32(negative_slope))


def sigmoid_fwd(x: Any, y: Any) -> None:
    """Sigmoid in Caffe's tanh form: y = 0.5*tanh(0.5*x) + 0.5."""
    _launch("sigmoid_fwd", _flat(x, y))


def sigmoid_bwd(dy: Any, y: Any, dx: Any) -> None:
    """Sigmoid backward from the top data y: dx = dy*y*(1 - y)."""
    _launch("sigmoid_bwd", _flat(dy, y, dx))


def tanh_fwd(x: Any, y: Any) -> None:
    """y = tanh(x)."""
    _launch("tanh_fwd", _flat(x, y))


def tanh_bwd(dy: Any, y: Any, dx: Any) -> None:
    """TanH backward from the top data y: dx = dy*(1 - y^2)."""
    _launch("tanh_bwd", _flat(dy, y, dx))


def power_fwd(x: Any, y: Any, power: float = 1.0, scale: float = 1.0, shift: float = 0.0) -> None:
    """Power: y = (shift + scale*x)^power (Caffe's PowerLayer: if power*scale == 0 every y is
    power == 0 ? 1 : shift^power)."""
    p, a, b = np.float32(power), np.float32(scale), np.float32(shift)
    if p * a == 0:
        value = np.float32(1) if p == 0 else np.float32(np.power(b, p))
        (yf,) = _flat(y)
        if yf.size:     # every version: y does not depend on x
            blocks, threads = grid_1d(yf.size, ACT_THREADS)
            power_fill_fwd_v1[blocks, threads](yf, value)
        return
    _launch("power_fwd", _flat(x, y), p, a, b)


def power_bwd(dy: Any, x: Any, y: Any, dx: Any, power: float = 1.0, scale: float = 1.0,
              shift: float = 0.0) -> None:
    """Power backward: dx = dy*power*scale*(shift + scale*x)^(power-1), computed as Caffe does
    (from y and x; see the module docstring for the special cases)."""
    _launch("power_bwd", _flat(dy, x, y, dx), np.float32(power), np.float32(scale),
            np.float32(shift))


def _log_of_base(base: float, layer: str) -> np.float32:
    """ln(base) as Caffe's Exp/Log layers take it: base == -1 means e (ln = 1 exactly); other
    bases must be positive."""
    if base == -1:
        return np.float32(1)
    if not base > 0:
        raise ValueError(f"{layer}: base must be -1 (meaning e) or > 0, got {base}")
    return np.float32(np.log(np.float32(base)))


def exp_scales(base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> tuple[float, float]:
    """(inner_scale, outer_scale) with base^(shift + scale*x) = outer*exp(inner*x), in float32 as
    Caffe's ExpLayer::LayerSetUp computes them."""
    log_base = _log_of_base(base, "Exp")
    inner = np.float32(log_base * np.float32(scale))
    if shift == 0:
        outer = np.float32(1)
    elif base == -1:
        outer = np.float32(np.exp(np.float32(shift)))
    else:
        outer = np.float32(np.power(np.float32(base), np.float32(shift)))
    return float(inner), float(outer)


def exp_fwd(x: Any, y: Any, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> None:
    """Exp: y = base^(shift + scale*x) (base == -1: e), as outer*exp(inner*x)."""
    inner, outer = exp_scales(base, scale, shift)
    _launch("exp_fwd", _flat(x, y), np.float32(inner), np.float32(outer))


def exp_bwd(dy: Any, y: Any, dx: Any, base: float = -1.0, scale: float = 1.0,
            shift: float = 0.0) -> None:
    """Exp backward from the top data y: dx = dy*y*ln(base)*scale."""
    inner, _ = exp_scales(base, scale, shift)
    _launch("exp_bwd", _flat(dy, y, dx), np.float32(inner))


def log_scales(base: float = -1.0, scale: float = 1.0) -> tuple[float, float]:
    """(base_scale, backward_num_scale) = (1/ln(base), scale/ln(base)) in float32 (Caffe's
    LogLayer); base == 1 is refused (1/ln(1) is infinite, Caffe CHECK-fails)."""
    log_base = _log_of_base(base, "Log")
    if log_base == 0 or not np.isfinite(log_base):
        raise ValueError(f"Log: base {base} gives ln(base) = {log_base}; 1/ln(base) must be finite")
    return float(np.float32(1) / log_base), float(np.float32(scale) / log_base)


def log_fwd(x: Any, y: Any, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> None:
    """Log: y = log_base(shift + scale*x) (base == -1: natural log)."""
    base_scale, _ = log_scales(base, scale)
    _launch("log_fwd", _flat(x, y), np.float32(scale), np.float32(shift), np.float32(base_scale))


def log_bwd(dy: Any, x: Any, dx: Any, base: float = -1.0, scale: float = 1.0,
            shift: float = 0.0) -> None:
    """Log backward from the bottom data x: dx = dy*(scale/ln(base)) / (shift + scale*x)."""
    _, num_scale = log_scales(base, scale)
    _launch("log_bwd", _flat(dy, x, dx), np.float32(scale), np.float32(shift), np.float32(num_scale))


def absval_fwd(x: Any, y: Any) -> None:
    """y = |x|."""
    _launch("absval_fwd", _flat(x, y))


def absval_bwd(dy: Any, x: Any, dx: Any) -> None:
    """AbsVal backward: dx = dy*sign(x) with sign(0) = 0."""
    _launch("absval_bwd", _flat(dy, x, dx))


def bnll_fwd(x: Any, y: Any) -> None:
    """BNLL: y = log(1 + exp(x)) in Caffe's stable form (x + log(1 + exp(-x)) for x > 0)."""
    _launch("bnll_fwd", _flat(x, y))


def bnll_bwd(dy: Any, x: Any, dx: Any) -> None:
    """BNLL backward: dx = dy*e/(e + 1), e = exp(min(x, 50))."""
    _launch("bnll_bwd", _flat(dy, x, dx))


def elu_fwd(x: Any, y: Any, alpha: float = 1.0) -> None:
    """ELU: y = x > 0 ? x : alpha*(exp(x) - 1)."""
    _launch("elu_fwd", _flat(x, y), np.float32(alpha))


def elu_bwd(dy: Any, x: Any, y: Any, dx: Any, alpha: float = 1.0) -> None:
    """ELU backward from bottom x and top y: dx = dy*((x > 0) + (alpha + y)*(x <= 0))."""
    _launch("elu_bwd", _flat(dy, x, y, dx), np.float32(alpha))


def clip_fwd(x: Any, y: Any, lo: float, hi: float) -> None:
    """Clip: y = max(lo, min(x, hi)) (y may be x)."""
    _launch("clip_fwd", _flat(x, y), np.float32(lo), np.float32(hi))


def clip_bwd(x: Any, dy: Any, dx: Any, lo: float, hi: float) -> None:
    """Clip backward: dx = dy * (lo <= x <= hi) (dx may be dy)."""
    _launch("clip_bwd", _flat(x, dy, dx), np.float32(lo), np.float32(hi))


def threshold_fwd(x: Any, y: Any, threshold: float) -> None:
    """Threshold: y = x > threshold ? 1 : 0 (y may be x)."""
    _launch("threshold_fwd", _flat(x, y), np.float32(threshold))


def swish_fwd(x: Any, y: Any, s: Any, beta: float) -> None:
    """Swish: s = sigmoid(beta*x) (kept), y = x*s (y may be x; s must not alias either)."""
    _launch("swish_fwd", _flat(x, y, s), np.float32(beta))


def swish_bwd(y: Any, s: Any, dy: Any, dx: Any, beta: float) -> None:
    """Swish backward from the top data y and kept s: dx = dy*(beta*y + s*(1 - beta*y))."""
    _launch("swish_bwd", _flat(y, s, dy, dx), np.float32(beta))


def _prelu_slope(x: Any, slope: Any, channels: int, dim: int, shared: bool) -> Any:
    """The slope's flat view after checking x (N*channels*dim values) and the slope (1 or C)."""
    if x.size and x.size % (channels * dim):
        raise ValueError(f"prelu: {x.size} elements are not a multiple of channels*dim = "
                         f"{channels}*{dim}")
    (sf,) = _flat(slope)
    if sf.size != (1 if shared else channels):
        raise ValueError(f"prelu: slope has {sf.size} values, expected {1 if shared else channels}")
    return sf


def prelu_fwd(x: Any, slope: Any, y: Any, channels: int, dim: int, shared: bool) -> None:
    """PReLU forward on x viewed as (N, channels, dim) (y may be x)."""
    xf, yf = _flat(x, y)
    sf = _prelu_slope(xf, slope, channels, dim, shared)
    _launch("prelu_fwd", [xf, sf, yf], channels, dim, int(bool(shared)))


def prelu_bwd(x: Any, slope: Any, dy: Any, dx: Any | None, dslope: Any | None, channels: int,
              dim: int, shared: bool) -> None:
    """PReLU backward: dslope += sum dy*x*(x <= 0) per channel (first, so dx may be dy), then
    dx = dy*((x > 0) + a*(x <= 0)). None skips either."""
    xf, dyf = _flat(x, dy)
    sf = _prelu_slope(xf, slope, channels, dim, shared)
    if dslope is not None and xf.size:
        (dsf,) = _flat(dslope)
        if dsf.size != sf.size:
            raise ValueError(f"prelu_bwd: dslope has {dsf.size} values, slope {sf.size}")
        prelu_slope_grad_v1[sf.size, BLOCK_THREADS](xf, dyf, dsf, channels, dim, int(bool(shared)))
    if dx is not None:
        (dxf,) = _flat(dx)
        if dxf.size != xf.size:
            raise ValueError(f"prelu_bwd: dx has {dxf.size} values, x {xf.size}")
        _launch("prelu_bwd", [xf, sf, dyf, dxf], channels, dim, int(bool(shared)))
