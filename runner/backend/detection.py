"""The host half of the SSD fork's DetectionOutput: per-class NMS, keep_top_k, output rows.

Both backends decode the boxes on their own device (``Backend.bbox_decode``) and hand the decoded
boxes and the confidences here, as Caffe-SSD's GPU path does (DetectionOutputLayer::Forward_gpu
decodes on the GPU, then runs ApplyNMSFast on the host). The rules are the fork's:

- per image and per class c != background_label_id: the priors whose score is strictly greater
  than ``confidence_threshold``, stable-sorted by descending score, the first ``top_k`` of them
  (all when top_k is -1); greedy NMS keeps a box when its Jaccard overlap with every box kept so
  far is <= the adaptive threshold, which starts at ``nms_threshold`` and is multiplied by
  ``eta`` after each kept box while eta < 1 and the threshold > 0.5;
- overlap: 0 unless the boxes intersect with positive width and height, else
  inter / (area1 + area2 - inter), an area being 0 for a box with xmax < xmin or ymax < ymin (the
  fork's JaccardOverlap of NormalizedBBox, which OpenCV follows too; the array version of the
  fork's GPU path would give 0/0 for two touching zero-area boxes, e.g. clipped to a border);
- when an image keeps more than ``keep_top_k`` (> -1) boxes over all classes, only the
  ``keep_top_k`` highest scores stay (a stable sort: equal scores keep label, then NMS order;
  Caffe-SSD's std::sort leaves their order unspecified);
- rows (image_id, label, score, xmin, ymin, xmax, ymax): images in order, labels ascending,
  each label's boxes by descending score; boxes are not clipped. With no detection at all the
  fork returns one row per image, (image_id, -1, -1, -1, -1, -1, -1).

All arithmetic is float32, as the fork's.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from netdef.geometry import DetectionGeometry


@njit(cache=True, error_model="numpy")
def _overlap(b, i, j):  # pragma: no cover - compiled
    """The fork's JaccardOverlap of boxes i and j of ``b`` (P, 4) float32."""
    iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
    ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
    if not (iw > 0 and ih > 0):
        return np.float32(0.0)
    inter = iw * ih
    a1 = np.float32(0.0)
    if not (b[i, 2] < b[i, 0] or b[i, 3] < b[i, 1]):
        a1 = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
    a2 = np.float32(0.0)
    if not (b[j, 2] < b[j, 0] or b[j, 3] < b[j, 1]):
        a2 = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
    return inter / (a1 + a2 - inter)


@njit(cache=True, error_model="numpy")
def nms_fast(boxes, scores, score_threshold, nms_threshold, eta, top_k):  # pragma: no cover
    """The fork's ApplyNMSFast: indices (int64) of the boxes kept, in keep order. ``boxes``
    (P, 4) float32, ``scores`` (P,) float32; thresholds are float32 values."""
    cand = np.nonzero(scores > score_threshold)[0]
    order = cand[np.argsort(-scores[cand], kind="mergesort")]
    if top_k > -1 and top_k < order.shape[0]:
        order = order[:top_k]
    kept = np.empty(order.shape[0], dtype=np.int64)
    nk = 0
    thr = nms_threshold
    for idx in order:
        keep = True
        for k in range(nk):
            if _overlap(boxes, idx, kept[k]) > thr:
                keep = False
                break
        if keep:
            kept[nk] = idx
            nk += 1
            if eta < 1 and thr > 0.5:
                thr = np.float32(thr * eta)
    return kept[:nk]


def detections(boxes: np.ndarray, conf: np.ndarray, g: DetectionGeometry) -> np.ndarray:
    """(K, 7) float32 rows of the fork's DetectionOutput from decoded ``boxes`` (N, P, L, 4) and
    ``conf`` (N, P, C) (see the module docstring)."""
    f32 = np.float32
    boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(g.num, g.num_priors,
                                                                   g.num_loc_classes, 4)
    conf = np.asarray(conf, dtype=np.float32).reshape(g.num, g.num_priors, g.num_classes)
    rows: list[np.ndarray] = []
    for i in range(g.num):
        kept: dict[int, np.ndarray] = {}
        for c in range(g.num_classes):
            if c == g.background_label_id:
                continue
            b = boxes[i, :, 0 if g.share_location else c]
            kept[c] = nms_fast(np.ascontiguousarray(b), np.ascontiguousarray(conf[i, :, c]),
                               f32(g.confidence_threshold), f32(g.nms_threshold), f32(g.eta),
                               g.top_k)
        total = sum(len(v) for v in kept.values())
        if g.keep_top_k > -1 and total > g.keep_top_k:
            labels = np.concatenate([np.full(len(v), c, dtype=np.int64) for c, v in kept.items()])
            idx = np.concatenate(list(kept.values()))
            scores = conf[i, idx, labels]
            top = np.argsort(-scores, kind="stable")[:g.keep_top_k]
            kept = {c: idx[top][labels[top] == c] for c in sorted(set(labels[top].tolist()))}
        for c in sorted(kept):
            idx = kept[c]
            if not len(idx):
                continue
            b = boxes[i, idx, 0 if g.share_location else c]
            r = np.empty((len(idx), 7), dtype=np.float32)
            r[:, 0] = i
            r[:, 1] = c
            r[:, 2] = conf[i, idx, c]
            r[:, 3:] = b
            rows.append(r)
    if not rows:
        out = np.full((g.num, 7), -1.0, dtype=np.float32)
        out[:, 0] = np.arange(g.num)
        return out
    return np.concatenate(rows)
