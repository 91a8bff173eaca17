"""MemoryData layer: batches from arrays held in memory, set with ``set_input_arrays(data,
labels)`` like pycaffe (data N x C x H x W float32, labels N; N a multiple of batch_size). Each
forward serves the next batch_size rows, wrapping around. Tops: data (batch, C, H, W), label
(batch,), shapes from memory_data_param."""
from __future__ import annotations

import numpy as np

from netdef.errors import DataError
from runner.layers.base import Layer
from runner.registry import register


@register("MemoryData")
class MemoryDataLayer(Layer):
    """Caffe's MemoryDataLayer (see the module docstring)."""

    def setup(self, bottoms, tops) -> None:
        p = self.param.memory_data_param
        self.batch_size, self.chw = int(p.batch_size), (int(p.channels), int(p.height), int(p.width))
        self.data = self.labels = None
        self.pos = 0

    def top_shapes(self) -> list[tuple[int, ...]]:
        return [(self.batch_size, *self.chw), (self.batch_size,)]

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Serve ``data`` (N, C, H, W) and ``labels`` (N,) from the next forward on (N must be a
        multiple of batch_size; C, H, W must match memory_data_param)."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4 or data.shape[1:] != self.chw:
            raise DataError(f"layer '{self.name}': data has shape {data.shape}, expected (N, "
                            f"{', '.join(map(str, self.chw))}) from memory_data_param")
        if len(labels) != len(data):
            raise DataError(f"layer '{self.name}': {len(data)} data rows but {len(labels)} labels")
        if len(data) == 0 or len(data) % self.batch_size:
            raise DataError(f"layer '{self.name}': the added data must be a multiple of the batch size "
                            f"{self.batch_size}, got {len(data)} rows")
        self.data, self.labels, self.pos = data, labels, 0

    reset = set_input_arrays

    def reshape(self, bottoms, tops) -> None:
        for t, s in zip(tops, self.top_shapes()):
            if t.shape != s:
                t.reshape(s)

    def seek(self, k: int) -> None:
        """The next forward serves batch k (rows k*batch_size..., wrapping)."""
        if self.data is not None:
            self.pos = (k * self.batch_size) % len(self.data)

    def get_stream_state(self) -> dict:
        """The next row served and the row count (saved in snapshots: exact resume)."""
        return {"pos": int(self.pos), "rows": 0 if self.data is None else int(len(self.data))}

    def set_stream_state(self, state: dict) -> None:
        """Restore ``get_stream_state``'s position (kept modulo the rows set now)."""
        self.pos = int(state["pos"])
        if self.data is not None:
            self.pos %= len(self.data)

    def forward(self, bottoms, tops) -> None:
        if self.data is None:
            raise DataError(f"layer '{self.name}': MemoryData needs set_input_arrays(data, labels) "
                            "before forward")
        b = self.batch_size
        arrays = (self.data[self.pos:self.pos + b], self.labels[self.pos:self.pos + b])
        self.pos = (self.pos + b) % len(self.data)
        for t, a in zip(tops, arrays):
            if self.backend.host_mirror:
                self.backend.to_device(np.ascontiguousarray(a), out=t.dev_data)
            else:
                t.dev_data[...] = a.reshape(t.shape)

    def backward(self, tops, propagate_down, bottoms) -> None:
        pass
