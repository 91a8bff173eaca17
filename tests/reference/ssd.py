"""References for the SSD fork's layers, written from the fork's C++ (weiliu89/caffe, branch ssd):
Normalize (normalize_layer.cpp), PriorBox (prior_box_layer.cpp), DetectionOutput
(detection_output_layer.cu with bbox_util's DecodeBBox, ApplyNMSFast, JaccardOverlap). Plain
Python loops over boxes and float64 numpy for the norms; never imports the code under test.
"""
from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def normalize_fwd_ref(x, scale, across_spatial: bool, eps: float):
    """(y, norm) of the fork's Normalize on x (N, C, ...): float64."""
    x = np.asarray(x, np.float64)
    n, c = x.shape[:2]
    xs = x.reshape(n, c, -1)
    s = np.asarray(scale, np.float64).reshape(-1)
    sc = np.full(c, s[0]) if s.size == 1 else s
    y = np.empty_like(xs)
    norm = np.empty((n,) if across_spatial else (n, xs.shape[2]))
    for i in range(n):
        if across_spatial:
            norm[i] = math.sqrt(float((xs[i] ** 2).sum()) + eps)
            y[i] = xs[i] / norm[i]
        else:
            for p in range(xs.shape[2]):
                norm[i, p] = math.sqrt(float((xs[i, :, p] ** 2).sum()) + eps)
                y[i, :, p] = xs[i, :, p] / norm[i, p]
        y[i] *= sc[:, None]
    return y.reshape(x.shape), norm


def normalize_bwd_fork_ref(x, dy, scale, across_spatial: bool, eps: float):
    """(dx, dscale) as the fork's Backward_cpu computes them: a = sum(x * dy) over the norm's
    axes, dx = (dy - x * a / norm^2) / norm * scale[c], dscale[c] = sum(y * dy) / scale[c]
    (over n and s; one value when the scale is shared). float64."""
    x = np.asarray(x, np.float64)
    n, c = x.shape[:2]
    xs = x.reshape(n, c, -1)
    d = np.asarray(dy, np.float64).reshape(xs.shape)
    s = np.asarray(scale, np.float64).reshape(-1)
    sc = np.full(c, s[0]) if s.size == 1 else s
    y, norm = normalize_fwd_ref(x, scale, across_spatial, eps)
    y = y.reshape(xs.shape)
    dx = np.empty_like(xs)
    for i in range(n):
        if across_spatial:
            a = float((xs[i] * d[i]).sum())
            dx[i] = (d[i] - xs[i] * a / norm[i] ** 2) / norm[i]
        else:
            for p in range(xs.shape[2]):
                a = float((xs[i, :, p] * d[i, :, p]).sum())
                dx[i, :, p] = (d[i, :, p] - xs[i, :, p] * a / norm[i, p] ** 2) / norm[i, p]
        dx[i] *= sc[:, None]
    if s.size == 1:
        dscale = np.array([(y * d).sum() / s[0]])
    else:
        dscale = (y * d).sum(axis=(0, 2)) / s
    return dx.reshape(x.shape), dscale


def prior_box_ref(layer_h, layer_w, img_h, img_w, min_sizes, max_sizes=(), aspect_ratios=(),
                  flip=True, clip=False, variance=(), step_h=0.0, step_w=0.0, offset=0.5):
    """(2, layer_h * layer_w * P * 4) float32 as the fork's Forward_cpu writes it: float centres,
    integer sizes (``int min_size_ = min_sizes_[s]``), corners in double stored as float.
    ``step_h``/``step_w`` 0: image size / layer size."""
    ars = [1.0]
    for ar in aspect_ratios:
        ar = float(f32(ar))
        if any(abs(ar - a) < 1e-6 for a in ars):
            continue
        ars.append(ar)
        if flip:
            ars.append(float(f32(1.0 / ar)))
    if step_h == 0 or step_w == 0:
        sw, sh = f32(img_w) / f32(layer_w), f32(img_h) / f32(layer_h)
    else:
        sw, sh = f32(step_w), f32(step_h)
    out = []
    for h in range(layer_h):
        for w in range(layer_w):
            cx = float((f32(w) + f32(offset)) * sw)
            cy = float((f32(h) + f32(offset)) * sh)
            for s, mn in enumerate(min_sizes):
                m = int(mn)
                boxes = [(float(m), float(m))]
                if len(max_sizes):
                    side = float(f32(math.sqrt(m * int(max_sizes[s]))))
                    boxes.append((side, side))
                for ar in ars:
                    if abs(ar - 1.0) < 1e-6:
                        continue
                    r = f32(math.sqrt(ar))
                    boxes.append((float(f32(m) * r), float(f32(m) / r)))
                for bw, bh in boxes:
                    out += [(cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h,
                            (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h]
    boxes = np.asarray(out, dtype=np.float32)
    if clip:
        boxes = np.minimum(np.maximum(boxes, f32(0)), f32(1))
    var = [0.1] if not len(variance) else list(variance)
    var_row = np.asarray((var * 4)[:4] if len(var) == 1 else var, dtype=np.float32)
    return np.stack([boxes, np.tile(var_row, len(boxes) // 4)])


def decode_ref(loc4, prior4, var4, code_type: int, variance_encoded_in_target: bool,
               clip: bool = False):
    """One box: the fork's DecodeBBox (code_type 1 CORNER, 2 CENTER_SIZE, 3 CORNER_SIZE), float32;
    ``clip``: the fork's ClipBBox after it (each coordinate into [0, 1])."""
    box = _decode(loc4, prior4, var4, code_type, variance_encoded_in_target)
    return [min(max(b, f32(0)), f32(1)) for b in box] if clip else box


def _decode(loc4, prior4, var4, code_type, variance_encoded_in_target):
    lx0, ly0, lx1, ly1 = (f32(v) for v in loc4)
    px0, py0, px1, py1 = (f32(v) for v in prior4)
    v = [f32(1)] * 4 if variance_encoded_in_target else [f32(t) for t in var4]
    if code_type == 1:
        return [px0 + v[0] * lx0, py0 + v[1] * ly0, px1 + v[2] * lx1, py1 + v[3] * ly1]
    pw, ph = px1 - px0, py1 - py0
    if code_type == 2:
        pcx, pcy = (px0 + px1) / f32(2), (py0 + py1) / f32(2)
        cx = v[0] * lx0 * pw + pcx
        cy = v[1] * ly0 * ph + pcy
        w = np.exp(v[2] * lx1) * pw
        h = np.exp(v[3] * ly1) * ph
        return [cx - w / f32(2), cy - h / f32(2), cx + w / f32(2), cy + h / f32(2)]
    return [px0 + v[0] * lx0 * pw, py0 + v[1] * ly0 * ph, px1 + v[2] * lx1 * pw,
            py1 + v[3] * ly1 * ph]


def _size(b) -> float:
    if b[2] < b[0] or b[3] < b[1]:
        return 0.0
    return (b[2] - b[0]) * (b[3] - b[1])


def jaccard_ref(a, b) -> float:
    """The fork's JaccardOverlap of two NormalizedBBox: IntersectBBox (an empty box when they do
    not overlap), 0 unless the intersection has positive width and height."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if not (iw > 0 and ih > 0):
        return 0.0
    inter = iw * ih
    return inter / (_size(a) + _size(b) - inter)


def nms_ref(boxes, scores, score_threshold, nms_threshold, eta, top_k):
    """The fork's ApplyNMSFast: kept indices in keep order (Python lists, stable sort)."""
    cand = [(float(s), i) for i, s in enumerate(scores) if s > score_threshold]
    cand.sort(key=lambda t: -t[0])          # list.sort is stable: equal scores keep index order
    if -1 < top_k < len(cand):
        cand = cand[:top_k]
    kept: list[int] = []
    thr = nms_threshold
    for _, i in cand:
        keep = all(jaccard_ref(boxes[i], boxes[k]) <= thr for k in kept)
        if keep:
            kept.append(i)
            if eta < 1 and thr > 0.5:
                thr *= eta
    return kept


def detection_output_ref(loc, conf, prior, num_classes, share_location=True, background_label_id=0,
                         code_type=1, variance_encoded_in_target=False, keep_top_k=-1,
                         confidence_threshold=None, nms_threshold=0.3, top_k=-1, eta=1.0,
                         clip=False):
    """(K, 7) rows of the fork's DetectionOutput (GPU path: decode, then NMS per class, keep_top_k,
    rows by image, label ascending, score descending). loc (N, P*L*4), conf (N, P*C), prior
    (1, 2, P*4)."""
    n = loc.shape[0]
    pr = np.asarray(prior, np.float32).reshape(-1)
    P = pr.size // 8 if prior.ndim < 3 else prior.shape[2] // 4
    L = 1 if share_location else num_classes
    loc = np.asarray(loc, np.float32).reshape(n, P, L, 4)
    conf = np.asarray(conf, np.float32).reshape(n, P, num_classes)
    pbox = pr[:P * 4].reshape(P, 4)
    pvar = pr[P * 4:2 * P * 4].reshape(P, 4)
    thr = -float(np.finfo(np.float32).max) if confidence_threshold is None else confidence_threshold
    rows = []
    for i in range(n):
        dec = [[decode_ref(loc[i, p, lc], pbox[p], pvar[p], code_type, variance_encoded_in_target,
                           clip)
                for lc in range(L)] for p in range(P)]
        kept = {}
        for c in range(num_classes):
            if c == background_label_id:
                continue
            lc = 0 if share_location else c
            kept[c] = nms_ref([dec[p][lc] for p in range(P)], conf[i, :, c], thr, nms_threshold,
                              eta, top_k)
        if keep_top_k > -1 and sum(len(v) for v in kept.values()) > keep_top_k:
            pairs = [(float(conf[i, p, c]), c, p) for c in sorted(kept) for p in kept[c]]
            pairs.sort(key=lambda t: -t[0])
            pairs = pairs[:keep_top_k]
            kept = {}
            for _, c, p in pairs:
                kept.setdefault(c, []).append(p)
        for c in sorted(kept):
            lc = 0 if share_location else c
            for p in kept[c]:
                rows.append([i, c, conf[i, p, c]] + [float(v) for v in dec[p][lc]])
    if not rows:
        return np.array([[i, -1, -1, -1, -1, -1, -1] for i in range(n)], dtype=np.float32)
    return np.asarray(rows, dtype=np.float32)
