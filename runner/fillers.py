"""Weight fillers with Caffe's formulas and checks (caffe/filler.hpp), drawn from a numpy Generator.

``fill(blob_or_array, filler_param, rng)`` fills in place. Types (Caffe's ``GetFiller``):

- ``constant``: ``value``.
- ``uniform``: U(``min``, ``max``); ``min > max`` is an error (caffe_rng_uniform's check).
- ``gaussian``: N(``mean``, ``std``), ``std > 0`` (caffe_rng_gaussian's check); with ``sparse``
  >= 0 each value is kept with probability p = sparse / shape[0] (a Bernoulli mask; p must lie in
  [0, 1]); ``sparse`` below -1 is an error.
- ``positive_unitball``: U(0, 1), then each of the shape[0] rows (1 for a 0-D blob) divided by its
  sum.
- ``xavier``: U(-sqrt(3/n), sqrt(3/n)); ``msra``: N(0, sqrt(2/n)); n from ``variance_norm``:
  FAN_IN (default) = count / shape[0], FAN_OUT = count / shape[1] (count for a 1-D blob), AVERAGE =
  their mean.
- ``bilinear``: 4-D blobs with square kernels; f = ceil(K/2), c = (K - 1) / (2f), value at
  (y, x) = (1 - |x/f - c|) * (1 - |y/f - c|) (Caffe's current formula; the older
  (2f - 1 - f%2)/(2f) differs for K = 3, 7, 11, ...).

Every type but gaussian refuses ``sparse`` != -1, as Caffe does ("Sparsity not supported by this
Filler"). Values are drawn in float64 and the blob rounds them to its dtype.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from netdef.errors import NetDefinitionError
from proto import caffe_pb2 as pb

FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra", "bilinear")


def _fan_n(shape: tuple[int, ...], fp: pb.FillerParameter, where: str) -> float:
    count = math.prod(shape)
    if len(shape) == 0 or shape[0] == 0:
        raise NetDefinitionError(f"{where}{fp.type} filler needs a blob with a nonzero first axis, "
                                 f"got {shape}")
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    if fp.variance_norm == pb.FillerParameter.FAN_OUT:
        return float(fan_out)
    if fp.variance_norm == pb.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return float(fan_in)


def make_filler_values(shape: tuple[int, ...], fp: pb.FillerParameter, rng: np.random.Generator,
                       where: str = "") -> np.ndarray:
    """A float64 array of ``shape`` drawn as Caffe's ``fp.type`` filler would fill it; a bad
    parameter raises NetDefinitionError naming ``where`` (the layer and blob)."""
    shape = tuple(int(s) for s in shape)
    t = fp.type
    count = math.prod(shape)
    if t not in FILLER_TYPES:
        raise NetDefinitionError(f"{where}unknown filler type {t!r}; known: {', '.join(FILLER_TYPES)}")
    if t == "gaussian":
        if fp.sparse < -1:
            raise NetDefinitionError(f"{where}gaussian filler: sparse must be >= -1, got {fp.sparse}")
    elif fp.sparse != -1:
        raise NetDefinitionError(f"{where}{t} filler: sparsity not supported by this filler "
                                 f"(sparse: {fp.sparse}; only gaussian takes it)")
    if t == "constant":
        return np.full(shape, fp.value, dtype=np.float64)
    if t == "uniform":
        if fp.min > fp.max:
            raise NetDefinitionError(f"{where}uniform filler: min {fp.min} > max {fp.max}")
        return rng.uniform(fp.min, fp.max, size=shape)
    if t == "gaussian":
        if not fp.std > 0:
            raise NetDefinitionError(f"{where}gaussian filler: std must be > 0, got {fp.std}")
        v = rng.normal(fp.mean, fp.std, size=shape)
        if fp.sparse >= 0:
            if len(shape) < 1 or shape[0] == 0:
                raise NetDefinitionError(f"{where}gaussian filler with sparse needs a blob with a "
                                         f"nonzero first axis, got {shape}")
            p = fp.sparse / shape[0]
            if p > 1:
                raise NetDefinitionError(f"{where}gaussian filler: sparse {fp.sparse} over "
                                         f"{shape[0]} outputs is a probability above 1")
            v *= rng.random(size=shape) < p
        return v
    if t == "positive_unitball":
        v = rng.uniform(0.0, 1.0, size=shape)
        num = shape[0] if shape else 1
        if num == 0 or count == 0:
            return v
        rows = v.reshape(num, -1)
        rows /= rows.sum(axis=1, keepdims=True)
        return v
    if t == "xavier":
        scale = math.sqrt(3.0 / _fan_n(shape, fp, where))
        return rng.uniform(-scale, scale, size=shape)
    if t == "msra":
        std = math.sqrt(2.0 / _fan_n(shape, fp, where))
        return rng.normal(0.0, std, size=shape)
    # bilinear
    if len(shape) != 4 or shape[2] != shape[3]:
        raise NetDefinitionError(f"{where}bilinear filler needs a 4-D blob with square kernels, "
                                 f"got {shape}")
    width = shape[3]
    f = math.ceil(width / 2.0)
    c = (width - 1) / (2.0 * f)
    i = np.arange(count)
    x = i % width
    y = (i // width) % shape[2]
    return ((1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))).reshape(shape)


def fill(target: Any, fp: pb.FillerParameter, rng: np.random.Generator, where: str = "") -> None:
    """Fill a Blob (its data) or a host numpy array in place with the filler ``fp``."""
    from runner.blob import Blob
    if isinstance(target, Blob):
        target.data = make_filler_values(target.shape, fp, rng, where)
    else:
        target[...] = make_filler_values(target.shape, fp, rng, where)
