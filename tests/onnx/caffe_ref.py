"""numpy forward passes of the Caffe layer types that have no nbcaffe layer yet in some trees
(BVLC Caffe's Clip, Crop, Embed, MVN, Parameter, PReLU, Reduction, Swish, Threshold, Tile; the
SSD fork's Normalize and Permute; Split and Eltwise to combine them), written from Caffe's source,
in float64. The ONNX tests use
them only while ``runner.registry.known_types()`` lacks the type; once the layer exists they
compare against nbcaffe's forward instead. Never imports the code under test.

``forward(layers, feeds, params)`` runs a list of (LayerParameter, bottoms, tops) in order.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Ref = Callable[..., list[np.ndarray]]
REFS: dict[str, Ref] = {}


def ref(*types: str) -> Callable[[Ref], Ref]:
    def deco(fn: Ref) -> Ref:
        for t in types:
            REFS[t] = fn
        return fn
    return deco


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


@ref("Split")
def split(lp, xs, ps):
    return [xs[0]] * len(lp.top)


@ref("Eltwise")
def eltwise(lp, xs, ps):
    p = lp.eltwise_param
    if p.operation == 0:                          # PROD
        return [np.prod(xs, axis=0)]
    if p.operation == 2:                          # MAX
        return [np.max(xs, axis=0)]
    coeffs = list(p.coeff) or [1.0] * len(xs)     # SUM: top = sum of coeff_i * bottom_i
    return [sum(c * x for c, x in zip(coeffs, xs))]


@ref("Clip")
def clip(lp, xs, ps):
    p = lp.clip_param
    return [np.maximum(p.min, np.minimum(xs[0], p.max))]   # std::max(min, std::min(x, max))


@ref("Crop")
def crop(lp, xs, ps):
    a, b = xs
    p = lp.crop_param
    axis = _axis(p.axis, a.ndim)
    sl = [slice(None)] * a.ndim
    for i in range(axis, a.ndim):
        off = 0 if not len(p.offset) else p.offset[0 if len(p.offset) == 1 else i - axis]
        sl[i] = slice(off, off + b.shape[i])
    return [a[tuple(sl)]]


@ref("Embed")
def embed(lp, xs, ps):
    y = ps[0][np.trunc(xs[0]).astype(np.int64)]   # static_cast<int>(bottom_data[n])
    return [y + ps[1] if lp.embed_param.bias_term else y]


@ref("MVN")
def mvn(lp, xs, ps):
    p = lp.mvn_param
    x = xs[0]
    n = x.shape[0] if p.across_channels else x.shape[0] * x.shape[1]
    flat = x.reshape(n, -1)
    y = flat - flat.mean(axis=1, keepdims=True)                   # X - EX
    if p.normalize_variance:
        var = (y ** 2).mean(axis=1, keepdims=True)                 # E((X - EX)^2)
        y = y / (np.sqrt(var) + p.eps)                             # eps added after the sqrt
    return [y.reshape(x.shape)]


@ref("Parameter")
def parameter(lp, xs, ps):
    return [ps[0]]


@ref("PReLU")
def prelu(lp, xs, ps):
    x = xs[0]
    s = ps[0].reshape(()) if lp.prelu_param.channel_shared else ps[0].reshape(
        (x.shape[1],) + (1,) * (x.ndim - 2))
    return [np.maximum(x, 0) + s * np.minimum(x, 0)]


@ref("Reduction")
def reduction(lp, xs, ps):
    p = lp.reduction_param
    x = xs[0]
    axis = _axis(p.axis, x.ndim)
    flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    op = {1: flat.sum(1), 2: np.abs(flat).sum(1), 3: (flat ** 2).sum(1), 4: flat.mean(1)}
    return [(op[p.operation] * p.coeff).reshape(x.shape[:axis])]


@ref("Swish")
def swish(lp, xs, ps):
    x = xs[0]
    return [x / (1.0 + np.exp(-lp.swish_param.beta * x))]


@ref("Threshold")
def threshold(lp, xs, ps):
    return [(xs[0] > lp.threshold_param.threshold).astype(np.float64)]


@ref("Tile")
def tile(lp, xs, ps):
    x = xs[0]
    reps = [1] * x.ndim
    reps[_axis(lp.tile_param.axis, x.ndim)] = lp.tile_param.tiles
    return [np.tile(x, reps)]


@ref("Normalize")
def normalize(lp, xs, ps):
    p = lp.norm_param
    x = xs[0]
    sq = x ** 2
    if p.across_spatial:
        norm = np.sqrt(sq.reshape(x.shape[0], -1).sum(1) + p.eps).reshape(
            (x.shape[0],) + (1,) * (x.ndim - 1))
    else:
        norm = np.sqrt(sq.sum(axis=1, keepdims=True) + p.eps)
    y = x / norm
    s = ps[0].reshape(()) if p.channel_shared else ps[0].reshape((x.shape[1],) + (1,) * (x.ndim - 2))
    return [y * s]


@ref("Permute")
def permute(lp, xs, ps):
    x = xs[0]
    order = list(lp.permute_param.order)
    order += [i for i in range(x.ndim) if i not in order]
    return [np.transpose(x, order)]


def forward(layers: Sequence, feeds: Mapping[str, np.ndarray],
            params: Mapping[str, Sequence[np.ndarray]]) -> dict[str, np.ndarray]:
    """Run ``layers`` (netdef LayerNodes, or anything with .param/.type/.bottoms/.tops/.name) on
    ``feeds``; returns every blob. Input layers are skipped (their tops are fed)."""
    blobs = {k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()}
    for node in layers:
        if node.type == "Input":
            continue
        ps = [np.asarray(p, dtype=np.float64) for p in params.get(node.name, [])]
        tops = REFS[node.type](node.param, [blobs[b] for b in node.bottoms], ps)
        for t, v in zip(node.tops, tops):
            blobs[t] = v
    return blobs
