"""128-bit loads and stores of four consecutive float32 elements.

- ``load4(x, *idx)`` -> the four elements starting at ``x[idx]`` along the last axis, with one
  ``ld.global.v4.f32``: ``load4(x, i)`` of a 1-D array is ``(x[i], ..., x[i+3])``, ``load4(X, i, j)``
  of a 2-D array (any row stride) is ``(X[i, j], ..., X[i, j+3])``;
- ``store4(y, i, a, b, c, d)``: ``y[i:i+4] = (a, b, c, d)`` of a 1-D array with one
  ``st.global.v4.f32``.

Both are numba ``@intrinsic`` functions emitting an LLVM ``<4 x float>`` load/store with align 16
(NVPTX lowers it to the vector instruction; no inline PTX). The caller guarantees that the first
element's address is 16-byte aligned and that all four are in bounds, with non-negative indices:
there is no bounds or wraparound check. In the CUDA simulator both are four scalar accesses, so the
kernels that use them run unchanged there. ``aligned16(*arrays)`` is the host-side check of base
pointers and row pitches.
"""
from __future__ import annotations

from typing import Any

from numba import cuda

from kernels._launch import SIMULATOR, as_device


def aligned16(*arrays: Any) -> bool:
    """True when every array's device pointer, and the row pitch of every 2-D array with more than
    one row, is a multiple of 16 bytes (runs of 4 floats starting at a column that is a multiple
    of 4 are then aligned)."""
    for a in arrays:
        d = as_device(a)
        ptr = d.__cuda_array_interface__["data"][0] if not SIMULATOR else 0
        if ptr % 16 or (len(d.shape) == 2 and d.shape[0] > 1 and d.strides[0] % 16):
            return False
    return True


def _intrinsics():
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    vec4 = ir.VectorType(ir.FloatType(), 4)

    def _ptr(context, builder, aty, ary_val, index_vals, index_types):
        ary = context.make_array(aty)(context, builder, ary_val)
        inds = [context.cast(builder, v, t, types.intp) for v, t in zip(index_vals, index_types)]
        ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                        shape=cgutils.unpack_tuple(builder, ary.shape),
                                        strides=cgutils.unpack_tuple(builder, ary.strides),
                                        layout=aty.layout, inds=inds, wraparound=False,
                                        boundscheck=False)
        return builder.bitcast(ptr, vec4.as_pointer())

    def _f32_array(arr, ndim: int) -> bool:
        return isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == ndim

    @intrinsic
    def load4(typingctx, arr, *idx):
        if not _f32_array(arr, len(idx)) or not all(isinstance(i, types.Integer) for i in idx):
            return None
        ret = types.UniTuple(types.float32, 4)

        def codegen(context, builder, signature, args):
            index_types = signature.args[1].types
            p = _ptr(context, builder, signature.args[0], args[0],
                     cgutils.unpack_tuple(builder, args[1]), index_types)
            v = builder.load(p, align=16)
            vals = [builder.extract_element(v, ir.Constant(ir.IntType(32), k)) for k in range(4)]
            return context.make_tuple(builder, ret, vals)

        return ret(arr, types.StarArgTuple.from_types(idx)), codegen

    @intrinsic
    def store4(typingctx, arr, i, a, b, c, d):
        if not _f32_array(arr, 1) or not isinstance(i, types.Integer):
            return None
        if not all(t == types.float32 for t in (a, b, c, d)):
            return None

        def codegen(context, builder, signature, args):
            p = _ptr(context, builder, signature.args[0], args[0], [args[1]], [signature.args[1]])
            v = ir.Constant(vec4, ir.Undefined)
            for k in range(4):
                v = builder.insert_element(v, args[2 + k], ir.Constant(ir.IntType(32), k))
            builder.store(v, p, align=16)
            return context.get_dummy_value()

        return types.void(arr, i, a, b, c, d), codegen

    return load4, store4


def _load4_scalar(x, *idx):
    """Simulator stand-in: four scalar loads."""
    *head, last = idx
    return (x[(*head, last)], x[(*head, last + 1)], x[(*head, last + 2)], x[(*head, last + 3)])


def _store4_scalar(y, i, a, b, c, d):
    """Simulator stand-in: four scalar stores."""
    y[i] = a
    y[i + 1] = b
    y[i + 2] = c
    y[i + 3] = d


if SIMULATOR:
    load4 = cuda.jit(device=True, inline=True)(_load4_scalar)
    store4 = cuda.jit(device=True, inline=True)(_store4_scalar)
else:
    load4, store4 = _intrinsics()
