"""Tensor-core primitives for Numba CUDA kernels: warp-level ``mma.sync``, ``ldmatrix`` and the
FP32 -> TF32 / FP16 / BF16 conversions that feed them, with a simulator emulation of each.

numba-cuda has no tensor-core API and no user-level inline PTX; these are ``numba.core.extending
.intrinsic`` functions whose code generation emits LLVM inline assembly (``llvmlite.ir.InlineAsm``)
holding the PTX instruction. Operands travel as 32-bit words (``uint32``): one TF32 value, or two
FP16/BF16 values packed low-to-high.

Per-thread conversions (no warp cooperation):

- ``tf32_round(x) -> uint32``: ``cvt.rna.tf32.f32`` -- round an FP32 value to TF32 (10 explicit
  mantissa bits, round to nearest, ties away from zero); the word is an FP32 bit pattern whose
  low 13 bits are zero.
- ``pack_f16x2(lo, hi) -> uint32``: ``cvt.rn.f16x2.f32`` -- two FP32 values to FP16 (round to
  nearest even), ``lo`` in bits 0-15, ``hi`` in bits 16-31 (the "low to high" element order of
  the mma fragments).
- ``pack_bf16x2(lo, hi) -> uint32``: ``cvt.rn.bf16x2.f32``, the same for BF16 (7 explicit mantissa
  bits, FP32's exponent range).

Warp-collective operations (all 32 lanes of a warp execute them together, ``.sync.aligned``):

- ``mma_tf32(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3) -> (d0, d1, d2, d3)``:
  ``mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32``, D (16x8) = A (16x8) @ B (8x8) + C in FP32.
- ``mma_f16(...)`` / ``mma_bf16(...)``: ``mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,
  bf16}.f32``, D (16x8) = A (16x16) @ B (16x8) + C, FP16/BF16 inputs, FP32 accumulation. Same
  argument list: four A words, two B words, four FP32 accumulators.
- ``ldmatrix_x4(S, i) -> (r0, r1, r2, r3)``: ``ldmatrix.sync.aligned.m8n8.x4.shared.b16`` from a
  1-D ``uint32`` shared-memory array ``S``. Lane ``l`` passes the index ``i`` of one 16-byte row
  (4 words, ``i`` a multiple of 4): lanes 8q..8q+7 give the 8 rows of matrix q. Register ``rq`` of
  lane ``l`` receives word ``l % 4`` of row ``l // 4`` of matrix q -- exactly the word an mma
  fragment wants when the operand is stored k-contiguous (see below).

Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8 / mma.m16n8k16"), with
``g = lane >> 2`` (groupID) and ``t = lane % 4`` (threadID_in_group):

- m16n8k8 .tf32: A: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4];
  B: b0 = B[t][g], b1 = B[t+4][g].
- m16n8k16 .f16/.bf16: A word 0 = A[g][2t..2t+1], word 1 = A[g+8][2t..2t+1], word 2 =
  A[g][2t+8..2t+9], word 3 = A[g+8][2t+8..2t+9]; B word 0 = B[2t..2t+1][g], word 1 =
  B[2t+8..2t+9][g] (lower k in the low half).
- C/D (both shapes, .f32): c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1].

Counted in 32-bit words along k, the two layouts coincide: with A stored as rows of k-words
(``As[m][kw]``) and B as ``Bs[n][kw]``, every A word a lane needs is ``As[g (+8)][t (+4)]`` and
every B word ``Bs[g][t (+4)]`` for both shapes -- one word holds one k for TF32 and two for FP16/
BF16. ``kernels/gemm_tc.py`` relies on this (one kernel body, the precision picks the converter and
the mma).

Simulator (NUMBA_ENABLE_CUDASIM=1): every CUDA thread is a Python thread, so a warp-collective
operation is emulated by an exchange per warp: each lane deposits its operands, the last lane to
arrive at a ``threading.Barrier`` of the warp's 32 lanes computes all 32 results (assembling the
matrices with the layout tables above), and each lane takes its own. Rounds alternate between two
slots, so one barrier per operation is enough (a lane can only reuse a slot after every lane has
passed the next round's barrier, i.e. has read its result). The emulated mma converts the words
back to values (TF32 words with their low 13 bits cleared, as the tensor cores ignore them),
forms the products exactly and the sum in float64, and rounds the result to FP32 once; hardware
may round its internal sum differently (``kernels/gemm_tc.py``'s error bound covers both). Every
lane of the block's warps must reach the same collective operation: a lane that never arrives
(divergent control flow, a block whose size is not a multiple of 32) raises after
``WARP_TIMEOUT_S``; lanes calling different operations, misaligned ``ldmatrix`` rows or rows
outside the array raise at once.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from kernels._launch import SIMULATOR

WARP = 32
WARP_TIMEOUT_S = 300.0       # simulator: a lane missing from a collective op fails after this long

_MMA_TF32 = ("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
             "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};")
_MMA_F16 = ("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};")
_MMA_BF16 = ("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
             "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};")
_LDMATRIX_X4 = "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {$0,$1,$2,$3}, [$4];"


# ----------------------------------------------------------------------------------------------
# GPU: numba intrinsics emitting inline PTX
# ----------------------------------------------------------------------------------------------

def _intrinsics() -> dict[str, Any]:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    i32 = ir.IntType(32)
    f32 = ir.FloatType()

    def _words(context, builder, vals, tys):
        return [context.cast(builder, v, t, types.uint32) for v, t in zip(vals, tys)]

    def _floats(context, builder, vals, tys):
        return [context.cast(builder, v, t, types.float32) for v, t in zip(vals, tys)]

    def _is_int(*tys) -> bool:
        return all(isinstance(t, types.Integer) for t in tys)

    def _is_num(*tys) -> bool:
        return all(isinstance(t, (types.Integer, types.Float)) for t in tys)

    @intrinsic
    def tf32_round(typingctx, x):
        if not _is_num(x):
            return None

        def codegen(context, builder, signature, args):
            (v,) = _floats(context, builder, args, signature.args)
            asm = ir.InlineAsm(ir.FunctionType(i32, [f32]), "cvt.rna.tf32.f32 $0, $1;", "=r,f")
            return builder.call(asm, [v])

        return types.uint32(x), codegen

    def _pack(op: str):
        @intrinsic
        def pack(typingctx, lo, hi):
            if not _is_num(lo, hi):
                return None

            def codegen(context, builder, signature, args):
                lo_v, hi_v = _floats(context, builder, args, signature.args)
                # cvt.rn.{f16x2,bf16x2}.f32 d, a, b puts a in the upper half, b in the lower
                asm = ir.InlineAsm(ir.FunctionType(i32, [f32, f32]), f"cvt.rn.{op}.f32 $0, $1, $2;",
                                   "=r,f,f")
                return builder.call(asm, [hi_v, lo_v])

            return types.uint32(lo, hi), codegen
        return pack

    def _mma(text: str):
        ret = types.UniTuple(types.float32, 4)

        @intrinsic
        def mma(typingctx, a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
            if not (_is_int(a0, a1, a2, a3, b0, b1) and _is_num(c0, c1, c2, c3)):
                return None

            def codegen(context, builder, signature, args):
                vals = _words(context, builder, args[:6], signature.args[:6])
                vals += _floats(context, builder, args[6:], signature.args[6:])
                fnty = ir.FunctionType(ir.LiteralStructType([f32] * 4), [i32] * 6 + [f32] * 4)
                # no side effect: a pure register operation that LLVM may schedule freely
                asm = ir.InlineAsm(fnty, text, "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f")
                out = builder.call(asm, vals)
                return context.make_tuple(builder, ret, [builder.extract_value(out, k) for k in range(4)])

            return ret(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3), codegen
        return mma

    ret4 = types.UniTuple(types.uint32, 4)

    @intrinsic
    def ldmatrix_x4(typingctx, arr, i):
        if not (isinstance(arr, types.Array) and arr.dtype == types.uint32 and arr.ndim == 1
                and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            aty, ity = signature.args
            ary = context.make_array(aty)(context, builder, args[0])
            ind = context.cast(builder, args[1], ity, types.intp)
            ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                            shape=cgutils.unpack_tuple(builder, ary.shape),
                                            strides=cgutils.unpack_tuple(builder, ary.strides),
                                            layout=aty.layout, inds=[ind], wraparound=False,
                                            boundscheck=False)
            # generic -> shared address space, then the 32-bit shared address ldmatrix takes
            addr = builder.ptrtoint(builder.addrspacecast(ptr, ir.PointerType(i32, 3)), i32)
            # side effect: it reads shared memory, so it must stay between the barriers around it
            asm = ir.InlineAsm(ir.FunctionType(ir.LiteralStructType([i32] * 4), [i32]), _LDMATRIX_X4,
                               "=r,=r,=r,=r,r", side_effect=True)
            out = builder.call(asm, [addr])
            return context.make_tuple(builder, ret4, [builder.extract_value(out, k) for k in range(4)])

        return ret4(arr, i), codegen

    return {"tf32_round": tf32_round, "pack_f16x2": _pack("f16x2"), "pack_bf16x2": _pack("bf16x2"),
            "mma_tf32": _mma(_MMA_TF32), "mma_f16": _mma(_MMA_F16), "mma_bf16": _mma(_MMA_BF16),
            "ldmatrix_x4": ldmatrix_x4}


# ----------------------------------------------------------------------------------------------
# Simulator: emulation with the PTX ISA's fragment layouts
# ----------------------------------------------------------------------------------------------

_U32 = np.uint32


def tf32_round_host(x) -> np.uint32:
    """``cvt.rna.tf32.f32`` on the host: add half a TF32 ulp (0x1000) to the bit pattern of a
    finite value (a carry into the exponent is the correct rounding, overflow gives inf), then
    clear the low 13 bits; inf and NaN are only masked (the sm_8x/sm_90 instruction sequence)."""
    bits = int(np.float32(x).view(_U32))
    if (bits & 0x7F800000) != 0x7F800000:
        bits = (bits + 0x1000) & 0xFFFFFFFF
    return _U32(bits & 0xFFFFE000)


def _bf16_bits(x) -> int:
    """FP32 -> BF16 bits, round to nearest even (``cvt.rn.bf16.f32``); NaN -> canonical 0x7FFF."""
    bits = int(np.float32(x).view(_U32))
    if (bits & 0x7F800000) == 0x7F800000 and bits & 0x007FFFFF:
        return 0x7FFF
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF


def _f16_bits(x) -> int:
    """FP32 -> FP16 bits, round to nearest even (numpy's conversion is IEEE RNE)."""
    with np.errstate(over="ignore"):
        return int(np.float16(np.float32(x)).view(np.uint16))


def pack_f16x2_host(lo, hi) -> np.uint32:
    return _U32(_f16_bits(lo) | (_f16_bits(hi) << 16))


def pack_bf16x2_host(lo, hi) -> np.uint32:
    return _U32(_bf16_bits(lo) | (_bf16_bits(hi) << 16))


def words_to_values(words: np.ndarray, kind: str) -> np.ndarray:
    """float64 values of operand words: ``kind`` "tf32" -> one value per word (low 13 bits
    ignored); "f16"/"bf16" -> two per word, the low half first (shape [..., 2*n])."""
    w = np.asarray(words, dtype=np.uint32)
    if kind == "tf32":
        return (w & _U32(0xFFFFE000)).view(np.float32).astype(np.float64)
    halves = np.stack([w & _U32(0xFFFF), w >> _U32(16)], axis=-1).reshape(*w.shape[:-1], -1)
    if kind == "f16":
        return halves.astype(np.uint16).view(np.float16).astype(np.float64)
    return (halves << _U32(16)).astype(np.uint32).view(np.float32).astype(np.float64)


def _lane_grid() -> tuple[np.ndarray, np.ndarray]:
    lanes = np.arange(WARP)
    return lanes >> 2, lanes & 3           # groupID, threadID_in_group


def _mma_compute(kind: str, inputs: list) -> list:
    """All 32 lanes' D fragments of one warp-level mma (``kind`` tf32: m16n8k8, f16/bf16:
    m16n8k16). ``inputs[lane]`` = (a0, a1, a2, a3, b0, b1, c0, c1, c2, c3)."""
    ops = np.array([[int(v) for v in x[:6]] for x in inputs], dtype=np.uint32)      # (32, 6) words
    c = np.array([[np.float32(v) for v in x[6:]] for x in inputs], dtype=np.float64)  # (32, 4)
    g, t = _lane_grid()
    if kind == "tf32":
        K = 8
        a = words_to_values(ops[:, 0:4], "tf32")                 # (32, 4) values
        b = words_to_values(ops[:, 4:6], "tf32")                 # (32, 2)
        A = np.zeros((16, K))
        B = np.zeros((K, 8))
        A[g, t], A[g + 8, t], A[g, t + 4], A[g + 8, t + 4] = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        B[t, g], B[t + 4, g] = b[:, 0], b[:, 1]
    else:
        K = 16
        a = words_to_values(ops[:, 0:4], kind)                   # (32, 8): word w -> halves 2w, 2w+1
        b = words_to_values(ops[:, 4:6], kind)                   # (32, 4)
        A = np.zeros((16, K))
        B = np.zeros((K, 8))
        for h in (0, 1):
            A[g, 2 * t + h] = a[:, 0 + h]
            A[g + 8, 2 * t + h] = a[:, 2 + h]
            A[g, 2 * t + 8 + h] = a[:, 4 + h]
            A[g + 8, 2 * t + 8 + h] = a[:, 6 + h]
            B[2 * t + h, g] = b[:, 0 + h]
            B[2 * t + 8 + h, g] = b[:, 2 + h]
    C = np.zeros((16, 8))
    C[g, 2 * t], C[g, 2 * t + 1], C[g + 8, 2 * t], C[g + 8, 2 * t + 1] = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    with np.errstate(over="ignore", invalid="ignore"):
        D = (A @ B + C).astype(np.float32)                       # exact products, one rounding
    return [(D[g[l], 2 * t[l]], D[g[l], 2 * t[l] + 1], D[g[l] + 8, 2 * t[l]], D[g[l] + 8, 2 * t[l] + 1])
            for l in range(WARP)]


def _ldmatrix_compute(inputs: list) -> list:
    """All lanes' registers of ``ldmatrix.x4``: lane l's register q = word l%4 of the row whose
    index lane 8q + l//4 passed. ``inputs[lane]`` = (array, index)."""
    arr = inputs[0][0]
    if any(x[0] is not arr for x in inputs):
        raise RuntimeError("ldmatrix_x4: the lanes of a warp passed different arrays")
    rows = [int(x[1]) for x in inputs]
    for lane, i in enumerate(rows):
        if i % 4 or i < 0 or i + 4 > arr.shape[0]:
            raise RuntimeError(f"ldmatrix_x4: lane {lane} row index {i} is not a 16-byte aligned row "
                               f"inside the array of {arr.shape[0]} words")
    return [tuple(_U32(arr[rows[8 * q + lane // 4] + lane % 4]) for q in range(4)) for lane in range(WARP)]


_COLLECTIVES = {
    "mma_tf32": lambda inputs: _mma_compute("tf32", inputs),
    "mma_f16": lambda inputs: _mma_compute("f16", inputs),
    "mma_bf16": lambda inputs: _mma_compute("bf16", inputs),
    "ldmatrix_x4": _ldmatrix_compute,
}


class _WarpExchange:
    """One warp's meeting point for collective operations in the simulator (module docstring)."""

    def __init__(self, block: tuple[int, int, int], warp: int):
        self.block = block
        self.warp = warp
        self.calls = [0] * WARP
        self.inputs: list[list] = [[None] * WARP, [None] * WARP]
        self.outputs: list[list] = [[None] * WARP, [None] * WARP]
        self.parity = 0
        self.error: BaseException | None = None
        self.barrier = threading.Barrier(WARP, action=self._compute, timeout=WARP_TIMEOUT_S)

    def _compute(self) -> None:
        inputs = self.inputs[self.parity]
        op = inputs[0][0]
        try:
            if any(x[0] != op for x in inputs):
                raise RuntimeError(f"warp {self.warp}: lanes reached different collective operations "
                                   f"{sorted({x[0] for x in inputs})}")
            self.outputs[self.parity] = _COLLECTIVES[op]([x[1] for x in inputs])
        except BaseException as exc:      # reported to every lane by run()
            self.error = exc
            raise

    def run(self, lane: int, op: str, args: tuple) -> Any:
        p = self.calls[lane] & 1
        self.calls[lane] += 1
        self.inputs[p][lane] = (op, args)
        self.parity = p                   # every lane of a round writes the same value
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            if self.error is not None:
                raise RuntimeError(f"{op} (block {self.block}, warp {self.warp}): {self.error}") from None
            raise RuntimeError(f"{op} (block {self.block}, warp {self.warp}): not every lane of the warp "
                               f"reached it within {WARP_TIMEOUT_S:.0f} s (divergent lanes, or a block "
                               f"size that is not a multiple of {WARP})") from None
        return self.outputs[p][lane]


_exchange_lock = threading.Lock()


def _collective(op: str, args: tuple) -> Any:
    """Run warp-collective ``op`` for the calling simulator thread (module docstring)."""
    me = threading.current_thread()
    manager = getattr(me, "_manager", None)
    if manager is None:
        raise RuntimeError(f"{op}: called outside a simulated kernel")
    dims = manager._block_dim
    if (dims[0] * dims[1] * dims[2]) % WARP:
        raise RuntimeError(f"{op}: block {tuple(dims)} is not a whole number of warps")
    block = (me.blockIdx.x, me.blockIdx.y, me.blockIdx.z)
    warp, lane = divmod(me.thread_id, WARP)
    with _exchange_lock:
        table = manager.__dict__.setdefault("_nbcaffe_warps", {})
        ex = table.get(warp)
        if ex is None or ex.block != block:    # blocks run one after another in the simulator
            ex = table[warp] = _WarpExchange(block, warp)
    return ex.run(lane, op, args)


def _sim_functions() -> dict[str, Any]:
    def mma_tf32(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
        return _collective("mma_tf32", (a0, a1, a2, a3, b0, b1, c0, c1, c2, c3))

    def mma_f16(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
        return _collective("mma_f16", (a0, a1, a2, a3, b0, b1, c0, c1, c2, c3))

    def mma_bf16(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
        return _collective("mma_bf16", (a0, a1, a2, a3, b0, b1, c0, c1, c2, c3))

    def ldmatrix_x4(arr, i):
        return _collective("ldmatrix_x4", (arr, i))

    return {"tf32_round": tf32_round_host, "pack_f16x2": pack_f16x2_host, "pack_bf16x2": pack_bf16x2_host,
            "mma_tf32": mma_tf32, "mma_f16": mma_f16, "mma_bf16": mma_bf16, "ldmatrix_x4": ldmatrix_x4}


_impl = _sim_functions() if SIMULATOR else _intrinsics()
tf32_round = _impl["tf32_round"]
pack_f16x2 = _impl["pack_f16x2"]
pack_bf16x2 = _impl["pack_bf16x2"]
mma_tf32 = _impl["mma_tf32"]
mma_f16 = _impl["mma_f16"]
mma_bf16 = _impl["mma_bf16"]
ldmatrix_x4 = _impl["ldmatrix_x4"]

