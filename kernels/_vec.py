"""128-bit loads and stores of four consecutive float32 elements of a 1-D array.

- ``load4(x, i)`` -> ``(x[i], x[i+1], x[i+2], x[i+3])`` with one ``ld.global.v4.f32``;
- ``store4(y, i, a, b, c, d)``: ``y[i:i+4] = (a, b, c, d)`` with one ``st.global.v4.f32``.

Both are numba ``@intrinsic`` functions that emit an LLVM ``<4 x float>`` load/store with align 16
(NVPTX lowers it to the vector instruction; no inline PTX). The caller guarantees that ``&x[i]`` is
16-byte aligned (the array's base pointer is, and ``i`` is a multiple of 4) and that ``i + 3`` is in
bounds: there is no bounds or wraparound check. In the CUDA simulator both are four scalar accesses,
so the kernels that use them run unchanged there. ``aligned16(*arrays)`` is the host-side check.

Why: an elementwise kernel on an H200 needs ~30 KB of loads in flight per SM to cover DRAM
latency; 16-byte loads give each thread four elements per instruction (the same bytes in flight
with a quarter of the memory instructions and address arithmetic of 4-byte loads).
"""
from __future__ import annotations

from typing import Any

from numba import cuda

from kernels._launch import SIMULATOR, as_device


def aligned16(*arrays: Any) -> bool:
    """True when every array's device pointer is a multiple of 16 bytes (always in the simulator)."""
    if SIMULATOR:
        return True
    for a in arrays:
        if as_device(a).__cuda_array_interface__["data"][0] % 16:
            return False
    return True


def _intrinsics():
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    vec4 = ir.VectorType(ir.FloatType(), 4)

    def _ptr(context, builder, aty, ary_val, idx_val, ity):
        ary = context.make_array(aty)(context, builder, ary_val)
        ind = context.cast(builder, idx_val, ity, types.intp)
        ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                        shape=cgutils.unpack_tuple(builder, ary.shape),
                                        strides=cgutils.unpack_tuple(builder, ary.strides),
                                        layout=aty.layout, inds=[ind], wraparound=False,
                                        boundscheck=False)
        return builder.bitcast(ptr, vec4.as_pointer())

    def _is_f32_1d(arr) -> bool:
        return isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 1

    @intrinsic
    def load4(typingctx, arr, i):
        if not _is_f32_1d(arr) or not isinstance(i, types.Integer):
            return None
        ret = types.UniTuple(types.float32, 4)

        def codegen(context, builder, signature, args):
            p = _ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
            v = builder.load(p, align=16)
            vals = [builder.extract_element(v, ir.Constant(ir.IntType(32), k)) for k in range(4)]
            return context.make_tuple(builder, ret, vals)

        return ret(arr, i), codegen

    @intrinsic
    def store4(typingctx, arr, i, a, b, c, d):
        if not _is_f32_1d(arr) or not isinstance(i, types.Integer):
            return None
        if not all(t == types.float32 for t in (a, b, c, d)):
            return None

        def codegen(context, builder, signature, args):
            p = _ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
            v = ir.Constant(vec4, ir.Undefined)
            for k in range(4):
                v = builder.insert_element(v, args[2 + k], ir.Constant(ir.IntType(32), k))
            builder.store(v, p, align=16)
            return context.get_dummy_value()

        return types.void(arr, i, a, b, c, d), codegen

    return load4, store4


@cuda.jit(device=True, inline=True)
def _load4_scalar(x, i):
    """Simulator stand-in: four scalar loads."""
    return x[i], x[i + 1], x[i + 2], x[i + 3]


@cuda.jit(device=True, inline=True)
def _store4_scalar(y, i, a, b, c, d):
    """Simulator stand-in: four scalar stores."""
    y[i] = a
    y[i + 1] = b
    y[i + 2] = c
    y[i + 3] = d


if SIMULATOR:
    load4, store4 = _load4_scalar, _store4_scalar
else:
    load4, store4 = _intrinsics()
