"""Device helpers of the block-per-channel reductions (bias.py, scale.py, batchnorm.py, reduce.py).

- ``BLOCK_THREADS``: threads per reduction block, a power of two for the halving tree (256; the
  simulator runs each thread as a Python thread, so it uses one warp's worth: same code, same tree).
- ``block_sum(partial, tid)``: the sum of the BLOCK_THREADS values in the shared array ``partial``,
  returned to every thread (every thread of the block must call it).
- ``walk_start`` / ``walk_next``: a thread's strided walk over the flat index k = o*inner + i of
  one channel of an (outer, dim, inner) view, without a division per step.
"""
from __future__ import annotations

from numba import cuda

from kernels._launch import SIMULATOR

BLOCK_THREADS = 32 if SIMULATOR else 256


@cuda.jit(device=True, inline=True)
def block_sum(partial, tid):
    """Sum of the BLOCK_THREADS values in shared ``partial``, returned to every thread."""
    cuda.syncthreads()  # every thread's partial is stored before the tree reads its neighbours
    stride = BLOCK_THREADS // 2
    while stride > 0:
        if tid < stride:
            partial[tid] += partial[tid + stride]
        cuda.syncthreads()  # this level's sums are visible before the next level (or the read)
        stride //= 2
    return partial[0]


@cuda.jit(device=True, inline=True)
def walk_start(start, stride, inner):
    """Position (o, i) of flat index ``start`` in an (outer, inner) walk that advances by
    ``stride``, and the per-step increments: the only divisions of a channel loop."""
    o = start // inner
    i = start - o * inner
    o_step = stride // inner
    i_step = stride - o_step * inner
    return o, i, o_step, i_step


@cuda.jit(device=True, inline=True)
def walk_next(o, i, o_step, i_step, inner):
    """(o, i) of the flat index ``stride`` further on (i wraps at most once)."""
    i += i_step
    o += o_step
    if i >= inner:
        i -= inner
        o += 1
    return o, i
