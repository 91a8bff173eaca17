"""Axis permutation (the SSD fork's Permute layer; its backward is the inverse permutation).

``y = x.transpose(order)`` for a C-contiguous ``x`` of any rank: output axis k is input axis
``order[k]``. The host merges runs of axes that stay adjacent and in order (NCHW -> NHWC is a
3-axis transpose of (N, C, H*W)), then passes the kernel, per remaining output axis, its size and
the input stride it walks (``out_shape``, ``src_stride``: small int64 device arrays,
``kernels._launch.device_constants``, uploaded once per (shape, order)).

Versions:

- ``permute_v1``: one thread per output element, grid-stride (``kernels._launch.launch_1d``); the
  flat output index is split into coordinates from the last axis, the source offset is their dot
  product with ``src_stride``. Writes are coalesced, reads strided (a gather).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda

from kernels._index import flat_checked
from kernels._launch import device_constants, launch_1d


@cuda.jit
def permute_v1(x, y, out_shape, src_stride):
    """y[i] = x[sum_k coord_k(i) * src_stride[k]], coords of i in ``out_shape``; a thread per
    output element."""
    ndim = out_shape.shape[0]
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        rem = i
        src = 0
        for k in range(ndim - 1, -1, -1):
            d = out_shape[k]
            q = rem // d
            src += (rem - q * d) * src_stride[k]
            rem = q
        y[i] = x[src]


KERNELS: dict[str, tuple[Any, list[str]]] = {
    "permute_v1": (permute_v1, ["void(float32[::1], float32[::1], int64[::1], int64[::1])"]),
}


def merged_axes(shape: Sequence[int], order: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, order) of the same permutation with size-1 axes dropped and runs of input axes that
    stay adjacent and in order merged into one (at least one axis)."""
    keep = [a for a in range(len(shape)) if shape[a] != 1]
    if not keep:
        return (1,), (0,)
    rank = {a: i for i, a in enumerate(keep)}
    sizes = [int(shape[a]) for a in keep]
    ordr = [rank[a] for a in order if a in rank]
    groups: list[list[int]] = []           # runs of consecutive input axes, in output order
    for a in ordr:
        if groups and groups[-1][-1] + 1 == a:
            groups[-1].append(a)
        else:
            groups.append([a])
    starts = sorted(g[0] for g in groups)
    new_index = {s: i for i, s in enumerate(starts)}
    new_shape = [0] * len(groups)
    for g in groups:
        new_shape[new_index[g[0]]] = int(np.prod([sizes[a] for a in g]))
    return tuple(new_shape), tuple(new_index[g[0]] for g in groups)


@functools.lru_cache(maxsize=256)
def _plan(shape: tuple[int, ...], order: tuple[int, ...]) -> tuple[Any, Any]:
    """Device (out_shape, src_stride) for the merged permutation (cached; uploaded once)."""
    mshape, morder = merged_axes(shape, order)
    strides = [1] * len(mshape)
    for k in range(len(mshape) - 2, -1, -1):
        strides[k] = strides[k + 1] * mshape[k + 1]
    return (device_constants(tuple(mshape[a] for a in morder)),
            device_constants(tuple(strides[a] for a in morder)))


def permute(x, y, shape: Sequence[int], order: Sequence[int]) -> None:
    """``y = x.transpose(order)`` with ``x`` C-contiguous of ``shape`` (flat float32 device arrays
    of prod(shape) elements, or any shape of that size)."""
    shape = tuple(int(d) for d in shape)
    order = tuple(int(o) for o in order)
    if sorted(order) != list(range(len(shape))):
        raise ValueError(f"permute: order {order} is not a permutation of {len(shape)} axes")
    total = int(np.prod(shape, dtype=np.int64))
    xf, yf = flat_checked("permute (x)", x, total), flat_checked("permute (y)", y, total)
    if total:
        launch_1d(permute_v1, total, xf, yf, *_plan(shape, order))
