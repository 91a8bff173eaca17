"""Stage ``memory``: achieved bandwidth of our memory-bound kernels vs a device copy of the same bytes.

Each op runs on AlexNet-sized activations at batch 256 (conv1's output 256x96x55x55 = 297 MB, far
above the 50-60 MB L2, so every pass goes to DRAM). Bytes are counted as each array read once plus
each array written once (the ideal traffic; re-reads of overlapping windows that hit in cache are
not counted), and GB/s = bytes / median time. The reference line is a device-to-device copy (torch
``Tensor.copy_``: read N + write N bytes) measured in the same run: ``pct_copy`` = our GB/s / copy GB/s
is how close an op gets to the memory roof. Each op is validated against torch first.

| op | shape (GPU) | bytes counted |
|---|---|---|
| copy (torch, and ours: kernels.blas1.copy) | 256x96x55x55 | 2 N |
| ReLU fwd / bwd | 256x96x55x55 | 2 N / 3 N |
| max pool 3x3/2 fwd / bwd (pool1) | 256x96x55x55 -> 27x27 | N + 2 P (y, int32 mask) / 2 P + N |
| LRN across 5 fwd / bwd (norm1) | 256x96x55x55 | x, scale, y: 3 N / x, y, scale, dy, dx: 5 N |
| softmax over channels fwd | 256x1000 and 32x21x128x128 | 2 N |
| im2col 5x5 pad 2 (conv2 input, one chunk) | 96x27x27 per image | x + col |
| im2col_nd 3x3x3 pad 1 (C3D conv3a input, one clip) | 128x8x56x56 | x + col |
| STOCHASTIC pool TEST 3x3/2 (pool1's shape) | 256x96x55x55 -> 27x27 | N + P |
| LSTM unit step fwd | 4096 x 1024 cells | c_prev, X (4x), cont, c, h |
| SSD Normalize fwd (per position, per-channel scale) / Permute 0 2 3 1 | 32x512x38x38 | 2 N / 2 N |
| PReLU fwd / bwd (per channel; bwd with the slope gradient) | 256x96x55x55 | 2 N / 3 N |
| MVN fwd / bwd (per plane, normalize_variance) | 256x96x55x55 | 2 N / 3 N |
| Clip fwd, Swish fwd (y and the kept sigmoid) | 256x96x55x55 | 2 N, 3 N |
| Crop fwd (offset 2 on H and W) | 256x96x55x55 -> 51x51 | 2 Y |

(N, P: elements times 4 bytes.) Our time is the op's launches re-issued pre-bound
(``runner.backend.replay``: what a training iteration pays), with the time through the Python wrapper kept
as ``ms_call``. The unsuffixed rows run each module's promoted versions (what the runner uses);
``_v<N>`` rows run an older version (``kernels._launch.promoted``) for the same-run comparison.
Run: ``python -m bench.bench_memory``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import DRY, Stage, enable_kernel_cache, log, main_guard, missing, size, time_fn, torch_mod
from bench.devarrays import empty_pair, pair_from_host, rand_pair, rel_err_dev

TOL = 1e-5

REPS = dict(warmup=0, min_reps=1, max_reps=1) if DRY else dict(warmup=1, min_reps=3, max_reps=30,
                                                                target_s=0.1)


class Skip(Exception):
    """An op whose kernel module is missing: recorded as a skip, not a failure."""


def _need(module: str, *names: str) -> Any:
    why = missing(module, *names)
    if why:
        raise Skip(why)
    import importlib
    return importlib.import_module(module)


# Each builder returns (ours: () -> None, theirs: () -> Any, [(our output, reference tensor)] to check
# after one call of each, bytes moved per call).
Builder = Callable[[], tuple[Callable[[], None], Callable[[], Any], list, int]]

ACT = size((256, 96, 55, 55), (2, 3, 7, 7))


def _versioned(module: Any, version: str | None, ops: tuple[str, ...], fn: Callable[[], Any]):
    """``fn`` run with ``ops`` of kernel ``module`` at ``version`` (None: the promoted ones)."""
    from kernels._launch import promoted
    table = {} if version is None else dict.fromkeys(ops, version)

    def run() -> None:
        with promoted(module.PROMOTED, **table):
            fn()
    return run


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def copy_torch():
    x, xt = rand_pair(ACT, 1)
    y, yt = empty_pair(ACT)
    n = _numel(ACT)
    return (lambda: yt.copy_(xt)), (lambda: yt.copy_(xt)), [], 2 * 4 * n


def _copy_ours(version: str | None):
    def build():
        kf = _need("kernels.blas1", "copy")
        x, xt = rand_pair(ACT, 1)
        y, yt = empty_pair(ACT)
        return _versioned(kf, version, ("copy",), lambda: kf.copy(x, y)), (lambda: yt.copy_(xt)), \
            [(y, xt)], 2 * 4 * _numel(ACT)
    return build


def _relu_fwd(version: str | None):
    def build():
        ka = _need("kernels.activation", "relu_fwd")
        torch = torch_mod()
        x, xt = rand_pair(ACT, 2)
        y, yt = empty_pair(ACT)
        ref = torch.relu(xt)
        out = torch.empty_like(xt)
        return _versioned(ka, version, ("relu_fwd",), lambda: ka.relu_fwd(x, y)), \
            (lambda: torch.clamp(xt, min=0, out=out)), [(y, ref)], 2 * 4 * _numel(ACT)
    return build


def relu_bwd():
    ka = _need("kernels.activation", "relu_bwd")
    torch = torch_mod()
    x, xt = rand_pair(ACT, 3)
    dy, dyt = rand_pair(ACT, 4)
    dx, dxt = empty_pair(ACT)
    ref = torch.where(xt > 0, dyt, torch.zeros_like(dyt))
    out = torch.empty_like(xt)
    tb = torch.ops.aten.threshold_backward.grad_input
    return (lambda: ka.relu_bwd(dy, x, dx)), (lambda: tb(dyt, xt, 0.0, grad_input=out)), \
        [(dx, ref)], 3 * 4 * _numel(ACT)


def _pool_geom():
    n, c, h, w = ACT
    k, s = 3, 2
    ph = -(-(h - k) // s) + 1
    pw = -(-(w - k) // s) + 1
    return (n, c, ph, pw), k, s


def _maxpool_fwd(version: str | None):
    return lambda: maxpool_fwd(version)


def _maxpool_bwd(version: str | None):
    return lambda: maxpool_bwd(version)


def maxpool_fwd(version: str | None = None):
    kp = _need("kernels.pool", "max_pool_fwd")
    torch = torch_mod()
    F = torch.nn.functional
    yshape, k, s = _pool_geom()
    x, xt = rand_pair(ACT, 5)
    y, yt = empty_pair(yshape)
    mask, _ = empty_pair(yshape, "int32")
    ref = F.max_pool2d(xt, k, s, ceil_mode=True)
    return _versioned(kp, version, ("max_pool_fwd",), lambda: kp.max_pool_fwd(x, y, mask, k, s, 0)), \
        (lambda: F.max_pool2d_with_indices(xt, k, s, ceil_mode=True)), [(y, ref)], \
        4 * (_numel(ACT) + 2 * _numel(yshape))


def maxpool_bwd(version: str | None = None):
    kp = _need("kernels.pool", "max_pool_fwd", "max_pool_bwd")
    torch = torch_mod()
    F = torch.nn.functional
    yshape, k, s = _pool_geom()
    x, xt = rand_pair(ACT, 6)
    y, _ = empty_pair(yshape)
    mask, _ = empty_pair(yshape, "int32")
    kp.max_pool_fwd(x, y, mask, k, s, 0)
    dy, dyt = rand_pair(yshape, 7)
    dx, dxt = empty_pair(ACT)
    xr = xt.clone().requires_grad_(True)
    yr, idx = F.max_pool2d_with_indices(xr, k, s, ceil_mode=True)
    yr.backward(dyt)
    ref = xr.grad.detach()
    mb = torch.ops.aten.max_pool2d_with_indices_backward
    return _versioned(kp, version, ("max_pool_bwd",), lambda: kp.max_pool_bwd(dy, mask, dx, k, s, 0)), \
        (lambda: mb(dyt, xt, [k, k], [s, s], [0, 0], [1, 1], True, idx)), [(dx, ref)], \
        4 * (2 * _numel(yshape) + _numel(ACT))


SOFTMAX_SHAPES = {"softmax_fwd_fc8": size((256, 1000), (3, 5)),
                  "softmax_fwd_spatial": size((32, 21, 128, 128), (2, 3, 4, 4))}


def _softmax_fwd(shape):
    def build():
        ks = _need("kernels.softmax", "softmax_fwd")
        torch = torch_mod()
        x, xt = rand_pair(shape, 8, scale=3.0)
        y, yt = empty_pair(shape)
        ref = torch.softmax(xt, 1)
        out = torch.empty_like(xt)
        sm = torch.ops.aten._softmax.out
        return (lambda: ks.softmax_fwd(x, y, 1)), \
            (lambda: sm(xt, 1, False, out=out)), [(y, ref)], \
            2 * 4 * _numel(shape)
    return build


def softmax_bwd():
    ks = _need("kernels.softmax", "softmax_bwd")
    torch = torch_mod()
    shape = SOFTMAX_SHAPES["softmax_fwd_spatial"]
    _, xt = rand_pair(shape, 9, scale=3.0)
    yt = torch.softmax(xt, 1).contiguous()
    y = _as_ours(yt)
    dy, dyt = rand_pair(shape, 10)
    dx, dxt = empty_pair(shape)
    ref = (dyt - (dyt * yt).sum(1, keepdim=True)) * yt
    out = torch.empty_like(yt)
    sb = torch.ops.aten._softmax_backward_data.out
    return (lambda: ks.softmax_bwd(dy, y, dx, 1)), \
        (lambda: sb(dyt, yt, 1, torch.float32, grad_input=out)), [(dx, ref)], 3 * 4 * _numel(shape)


def _as_ours(t):
    """Our view (GPU) or copy (dry run) of torch tensor ``t``."""
    from bench.devarrays import as_numba, pair_from_host
    return pair_from_host(t.numpy())[0] if DRY else as_numba(t)


LRN = dict(local_size=5, alpha=1e-4, beta=0.75, k=1.0)   # AlexNet's norm1/norm2


def _lrn_fwd(version: str | None):
    def build():
        kl = _need("kernels.lrn", "lrn_fwd")
        torch = torch_mod()
        F = torch.nn.functional
        x, xt = rand_pair(ACT, 11, scale=10.0)   # |x| ~ 10: alpha/n * sum x^2 ~ 1e-2, scale visibly != k
        y, yt = empty_pair(ACT)
        sc, _ = empty_pair(ACT)
        n, a, b, k = LRN["local_size"], LRN["alpha"], LRN["beta"], LRN["k"]
        ref = F.local_response_norm(xt, n, a, b, k)
        return _versioned(kl, version, ("lrn_fwd",), lambda: kl.lrn_fwd(x, sc, y, n, a, b, k)), \
            (lambda: F.local_response_norm(xt, n, a, b, k)), [(y, ref)], 3 * 4 * _numel(ACT)
    return build


def _lrn_bwd(version: str | None):
    def build():
        kl = _need("kernels.lrn", "lrn_fwd", "lrn_bwd")
        torch = torch_mod()
        F = torch.nn.functional
        n, a, b, k = LRN["local_size"], LRN["alpha"], LRN["beta"], LRN["k"]
        x, xt = rand_pair(ACT, 12, scale=10.0)
        y, _ = empty_pair(ACT)
        sc, _ = empty_pair(ACT)
        kl.lrn_fwd(x, sc, y, n, a, b, k)
        dy, dyt = rand_pair(ACT, 13)
        dx, _ = empty_pair(ACT)
        xr = xt.clone().requires_grad_(True)
        yr = F.local_response_norm(xr, n, a, b, k)
        ref = torch.autograd.grad(yr, xr, dyt, retain_graph=True)[0]
        return _versioned(kl, version, ("lrn_bwd",), lambda: kl.lrn_bwd(dy, x, y, sc, dx, n, a, b)), \
            (lambda: torch.autograd.grad(yr, xr, dyt, retain_graph=True)), [(dx, ref)], \
            5 * 4 * _numel(ACT)
    return build


# conv2's input at batch 256 (96x27x27, 5x5 pad 2): one chunk as kernels/conv.py cuts it
IM2COL = size((256, 96, 27, 27, 5, 2), (2, 4, 5, 5, 3, 1))


def _im2col_setup(seed: int):
    n, c, h, w, k, p = IM2COL
    oh = h + 2 * p - k + 1
    s_ = oh * oh
    kk = c * k * k
    try:
        from kernels.conv import chunk_images
        nc = chunk_images(n, kk, s_)
    except ImportError:
        nc = 1
    x, xt = rand_pair((n, c, h, w), seed)
    return n, c, h, w, k, p, oh, s_, kk, nc, x, xt


def _im2col(version: str | None):
    def build():
        ki = _need("kernels.im2col", "im2col")
        torch = torch_mod()
        F = torch.nn.functional
        n, c, h, w, k, p, oh, s_, kk, nc, x, xt = _im2col_setup(14)
        col, _ = empty_pair((kk, nc * s_))
        xc = xt[:nc]
        ref = F.unfold(xc, k, padding=p).permute(1, 0, 2).reshape(kk, nc * s_)   # ours: (K, Nc*S)
        ours = _versioned(ki, version, ("im2col",),
                          lambda: ki.im2col(x, 0, nc, k, k, p, p, 1, 1, 1, 1, oh, oh, col))
        return ours, (lambda: F.unfold(xc, k, padding=p)), [(col, ref)], 4 * (nc * c * h * w + kk * nc * s_)
    return build


def _col2im(version: str | None):
    return lambda: col2im(version)


def col2im(version: str | None = None):
    ki = _need("kernels.im2col", "col2im")
    torch = torch_mod()
    F = torch.nn.functional
    n, c, h, w, k, p, oh, s_, kk, nc, _, _ = _im2col_setup(15)
    col, colt = rand_pair((kk, nc * s_), 16)
    dx, dxt = empty_pair((n, c, h, w))
    col_t = colt.reshape(kk, nc, s_).permute(1, 0, 2).contiguous()     # torch's (Nc, K, S) layout
    ref = F.fold(col_t, (h, w), k, padding=p)
    check = _Slice(dx, nc)
    ours = _versioned(ki, version, ("col2im",),
                      lambda: ki.col2im(col, 0, nc, k, k, p, p, 1, 1, 1, 1, oh, oh, dx))
    return ours, (lambda: F.fold(col_t, (h, w), k, padding=p)), [(check, ref)], \
        4 * (kk * nc * s_ + nc * c * h * w)


def _layout(which: str, version: str | None):
    """conv2's channel-major output of one chunk (256 x Nc x 729) to NCHW and back."""
    def build():
        kl = _need("kernels.layout", which)
        n, c, s_ = size((256, 256, 729), (2, 3, 5))
        nc = size(128, 2)
        torch = torch_mod()
        if which == "cn_to_nc":
            src, srct = rand_pair((c, nc * s_), 17)
            dst, _ = empty_pair((n, c, s_))
            ref = srct.reshape(c, nc, s_).permute(1, 0, 2)
            out = torch.empty((nc, c, s_), device=srct.device)
            return _versioned(kl, version, (which,), lambda: kl.cn_to_nc(src, dst, 0)), \
                (lambda: out.copy_(srct.reshape(c, nc, s_).permute(1, 0, 2))), \
                [(_Slice(dst, nc), ref)], 2 * 4 * c * nc * s_
        src, srct = rand_pair((n, c, s_), 18)
        dst, _ = empty_pair((c, nc * s_))
        ref = srct[:nc].permute(1, 0, 2).reshape(c, nc * s_)
        out = torch.empty((c, nc, s_), device=srct.device)
        return _versioned(kl, version, (which,), lambda: kl.nc_to_cn(src, 0, dst)), \
            (lambda: out.copy_(srct[:nc].permute(1, 0, 2))), [(dst, ref)], 2 * 4 * c * nc * s_
    return build


class _Slice:
    """dx[:nc] of a device array, for validation of a chunk (numba slicing, no copy)."""

    def __init__(self, arr, nc: int):
        self.arr, self.nc = arr, nc

    def copy_to_host(self):
        return self.arr.copy_to_host()[: self.nc]

    @property
    def __cuda_array_interface__(self):
        return self.arr[: self.nc].__cuda_array_interface__


OPS: dict[str, Builder] = {   # most wanted first: the stage skips what its time budget cannot fit
    # the promoted versions (what the runner uses), then older ones for the same-run comparison
    "copy": copy_torch,
    "relu_fwd": _relu_fwd(None),
    "relu_bwd": relu_bwd,
    "maxpool_fwd": _maxpool_fwd(None),
    "maxpool_bwd": _maxpool_bwd(None),
    "lrn_fwd": _lrn_fwd(None),
    "lrn_bwd": _lrn_bwd(None),
    "im2col": _im2col(None),
    "col2im": _col2im(None),
    "cn_to_nc": _layout("cn_to_nc", None),
    "nc_to_cn": _layout("nc_to_cn", None),
    "softmax_fwd_fc8": _softmax_fwd(SOFTMAX_SHAPES["softmax_fwd_fc8"]),
    "softmax_fwd_spatial": _softmax_fwd(SOFTMAX_SHAPES["softmax_fwd_spatial"]),
    "softmax_bwd_spatial": softmax_bwd,
    "copy_ours": _copy_ours(None),
    "copy_ours_v2": _copy_ours("v2"),
    "copy_ours_v1": _copy_ours("v1"),
    "relu_fwd_v2": _relu_fwd("v2"),
    "relu_fwd_v1": _relu_fwd("v1"),
    "maxpool_fwd_v1": _maxpool_fwd("v1"),
    "maxpool_bwd_v1": _maxpool_bwd("v1"),
    "lrn_fwd_v2": _lrn_fwd("v2"),
    "lrn_bwd_v2": _lrn_bwd("v2"),
    "im2col_v2": _im2col("v2"),
    "col2im_v2": _col2im("v2"),
    "col2im_v1": _col2im("v1"),
    "cn_to_nc_v1": _layout("cn_to_nc", "v1"),
}


# ------------------------------------------------------------------ SSD fork layers (kernels.normalize,
# kernels.permute): VGG SSD300's conv4_3 at batch 32, 32x512x38x38 = 94 MB
SSD_ACT = size((32, 512, 38, 38), (2, 3, 5, 5))


def ssd_normalize_fwd():
    """conv4_3_norm: L2 over the channels per position, a scale per channel; x + y: 2 N."""
    kn = _need("kernels.normalize", "normalize_fwd")
    torch = torch_mod()
    n, c, h, w = SSD_ACT
    x, xt = rand_pair(SSD_ACT, 11)
    s, st_ = rand_pair((c,), 12)
    y, yt = empty_pair(SSD_ACT)
    norm, _ = empty_pair((n, h * w))
    ref = xt / torch.sqrt((xt * xt).sum(1, keepdim=True) + 1e-10) * st_[None, :, None, None]
    out = torch.empty_like(xt)

    def theirs():
        torch.mul(xt, torch.rsqrt((xt * xt).sum(1, keepdim=True) + 1e-10), out=out)
        out.mul_(st_[None, :, None, None])
    return (lambda: kn.normalize_fwd(x, s, y, norm, (n, c, h * w), False, 1e-10)), theirs, \
        [(y, ref)], 2 * 4 * _numel(SSD_ACT)


def ssd_permute_nhwc():
    """The multibox heads' Permute 0 2 3 1 (NCHW -> NHWC): 2 N."""
    kp = _need("kernels.permute", "permute")
    n, c, h, w = SSD_ACT
    x, xt = rand_pair(SSD_ACT, 13)
    y, yt = empty_pair((n, h, w, c))
    ref = xt.permute(0, 2, 3, 1).contiguous()
    return (lambda: kp.permute(x, y, SSD_ACT, (0, 2, 3, 1))), \
        (lambda: yt.copy_(xt.permute(0, 2, 3, 1))), [(y, ref)], 2 * 4 * _numel(SSD_ACT)


OPS.update({"ssd_normalize_fwd": ssd_normalize_fwd, "ssd_permute_nhwc": ssd_permute_nhwc})



# ---- memory-bound kernels of Caffe 1.0's other layers (PReLU, MVN, Clip, Swish, Crop) on the same
# activations; bytes: each array read or written once (PReLU's slope and MVN's per-plane statistics
# not counted)
def prelu_fwd():
    kx = _need("kernels.activation", "prelu_fwd")
    torch = torch_mod()
    n, c, h, w = ACT
    x, xt = rand_pair(ACT, 30)
    a, at = rand_pair((c,), 31, scale=0.25)
    y, yt = empty_pair(ACT)
    ref = torch.nn.functional.prelu(xt, at)
    return (lambda: kx.prelu_fwd(x, a, y, c, h * w, False)), \
        (lambda: torch.nn.functional.prelu(xt, at)), [(y, ref)], 2 * 4 * _numel(ACT)


def prelu_bwd():
    kx = _need("kernels.activation", "prelu_bwd")
    torch = torch_mod()
    n, c, h, w = ACT
    x, xt = rand_pair(ACT, 32)
    a, at = rand_pair((c,), 33, scale=0.25)
    dy, dyt = rand_pair(ACT, 34)
    dx, dxt = empty_pair(ACT)
    da, _ = empty_pair((c,))
    neg = (xt <= 0).to(xt.dtype)
    ref = dyt * ((xt > 0).to(xt.dtype) + at.reshape(1, c, 1, 1) * neg)
    xr = xt.clone().requires_grad_(True)
    ar = at.clone().requires_grad_(True)

    yr = torch.nn.functional.prelu(xr, ar)
    # dslope accumulates over the timed repetitions (only dx is validated)
    return (lambda: kx.prelu_bwd(x, a, dy, dx, da, c, h * w, False)), \
        (lambda: torch.autograd.grad(yr, (xr, ar), dyt, retain_graph=True)), [(dx, ref)], \
        3 * 4 * _numel(ACT)


def _mvn_ref(xt, eps):
    m = xt.mean((2, 3), keepdim=True)
    sd = ((xt - m) ** 2).mean((2, 3), keepdim=True).sqrt() + eps
    return (xt - m) / sd


def mvn_fwd():
    km = _need("kernels.mvn", "mvn_fwd")
    torch = torch_mod()
    n, c, h, w = ACT
    x, xt = rand_pair(ACT, 35, scale=2.0)
    y, yt = empty_pair(ACT)
    mean, _ = empty_pair((n * c,))
    std, _ = empty_pair((n * c,))
    ref = _mvn_ref(xt, 1e-9)
    inorm = torch.nn.functional.instance_norm
    return (lambda: km.mvn_fwd(x, y, mean, std, n * c, h * w, True, 1e-9)), \
        (lambda: inorm(xt, eps=1e-9)), [(y, ref)], 2 * 4 * _numel(ACT)


def mvn_bwd():
    km = _need("kernels.mvn", "mvn_fwd", "mvn_bwd")
    torch = torch_mod()
    n, c, h, w = ACT
    x, xt = rand_pair(ACT, 36, scale=2.0)
    y, _ = empty_pair(ACT)
    mean, _ = empty_pair((n * c,))
    std, _ = empty_pair((n * c,))
    km.mvn_fwd(x, y, mean, std, n * c, h * w, True, 1e-9)
    dy, dyt = rand_pair(ACT, 37)
    dx, dxt = empty_pair(ACT)
    xr = xt.clone().requires_grad_(True)
    yr = _mvn_ref(xr, 1e-9)
    ref = torch.autograd.grad(yr, xr, dyt, retain_graph=True)[0]
    xi = xt.clone().requires_grad_(True)
    yi = torch.nn.functional.instance_norm(xi, eps=1e-9)
    return (lambda: km.mvn_bwd(y, dy, std, dx, n * c, h * w, True)), \
        (lambda: torch.autograd.grad(yi, xi, dyt, retain_graph=True)), [(dx, ref)], 3 * 4 * _numel(ACT)


def clip_fwd():
    kx = _need("kernels.activation", "clip_fwd")
    torch = torch_mod()
    x, xt = rand_pair(ACT, 38)
    y, yt = empty_pair(ACT)
    ref = torch.clamp(xt, -0.5, 0.5)
    out = torch.empty_like(xt)
    return (lambda: kx.clip_fwd(x, y, -0.5, 0.5)), (lambda: torch.clamp(xt, -0.5, 0.5, out=out)), \
        [(y, ref)], 2 * 4 * _numel(ACT)


def swish_fwd():
    kx = _need("kernels.activation", "swish_fwd")
    torch = torch_mod()
    x, xt = rand_pair(ACT, 39, scale=2.0)
    y, yt = empty_pair(ACT)
    s, _ = empty_pair(ACT)
    ref = torch.nn.functional.silu(xt)
    out = torch.empty_like(xt)
    silu = torch.ops.aten.silu.out
    return (lambda: kx.swish_fwd(x, y, s, 1.0)), (lambda: silu(xt, out=out)), [(y, ref)], \
        3 * 4 * _numel(ACT)


def crop_fwd():
    ki = _need("kernels.index_copy", "crop_fwd")
    torch = torch_mod()
    n, c, h, w = ACT
    yshape = (n, c, h - 4, w - 4)                  # an FCN-style crop, offset 2 on H and W
    x, xt = rand_pair(ACT, 40)
    y, yt = empty_pair(yshape)
    ref = xt[:, :, 2:h - 2, 2:w - 2]
    out = torch.empty(yshape, device=xt.device)
    return (lambda: ki.crop_fwd(x, y, (0, 0, 2, 2))), (lambda: out.copy_(xt[:, :, 2:h - 2, 2:w - 2])), \
        [(y, ref)], 2 * 4 * _numel(yshape)


OPS.update({"prelu_fwd": prelu_fwd, "prelu_bwd": prelu_bwd, "mvn_fwd": mvn_fwd, "mvn_bwd": mvn_bwd,
            "clip_fwd": clip_fwd, "swish_fwd": swish_fwd, "crop_fwd": crop_fwd})

def _prebound(fn: Callable[[], None]) -> Callable[[], None] | None:
    """``fn``'s kernel launches recorded once and re-issued pre-bound (runner.backend.replay.Recorder), or
    None when ``fn`` copies to/from the host or launches nothing."""
    try:
        from runner.backend.replay import Recorder
    except ImportError:
        return None
    with Recorder() as rec:
        fn()
    if rec.unsafe is not None or not rec.ops:
        return None
    ops = list(rec.ops)

    def run() -> None:
        for op in ops:
            op()
    return run


def body(st: Stage) -> None:
    torch = torch_mod()
    st.put("memory_kernel_cache", enable_kernel_cache())
    copy_gbps = None
    for name, build in OPS.items():
        if st.time_left() < 4:
            st.note(f"{name}: skipped (stage time budget)")
            continue
        try:
            ours, theirs, checks, nbytes = build()
        except Skip as e:
            st.note(f"{name}: skipped: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - one op's failure is data
            st.note(f"{name}: setup failed: {type(e).__name__}: {str(e)[:300]}")
            continue

        def measure(ours=ours, theirs=theirs, checks=checks, nbytes=nbytes, name=name):
            ours()       # JIT compile + the output to validate
            theirs()
            errs = [rel_err_dev(o, r) for o, r in checks]
            err = max(errs) if errs else 0.0
            row: dict[str, Any] = {"op": name, "MB": nbytes / 1e6, "rel_err": err}
            if not err <= TOL:
                row["status"] = f"WRONG (rel_err {err:.2e})"
                st.note(f"{name}: validation failed, rel_err={err:.3e}: not timed")
                return row
            # the kernel's own time: its launches pre-bound (runner.backend.replay, ~7 us each on an
            # H200) so the Python wrapper's checks (~30-90 us per call, comparable to a 150 us
            # kernel) do not count; the through-Python time is kept beside it (ms_call)
            bound = _prebound(ours)
            t = time_fn(bound or ours, **REPS)
            tc = time_fn(ours, **REPS) if bound else t
            tt = time_fn(theirs, **REPS)
            row.update(ms=t["ms"], gbps=nbytes / t["ms"] / 1e6, ms_call=tc["ms"],
                       prebound=bound is not None, torch_ms=tt["ms"],
                       torch_gbps=nbytes / tt["ms"] / 1e6, speedup_vs_torch=tt["ms"] / t["ms"],
                       status="ok")
            return row

        row = st.guard(name, measure)
        if row is None:
            continue
        if name == "copy" and "gbps" in row:
            copy_gbps = row["gbps"]
            st.put("copy_gbps", round(copy_gbps, 1))
        if copy_gbps and "gbps" in row:
            row["pct_copy"] = 100.0 * row["gbps"] / copy_gbps
        if "gbps" in row and name != "copy":
            st.put(f"mem_{name}_gbps", round(row["gbps"], 1))
        st.row("memory_ops", row)
        log(f"memory {name:14s}: {row.get('gbps', float('nan')):7.0f} GB/s "
            f"(torch {row.get('torch_gbps', float('nan')):7.0f}) err {row['rel_err']:.1e}")
        del ours, theirs, checks
        if not DRY:
            torch.cuda.empty_cache()


# ---- N-D im2col (C3D conv3a input, one clip), STOCHASTIC pooling TEST (pool1's shape),
# the LSTM unit step (LRCN-sized: 4096 streams x 1024 cells); bytes: each array read/written once
def im2col_nd():
    ki = _need("kernels.im2col_nd", "im2col_nd")
    torch = torch_mod()
    F = torch.nn.functional
    n, c, d, h, w = size((1, 128, 8, 56, 56), (1, 2, 2, 3, 3))
    x, xt = rand_pair((n, c, d, h, w), 30)
    col, _ = empty_pair((c * 27, n * d * h * w))

    def patches():           # (C*27, N*D*H*W): 3x3x3 taps of the padded clip, Caffe's order
        p = F.pad(xt, (1, 1, 1, 1, 1, 1)).unfold(2, 3, 1).unfold(3, 3, 1).unfold(4, 3, 1)
        return p.permute(1, 5, 6, 7, 0, 2, 3, 4).reshape(c * 27, n * d * h * w).contiguous()
    ones = (1, 1, 1)
    return (lambda: ki.im2col_nd(x, 0, n, (3, 3, 3), ones, ones, ones, (d, h, w), col)), patches, \
        [(col, patches())], 4 * (n * c * d * h * w + c * 27 * n * d * h * w)


def sto_pool_test():
    ks = _need("kernels.pool", "sto_pool_fwd_test")
    torch = torch_mod()
    F = torch.nn.functional
    yshape, k, s = _pool_geom()
    x, xt = rand_pair(ACT, 31)
    xt.abs_()                # stochastic pooling takes non-negative activations (after a ReLU)
    if DRY:                  # the dry run's two sides are copies: refresh ours
        x, xt = pair_from_host(xt.numpy())
    y, _ = empty_pair(yshape)

    def ref():               # sum x^2 / sum x (the window counts cancel; no padding)
        return F.avg_pool2d(xt * xt, k, s, ceil_mode=True) / F.avg_pool2d(xt, k, s, ceil_mode=True)
    return (lambda: ks.sto_pool_fwd_test(x, y, (k, k), (s, s))), ref, [(y, ref())], \
        4 * (_numel(ACT) + _numel(yshape))


def lstm_unit_fwd():
    kl = _need("kernels.lstm_unit", "lstm_unit_fwd")
    torch = torch_mod()
    n, d = size((4096, 1024), (3, 5))
    c_prev, ct = rand_pair((n, d), 32)
    gates, gt = rand_pair((n, 4 * d), 33)
    cont, _ = pair_from_host(np.ones(n, np.float32))
    c, _ = empty_pair((n, d))
    h, _ = empty_pair((n, d))

    def ref():
        i, f, o, g = torch.sigmoid(gt).split(d, dim=1)
        cc = f * ct + i * (2 * torch.sigmoid(2 * gt[:, 3 * d:]) - 1)
        return cc, o * torch.tanh(cc)
    want_c, want_h = ref()
    return (lambda: kl.lstm_unit_fwd(c_prev, gates, cont, c, h)), ref, [(c, want_c), (h, want_h)], \
        4 * (n * d + 4 * n * d + n + 2 * n * d)


OPS.update({"im2col_nd": im2col_nd, "sto_pool_test": sto_pool_test, "lstm_unit_fwd": lstm_unit_fwd})


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("memory"), body))
