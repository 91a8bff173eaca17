"""Index arithmetic shared by the kernel modules.

- ``flat(arr)``: a 1-D device view of a C-contiguous device array (no copy);
  ``flat_checked(who, arr, n, dtype)`` the same after checking that it holds ``n`` values of
  ``dtype`` (float32 by default); ``as_ncs(arr)``: an (N, C, ...) one viewed as (N, C, S).
- ``INT32_LIMIT``: kernels that index in int32 need every flat index below it (checked on the host).
- ``magic_div(d)`` (host) and ``udiv31(n, m, s)`` (device): ``n // d`` for 0 <= n < 2**31 as a
  multiply and a shift by host-computed magic numbers (a runtime 64-bit ``//`` is a long
  instruction sequence on the GPU, and numba types ``int32 // int32`` as int64).
- ``udiv32(a, b)`` (device): ``a // b`` as one ``div.u32`` for a, b >= 0 (plain ``//`` in the
  simulator).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, int32, uint32, uint64

from kernels._launch import SIMULATOR, as_device

INT32_LIMIT = 2**31


def flat(arr: Any) -> Any:
    """``arr`` as a 1-D numba device array view (no copy); C-contiguous input required."""
    d = as_device(arr)
    if d.ndim != 1:
        d = d.reshape(d.size)
    return d


def flat_checked(who: str, arr: Any, n: int | None = None, dtype: Any = np.float32) -> Any:
    """``flat(arr)`` of an array of ``dtype``, with ``n`` elements when given: TypeError (another
    dtype) or ValueError (another size) naming ``who``."""
    d = flat(arr)
    if d.dtype != dtype:
        raise TypeError(f"{who}: expected {np.dtype(dtype).name} arrays, got {d.dtype}")
    if n is not None and d.size != n:
        raise ValueError(f"{who}: expected {n} values, got {d.size}")
    return d


def as_ncs(arr: Any) -> Any:
    """View a C-contiguous (N, C, ...) device array as (N, C, S), S = product of the rest."""
    arr = as_device(arr)
    if len(arr.shape) == 3:
        return arr
    if len(arr.shape) < 2:
        raise ValueError(f"expected an (N, C, ...) array, got shape {arr.shape}")
    S = int(np.prod(arr.shape[2:], dtype=np.int64))
    return arr.reshape(arr.shape[0], arr.shape[1], S)


def magic_div(d: int) -> tuple[np.uint32, np.int32]:
    """(m, s) with ``n // d == (n * m) >> s`` for every 0 <= n < 2**31 (Granlund-Montgomery,
    round-up variant for 31-bit numerators: s = 31 + ceil(log2 d), m = ceil(2**s / d) < 2**32).
    ``d`` in [1, 2**31)."""
    if not 1 <= d < INT32_LIMIT:
        raise ValueError(f"magic_div: divisor {d} outside [1, 2**31)")
    s = 31 + (d - 1).bit_length()
    m = ((1 << s) + d - 1) // d
    return np.uint32(m), np.int32(s)


@cuda.jit(device=True)
def udiv31(n, m, s):
    """n // d for 0 <= n < 2**31 from d's ``magic_div`` (m, s): a 32x32->64 multiply of two
    zero-extended words and a shift."""
    return int32((uint64(uint32(n)) * uint64(m)) >> uint64(s))


if SIMULATOR:
    def udiv32(a, b):
        """a // b for a, b >= 0 (simulator: plain Python)."""
        return a // b
else:
    from numba.core import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def udiv32(typingctx, a, b):
        """a // b as one ``div.u32`` (a, b >= 0; arguments are converted to int32)."""
        sig = types.int32(types.int32, types.int32)

        def codegen(context, builder, signature, args):
            return builder.udiv(args[0], args[1])
        return sig, codegen
