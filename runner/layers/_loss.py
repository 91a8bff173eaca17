"""Loss-layer helpers: Caffe's LossParameter normalization."""
from __future__ import annotations

from proto import caffe_pb2 as pb

LP = pb.LossParameter


def normalization_mode(lp: pb.LayerParameter, default: int) -> int:
    """Caffe's rule: ``normalization`` if given; else legacy ``normalize`` (true: VALID, false:
    BATCH_SIZE); else ``default`` (VALID for SoftmaxWithLoss, BATCH_SIZE for
    SigmoidCrossEntropyLoss)."""
    p = lp.loss_param
    if p.HasField("normalization"):
        return p.normalization
    if p.HasField("normalize"):
        return LP.VALID if p.normalize else LP.BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int, valid_count: int) -> float:
    """Caffe's LossLayer::GetNormalizer, clamped below at 1."""
    if mode == LP.FULL:
        n = outer * inner
    elif mode == LP.VALID:
        n = outer * inner if valid_count < 0 else valid_count
    elif mode == LP.BATCH_SIZE:
        n = outer
    else:
        n = 1
    return max(1.0, float(n))
