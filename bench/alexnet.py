"""AlexNet's layer geometry (bvlc_alexnet/train_val.prototxt at batch 256), shared by the benchmarks.

Each convolution's im2col GEMMs (Caffe's BaseConvolutionLayer, per group g; ``Nc`` images per column
buffer, ``Kc = Cin/group * kh * kw``, ``P = OH * OW``):

- forward:         Y_g (Cout/g, Nc*P) = W_g (Cout/g, Kc) @ col_g (Kc, Nc*P)   M=Cout/g N=Nc*P K=Kc
- weight gradient: dW_g (Cout/g, Kc) += dY_g (Cout/g, Nc*P) @ col_g^T            M=Cout/g N=Kc K=Nc*P
- data gradient:   dcol_g (Kc, Nc*P) = W_g^T @ dY_g                              M=Kc N=Nc*P K=Cout/g

FLOPs of one convolution pass (forward, or each of the two backward GEMMs) =
2 * batch * Cout * P * Kc (the group factor is inside Kc).
The dry run uses a tiny net of the same structure (5 convs, grouped 2/4/5, same kernel sizes where
they fit) so every code path runs in the simulator.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.common import DRY


@dataclass(frozen=True)
class Conv:
    """One convolution layer: input (n, cin, h, w), cout filters of k x k, stride, pad, group."""
    name: str
    n: int
    cin: int
    h: int
    w: int
    cout: int
    k: int
    stride: int = 1
    pad: int = 0
    group: int = 1

    @property
    def oh(self) -> int:
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pad - self.k) // self.stride + 1

    @property
    def kc(self) -> int:
        """Rows of one group's column buffer: Cin/group * kh * kw."""
        return self.cin // self.group * self.k * self.k

    @property
    def flops(self) -> int:
        """FLOPs of the forward pass (multiply + add): 2 * n * cout * oh * ow * kc."""
        return 2 * self.n * self.cout * self.oh * self.ow * self.kc

    def gemm_shapes(self, chunk: int) -> dict[str, tuple[int, int, int, bool, bool]]:
        """(M, N, K, trans_a, trans_b) of the three per-group GEMMs with ``chunk`` images per column
        buffer (see the module docstring)."""
        m = self.cout // self.group
        ncol = chunk * self.oh * self.ow
        return {"fwd": (m, ncol, self.kc, False, False),
                "bwd_w": (m, self.kc, ncol, False, True),
                "bwd_d": (self.kc, ncol, m, True, False)}


def conv_layers(batch: int | None = None) -> list[Conv]:
    """AlexNet's five convolutions at ``batch`` (default 256), or the dry run's tiny stand-ins."""
    if DRY:
        n = batch or 2
        return [Conv("conv1", n, 3, 11, 11, 4, 5, 2, 0, 1),
                Conv("conv2", n, 4, 4, 4, 4, 3, 1, 1, 2),
                Conv("conv3", n, 4, 3, 3, 6, 3, 1, 1, 1),
                Conv("conv4", n, 6, 3, 3, 6, 3, 1, 1, 2),
                Conv("conv5", n, 6, 3, 3, 4, 3, 1, 1, 2)]
    n = batch or 256
    return [Conv("conv1", n, 3, 227, 227, 96, 11, 4, 0, 1),
            Conv("conv2", n, 96, 27, 27, 256, 5, 1, 2, 2),
            Conv("conv3", n, 256, 13, 13, 384, 3, 1, 1, 1),
            Conv("conv4", n, 384, 13, 13, 384, 3, 1, 1, 2),
            Conv("conv5", n, 384, 13, 13, 256, 3, 1, 1, 2)]


def conv_chunk(layer: Conv) -> int:
    """Images per column buffer that kernels/conv.py uses for ``layer``
    (``chunk_images(N, C*kh*kw, OH*OW, cap)`` with the cuda backend's cap for this device); 1
    (Caffe's one image per im2col) when conv.py is absent."""
    try:
        from kernels import conv as kconv
    except Exception:  # noqa: BLE001 - conv.py absent or broken: Caffe's rule
        return 1
    fn = getattr(kconv, "chunk_images", None)
    if not callable(fn):
        return 1
    try:
        from runner.backend.cuda import conv_workspace_bytes
        cap = conv_workspace_bytes()
    except Exception:  # noqa: BLE001 - backend absent: the kernel module's default cap
        cap = getattr(kconv, "MAX_COL_BYTES", 256 << 20)
    return int(fn(layer.n, layer.cin * layer.k * layer.k, layer.oh * layer.ow, cap))
