"""Layer base class (Caffe's Layer<Dtype>). One subclass per Caffe type, registered with
``@register("TypeName")`` from runner.registry.

Life cycle, driven by runner.net.Net:

1. ``__init__(param, backend, phase=..., rng=...)``: keep the LayerParameter; no shapes yet.
2. ``setup(bottoms, tops)``: once. Read the layer's parameters, create learnable blobs in
   ``self.blobs`` (``add_param``) filled by their fillers from ``self.rng`` (the Net's Generator).
3. ``reshape(bottoms, tops)``: before every forward (cheap when the bottom shapes did not change:
   the default caches on them). Default: top shapes from ``netdef.shapes.infer``.
4. ``forward(bottoms, tops)``: computes tops from bottoms on ``self.backend``. Returns None; the
   Net computes the loss as sum over tops of loss_weight * sum(top data) (Caffe's rule).
5. ``backward(tops, propagate_down, bottoms)``: bottom diffs (``=``) where ``propagate_down[i]``,
   parameter diffs (``+=``) where ``self.param_propagate_down[j]``. Loss layers scale by the
   top diff, which the Net sets to the top's loss_weight.

Blobs give backend arrays through ``dev_data``/``dev_diff``; layers only call ``self.backend`` ops.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from netdef.errors import NetDefinitionError
from netdef.shapes import LayerShapes, infer
from proto import caffe_pb2 as pb
from runner.backend.base import Backend
from runner.blob import Blob
from runner.fillers import fill


def phase_name(phase: Any) -> str:
    """'TRAIN' or 'TEST' from a string or a caffe_pb2.Phase value."""
    if isinstance(phase, str):
        p = phase.upper()
        if p not in ("TRAIN", "TEST"):
            raise ValueError(f"phase must be TRAIN or TEST, not {phase!r}")
        return p
    return "TRAIN" if int(phase) == pb.TRAIN else "TEST"


class Layer:
    """Base of every layer. Subclasses override setup/reshape/forward/backward as needed."""

    type: str = ""
    #: Caffe LossLayer subclasses: default loss_weight 1 on top 0, no force-backward to labels
    is_loss: bool = False
    #: runner.backend.replay may record this layer's launches once and re-issue them: set only on classes
    #: whose forward/backward use the same buffers and scalars every iteration and read nothing
    #: from the device on the host (audited; a host copy found while recording still falls back)
    replayable: bool = False

    def __init__(self, param: pb.LayerParameter, backend: Backend, phase: Any = "TEST",
                 rng: np.random.Generator | None = None):
        self.param = param
        self.name = param.name
        self.backend = backend
        self.phase = phase_name(phase)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.blobs: list[Blob] = []
        self.param_propagate_down: list[bool] = []
        self.loss_weights: list[float] = []
        self._shape_key: tuple | None = None
        self._shapes: LayerShapes | None = None
        self._x_copy: Any = None           # bottom 0 kept for backward by keep_input (in place)

    # ------------------------------------------------------------------ helpers
    def error(self, what: str) -> NetDefinitionError:
        """A NetDefinitionError naming this layer and its type."""
        return NetDefinitionError(f"layer '{self.name}' ({self.type}): {what}")

    def infer(self, bottoms: Sequence[Blob], data_shapes: Sequence | None = None) -> LayerShapes:
        """Caffe's shape rules for this layer (netdef.shapes.infer) given the bottoms' shapes."""
        return infer(self.param, [b.shape for b in bottoms], data_shapes)

    def add_param(self, shape: Sequence[int], filler: pb.FillerParameter | None, what: str) -> Blob:
        """Create a learnable blob of ``shape``, filled with ``filler`` (zeros when None)."""
        blob = Blob(self.backend, shape, f"{self.name}/{what}")
        if filler is not None:
            fill(blob, filler, self.rng, where=f"layer '{self.name}' {what}: ")
        self.blobs.append(blob)
        self.param_propagate_down.append(True)
        return blob

    def keep_input(self, bottoms: list[Blob], tops: list[Blob]) -> Any:
        """Bottom 0's data for a backward that reads it: the bottom itself, or, when the layer runs
        in place, a copy taken now (Caffe would silently use the overwritten top instead)."""
        x = bottoms[0].dev_data
        if tops[0] is not bottoms[0]:
            self._x_copy = None
            return x
        be = self.backend
        if self._x_copy is None or tuple(self._x_copy.shape) != tuple(x.shape):
            self._x_copy = be.empty(x.shape)
        be.copy(x, self._x_copy)
        return self._x_copy

    def saved_input(self, bottoms: list[Blob]) -> Any:
        """What the last ``keep_input`` returned (bottom 0's data as the forward saw it)."""
        return self._x_copy if self._x_copy is not None else bottoms[0].dev_data

    def get_rng_state(self) -> Any:
        """State of any random stream this layer draws from in forward (None: deterministic)."""
        return None

    def set_rng_state(self, state: Any) -> None:
        """Restore the state returned by ``get_rng_state`` (gradient checks replay dropout)."""

    def close(self) -> None:
        """Release what the layer holds open (data sources, threads); Net.close() calls it."""

    def seek(self, k: int) -> None:
        """Data layers: the next forward produces batch ``k`` (the solver's exact resume); other
        layers have nothing to seek."""

    def set_shard(self, rank: int, size: int) -> None:
        """Data layers read only rank ``rank``'s share of each batch of a ``size``-process run
        (runner.data.sources); other layers have nothing to split."""

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Whether force_backward may make this bottom receive a gradient (Caffe's
        AllowForceBackward: loss layers refuse their label bottom)."""
        return not (self.is_loss and bottom_index == 1)

    # ------------------------------------------------------------------ life cycle
    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Once, before the first reshape: read params, create learnable blobs."""

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Shape the tops (default: netdef.shapes.infer, cached on the bottom shapes)."""
        key = tuple(b.shape for b in bottoms)
        if key != self._shape_key or self._shapes is None:
            self._shapes = self.infer(bottoms)
            self._shape_key = key
            self.on_reshape(bottoms, tops, self._shapes)
        for t, s in zip(tops, self._shapes.top_shapes):
            if t.shape != s:
                t.reshape(s)

    def on_reshape(self, bottoms: list[Blob], tops: list[Blob], shapes: LayerShapes) -> None:
        """Hook run when the bottom shapes changed (compute geometry, allocate buffers)."""

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        raise NotImplementedError

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        """Default: the layer has no gradient; fine while nothing asks for one."""
        if any(propagate_down):
            raise self.error("has no backward pass but a bottom needs a gradient")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def top_diff_scale(top: Blob) -> float:
    """Host value of a (scalar) loss top's diff: the loss weight the Net set (Caffe reads
    top[0]->cpu_diff()[0])."""
    return float(top.host_diff().reshape(-1)[0])
