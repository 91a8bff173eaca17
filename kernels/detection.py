"""SSD detection: prior box generation (PriorBox) and box decoding (DetectionOutput's first half).

Prior boxes. Output ``y`` (2, H * W * P * 4): at feature cell (h, w) the centre is
``cx = (w + offset) * step_w``, ``cy = (h + offset) * step_h`` and prior p (``widths[p]`` x
``heights[p]``) is ``((cx - bw/2) / img_w, (cy - bh/2) / img_h, (cx + bw/2) / img_w,
(cy + bh/2) / img_h)``, clipped to [0, 1] when ``clip``; row 1 holds the four variances per box.

Decoding. ``loc`` (N, P * L * 4) predictions against ``prior`` (2, P * 4) (row 0 boxes, row 1
variances) give ``boxes`` (N, P * L * 4) (xmin, ymin, xmax, ymax), the SSD fork's DecodeBBox per
code type (v = the prior's variances, or 1 when ``variance_encoded_in_target``):
CORNER ``prior + v * loc``; CENTER_SIZE ``c = v0,1 * loc0,1 * prior size + prior centre``,
``size = exp(v2,3 * loc2,3) * prior size``, corners ``c -+ size / 2``; CORNER_SIZE
``prior + v * loc * prior size`` (width for x, height for y). With ``clip`` every coordinate is
then clamped to [0, 1] (the fork's ClipBBox; its DetectionOutput decodes unclipped, OpenCV's
``clip: 1`` clips).

Versions:

- ``prior_box_fwd_v1``: one thread per (h, w, p) writing its 4 coordinates and 4 variances;
  grid-stride (``kernels._launch.launch_1d``).
- ``bbox_decode_v1``: one thread per (n, p, l) box; grid-stride.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32

from kernels._index import flat_checked
from kernels._launch import launch_1d

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3     # PriorBoxParameter.CodeType


@cuda.jit
def prior_box_fwd_v1(y, widths, heights, layer_w, img_w, img_h, step_w, step_h, offset, clip,
                     v0, v1, v2, v3):
    """Prior boxes of every (h, w, p) of a layer_h x layer_w map (see the module docstring)."""
    P = widths.shape[0]
    total = y.shape[1] // 4
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        p = idx % P
        t = idx // P
        w = t % layer_w
        h = t // layer_w
        cx = (float32(w) + offset) * step_w
        cy = (float32(h) + offset) * step_h
        hw = widths[p] * float32(0.5)
        hh = heights[p] * float32(0.5)
        b0 = (cx - hw) / img_w
        b1 = (cy - hh) / img_h
        b2 = (cx + hw) / img_w
        b3 = (cy + hh) / img_h
        if clip:
            b0 = min(max(b0, float32(0.0)), float32(1.0))
            b1 = min(max(b1, float32(0.0)), float32(1.0))
            b2 = min(max(b2, float32(0.0)), float32(1.0))
            b3 = min(max(b3, float32(0.0)), float32(1.0))
        o = idx * 4
        y[0, o] = b0
        y[0, o + 1] = b1
        y[0, o + 2] = b2
        y[0, o + 3] = b3
        y[1, o] = v0
        y[1, o + 1] = v1
        y[1, o + 2] = v2
        y[1, o + 3] = v3


@cuda.jit
def bbox_decode_v1(loc, prior, boxes, num_priors, num_loc, code_type, var_in_target, clip):
    """boxes = decode(loc, prior) per (n, p, l) box, clamped to [0, 1] when ``clip`` (see the
    module docstring)."""
    total = loc.shape[0] // 4
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        p = (i // num_loc) % num_priors
        o = i * 4
        q = p * 4
        px0 = prior[0, q]
        py0 = prior[0, q + 1]
        px1 = prior[0, q + 2]
        py1 = prior[0, q + 3]
        if var_in_target:
            v0 = float32(1.0)
            v1 = float32(1.0)
            v2 = float32(1.0)
            v3 = float32(1.0)
        else:
            v0 = prior[1, q]
            v1 = prior[1, q + 1]
            v2 = prior[1, q + 2]
            v3 = prior[1, q + 3]
        l0 = loc[o]
        l1 = loc[o + 1]
        l2 = loc[o + 2]
        l3 = loc[o + 3]
        if code_type == CORNER:
            boxes[o] = px0 + v0 * l0
            boxes[o + 1] = py0 + v1 * l1
            boxes[o + 2] = px1 + v2 * l2
            boxes[o + 3] = py1 + v3 * l3
        elif code_type == CENTER_SIZE:
            pw = px1 - px0
            ph = py1 - py0
            pcx = (px0 + px1) * float32(0.5)
            pcy = (py0 + py1) * float32(0.5)
            cx = v0 * l0 * pw + pcx
            cy = v1 * l1 * ph + pcy
            hw = math.exp(v2 * l2) * pw * float32(0.5)
            hh = math.exp(v3 * l3) * ph * float32(0.5)
            boxes[o] = cx - hw
            boxes[o + 1] = cy - hh
            boxes[o + 2] = cx + hw
            boxes[o + 3] = cy + hh
        else:   # CORNER_SIZE
            pw = px1 - px0
            ph = py1 - py0
            boxes[o] = px0 + v0 * l0 * pw
            boxes[o + 1] = py0 + v1 * l1 * ph
            boxes[o + 2] = px1 + v2 * l2 * pw
            boxes[o + 3] = py1 + v3 * l3 * ph
        if clip:
            for k in range(4):
                boxes[o + k] = min(max(boxes[o + k], float32(0.0)), float32(1.0))


_F = "float32"
KERNELS: dict[str, tuple[Any, list[str]]] = {
    "prior_box_fwd_v1": (prior_box_fwd_v1, [
        f"void({_F}[:, ::1], {_F}[::1], {_F}[::1], int64, {_F}, {_F}, {_F}, {_F}, {_F}, boolean, "
        f"{_F}, {_F}, {_F}, {_F})"]),
    "bbox_decode_v1": (bbox_decode_v1, [
        f"void({_F}[::1], {_F}[:, ::1], {_F}[::1], int64, int64, int64, boolean, boolean)"]),
}


def prior_box_fwd(y, widths, heights, layer_h: int, layer_w: int, img_h: int, img_w: int,
                  step_h: float, step_w: float, offset: float, clip: bool,
                  variance: tuple[float, float, float, float]) -> None:
    """Prior boxes into ``y`` (2 * layer_h * layer_w * P * 4 values, P = len(widths)); ``widths``
    and ``heights`` are (P,) float32 device arrays (see the module docstring)."""
    wv = flat_checked("prior_box_fwd (widths)", widths)
    hv = flat_checked("prior_box_fwd (heights)", heights, wv.size)
    dim = layer_h * layer_w * wv.size * 4
    yv = flat_checked("prior_box_fwd (y)", y, 2 * dim).reshape(2, dim)
    f = np.float32
    launch_1d(prior_box_fwd_v1, dim // 4, yv, wv, hv, layer_w, f(img_w), f(img_h), f(step_w),
              f(step_h), f(offset), bool(clip), *(f(v) for v in variance))


def bbox_decode(loc, prior, boxes, num_priors: int, num_loc: int, code_type: int,
                variance_encoded_in_target: bool, clip: bool = False) -> None:
    """``boxes`` (N * P * L * 4) decoded from ``loc`` (same size) against the first 2 * P * 4
    values of ``prior``, clamped to [0, 1] when ``clip`` (see the module docstring)."""
    if code_type not in (CORNER, CENTER_SIZE, CORNER_SIZE):
        raise ValueError(f"bbox_decode: unknown code_type {code_type}")
    lv = flat_checked("bbox_decode (loc)", loc)
    bv = flat_checked("bbox_decode (boxes)", boxes, lv.size)
    pr = flat_checked("bbox_decode (prior)", prior)
    if pr.size < 2 * num_priors * 4:
        raise ValueError(f"bbox_decode: prior must hold at least {2 * num_priors * 4} float32 values")
    pv = pr[:2 * num_priors * 4].reshape(2, num_priors * 4)
    launch_1d(bbox_decode_v1, lv.size // 4, lv, pv, bv, num_priors, num_loc, code_type,
              bool(variance_encoded_in_target), bool(clip))
