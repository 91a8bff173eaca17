"""Weight fillers with Caffe's formulas (caffe/filler.hpp), drawn from a numpy Generator.

``fill(blob_or_array, filler_param, rng)`` fills in place. Types: constant, uniform, gaussian
(with ``sparse``), positive_unitball, xavier, msra, bilinear. For xavier/msra:
fan_in = count / shape[0], fan_out = count / shape[1] (count for a 1-D blob), and ``variance_norm``
picks n = fan_in (FAN_IN, default), fan_out (FAN_OUT) or their mean (AVERAGE);
xavier draws U(-sqrt(3/n), sqrt(3/n)), msra draws N(0, sqrt(2/n)).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from netdef.errors import NetDefinitionError
from proto import caffe_pb2 as pb

FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra", "bilinear")


def _fan_n(shape: tuple[int, ...], fp: pb.FillerParameter) -> float:
    count = math.prod(shape)
    if len(shape) == 0 or shape[0] == 0:
        raise NetDefinitionError(f"{fp.type} filler needs a blob with a nonzero first axis, got {shape}")
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    if fp.variance_norm == pb.FillerParameter.FAN_OUT:
        return float(fan_out)
    if fp.variance_norm == pb.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return float(fan_in)


def make_filler_values(shape: tuple[int, ...], fp: pb.FillerParameter, rng: np.random.Generator,
                       where: str = "") -> np.ndarray:
    """A float64 array of ``shape`` drawn as Caffe's ``fp.type`` filler would fill it."""
    shape = tuple(int(s) for s in shape)
    t = fp.type
    count = math.prod(shape)
    if t == "constant":
        return np.full(shape, fp.value, dtype=np.float64)
    if t == "uniform":
        return rng.uniform(fp.min, fp.max, size=shape)
    if t == "gaussian":
        v = rng.normal(fp.mean, fp.std, size=shape)
        if fp.sparse >= 0:
            if len(shape) < 1 or shape[0] == 0:
                raise NetDefinitionError(f"{where}gaussian filler with sparse needs a blob with >= 1 axis")
            p = fp.sparse / shape[0]
            v *= rng.random(size=shape) < p
        return v
    if t == "positive_unitball":
        v = rng.uniform(0.0, 1.0, size=shape)
        num = shape[0] if shape else 1
        rows = v.reshape(num, -1)
        rows /= rows.sum(axis=1, keepdims=True)
        return v
    if t == "xavier":
        scale = math.sqrt(3.0 / _fan_n(shape, fp))
        return rng.uniform(-scale, scale, size=shape)
    if t == "msra":
        std = math.sqrt(2.0 / _fan_n(shape, fp))
        return rng.normal(0.0, std, size=shape)
    if t == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise NetDefinitionError(f"{where}bilinear filler needs a 4-D blob with square kernels, "
                                     f"got {shape}")
        width = shape[3]
        f = math.ceil(width / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        i = np.arange(count)
        x = i % width
        y = (i // width) % shape[2]
        return ((1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))).reshape(shape)
    raise NetDefinitionError(f"{where}unknown filler type {t!r}; known: {', '.join(FILLER_TYPES)}")


def fill(target: Any, fp: pb.FillerParameter, rng: np.random.Generator, where: str = "") -> None:
    """Fill a Blob (its data) or a host numpy array in place with the filler ``fp``."""
    from runner.blob import Blob
    if isinstance(target, Blob):
        target.data = make_filler_values(target.shape, fp, rng, where)
    else:
        target[...] = make_filler_values(target.shape, fp, rng, where)
