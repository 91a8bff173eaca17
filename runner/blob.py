"""Blob: an N-D array pair (``data``, ``diff``) on a backend, Caffe's Blob with SyncedMemory.

Memory model
------------
Each of data/diff is a flat buffer of ``capacity`` elements; ``reshape`` only reallocates when the
new count exceeds the capacity (Caffe's Blob::Reshape), so a smaller batch reuses memory.

- cpu backend (``backend.host_mirror`` False): the buffer *is* a numpy array; ``blob.data`` and
  ``blob.dev_data`` are the same array. Nothing to sync.
- cuda backend (``host_mirror`` True): the device buffer is the master copy, with a lazily created
  host numpy mirror and a per-buffer head flag, as Caffe's SyncedMemory:

  =============  ==========================================================================
  ``SYNCED``     host and device agree
  ``HOST``       the host mirror may be newer (it was handed out writable)
  ``DEVICE``     the device buffer may be newer (it was handed out to a layer)
  =============  ==========================================================================

  ``blob.data`` / ``blob.diff`` (host, writable): downloads if the head is DEVICE, then sets the
  head to HOST because the caller may write through the returned view (``blob.data[...] = x``).
  ``blob.dev_data`` / ``blob.dev_diff`` (what layers use): uploads if the head is HOST, then sets
  the head to DEVICE because the layer may write. ``blob.host_data(readonly=True)`` downloads
  without dirtying (returns a read-only view) so inspection does not cost an upload later.
  So a host write always reaches the device before the next op reads the blob, with no explicit
  sync call in the Net. Keep the view returned by ``blob.data`` only until the next forward:
  after a layer runs, a stale host view is no longer the blob's content.

Sharing (Caffe ShareData/ShareDiff): ``share_data(other)`` / ``share_diff(other)`` make this blob use
``other``'s buffers (same count required; shapes may differ). Used for shared parameters
(``param { name: ... }``) and ``Net.share_weights``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from netdef.shapes import canonical_axis, count, legacy_shape
from runner.backend.base import Backend

SYNCED, HOST, DEVICE = "synced", "host", "device"


class SyncedBuffer:
    """A flat buffer on a backend with an optional host mirror (see the module docstring)."""

    __slots__ = ("backend", "capacity", "dev", "host", "head", "host_writes")

    def __init__(self, backend: Backend, capacity: int):
        self.backend = backend
        self.capacity = int(capacity)
        self.dev = backend.zeros((self.capacity,))
        self.host: np.ndarray | None = None
        self.head = SYNCED if not backend.host_mirror else DEVICE
        self.host_writes = 0     # writable host views handed out + assignments (see Blob.data_version)

    def device(self) -> Any:
        """The flat device buffer, synced; marks the device as the newest copy."""
        if not self.backend.host_mirror:
            return self.dev
        if self.head == HOST:
            self.backend.to_device(self.host, out=self.dev)
        self.head = DEVICE
        return self.dev

    def host_view(self, writable: bool = True) -> np.ndarray:
        """The flat host buffer, synced; writable marks the host as the newest copy."""
        if not self.backend.host_mirror:
            self.host_writes += bool(writable)
            return self.dev
        if self.host is None:
            self.host = np.zeros(self.capacity, dtype=self.backend.dtype)
            if self.head == HOST:
                self.head = DEVICE
        if self.head == DEVICE:
            self.backend.to_host(self.dev, out=self.host)
            self.head = SYNCED
        if writable:
            self.head = HOST
            self.host_writes += 1
        return self.host


class Blob:
    """Caffe Blob: ``shape``, ``count``, ``data``/``diff`` (host numpy views), ``dev_data``/``dev_diff``
    (backend arrays for layers), ``reshape``, ``share_data``/``share_diff``."""

    def __init__(self, backend: Backend, shape: Sequence[int] = (), name: str = ""):
        self.backend = backend
        self.name = name
        self._shape: tuple[int, ...] = ()
        self._data: SyncedBuffer | None = None
        self._diff: SyncedBuffer | None = None
        self.reshape(shape)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def count(self) -> int:
        return count(self._shape)

    @property
    def num_axes(self) -> int:
        return len(self._shape)

    def canonical_axis(self, axis: int) -> int:
        """Caffe's CanonicalAxisIndex: negative axes count from the end."""
        return canonical_axis(axis, len(self._shape), f"blob {self.name!r} {self._shape}")

    def count_range(self, start: int, end: int | None = None) -> int:
        """Product of shape[start:end] (Caffe's count(start, end))."""
        return count(self._shape[start:end])

    # Caffe's legacy 4-D accessors (Blob::num() ... LegacyShape): an axis the blob lacks is 1
    def _legacy(self, axis: int) -> int:
        four = legacy_shape(self._shape)
        if four is None:
            raise ValueError(f"blob {self.name!r}: num/channels/height/width are for blobs of at most "
                             f"4 axes; this one has shape {self._shape}")
        return four[axis]

    @property
    def num(self) -> int:
        return self._legacy(0)

    @property
    def channels(self) -> int:
        return self._legacy(1)

    @property
    def height(self) -> int:
        return self._legacy(2)

    @property
    def width(self) -> int:
        return self._legacy(3)

    def reshape(self, *shape: int | Sequence[int]) -> None:
        """Set the shape, given as one sequence (``reshape((N, C, H, W))``) or as separate
        dimensions (``reshape(N, C, H, W)``, pycaffe's form); reallocates (zeroed, contents lost)
        only when the count exceeds the capacity."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"blob {self.name!r}: negative dimension in {shape}")
        n = count(shape)
        # data and diff are checked separately: one of them may be shared with another blob
        if self._data is None or n > self._data.capacity:
            self._data = SyncedBuffer(self.backend, n)
        if self._diff is None or n > self._diff.capacity:
            self._diff = SyncedBuffer(self.backend, n)
        self._shape = shape

    def reshape_like(self, other: Blob) -> None:
        self.reshape(other.shape)

    # ------------------------------------------------------------------ access
    @property
    def dev_data(self) -> Any:
        """Backend array of ``shape`` holding the data (numpy on cpu). Layers read and write this."""
        return self.backend.view(self._data.device(), self._shape)

    @property
    def dev_diff(self) -> Any:
        """Backend array of ``shape`` holding the gradient."""
        return self.backend.view(self._diff.device(), self._shape)

    @property
    def data(self) -> np.ndarray:
        """Host numpy view of the data (writable; writes reach the device before its next use)."""
        return self._data.host_view(True)[:self.count].reshape(self._shape)

    @data.setter
    def data(self, value: Any) -> None:
        self._assign(self._data, value, "data")

    @property
    def diff(self) -> np.ndarray:
        """Host numpy view of the gradient (writable)."""
        return self._diff.host_view(True)[:self.count].reshape(self._shape)

    @diff.setter
    def diff(self, value: Any) -> None:
        self._assign(self._diff, value, "diff")

    def host_data(self, readonly: bool = True) -> np.ndarray:
        """Host view of the data; read-only views do not mark the host copy as newer."""
        v = self._data.host_view(not readonly)[:self.count].reshape(self._shape)
        if readonly and self.backend.host_mirror:
            v = v.view()
            v.flags.writeable = False
        return v

    def host_diff(self, readonly: bool = True) -> np.ndarray:
        """Host view of the gradient; see ``host_data``."""
        v = self._diff.host_view(not readonly)[:self.count].reshape(self._shape)
        if readonly and self.backend.host_mirror:
            v = v.view()
            v.flags.writeable = False
        return v

    def data_version(self) -> tuple[Any, int]:
        """A token that changes whenever the data may have been changed from the host (a writable
        ``data`` view handed out, an assignment) or the blob got another buffer (reshape beyond
        its capacity, ``share_data``); layers compare it between their forward and backward.
        Writes by layers on the device do not change it (Caffe's split layers give every reader
        its own blob, so no later layer writes a layer's bottom in place)."""
        return self._data, self._data.host_writes

    def _assign(self, buf: SyncedBuffer, value: Any, what: str) -> None:
        buf.host_writes += 1
        arr = np.asarray(value)
        if arr.size != self.count:
            raise ValueError(f"blob {self.name!r}: cannot assign {what} of shape {arr.shape} to shape "
                             f"{self._shape}")
        if self.backend.host_mirror:
            # write straight to the device: no stale-mirror round trip
            self.backend.to_device(np.ascontiguousarray(arr, dtype=self.backend.dtype).reshape(-1),
                                   out=self.backend.view(buf.device(), (self.count,)))
        else:
            buf.dev[:self.count] = arr.reshape(-1)

    # ------------------------------------------------------------------ sharing
    def share_data(self, other: Blob) -> None:
        """Use ``other``'s data buffer (Caffe ShareData); counts must match."""
        if other.count != self.count:
            raise ValueError(f"share_data: blob {self.name!r} count {self.count} != {other.name!r} "
                             f"count {other.count}")
        self._data = other._data

    def share_diff(self, other: Blob) -> None:
        """Use ``other``'s diff buffer (Caffe ShareDiff); counts must match."""
        if other.count != self.count:
            raise ValueError(f"share_diff: blob {self.name!r} count {self.count} != {other.name!r} "
                             f"count {other.count}")
        self._diff = other._diff

    def shares_data_with(self, other: Blob) -> bool:
        return self._data is other._data

    # ------------------------------------------------------------------ helpers
    def zero_diff(self) -> None:
        """diff = 0 (on the device)."""
        self.backend.fill(self.dev_diff, 0.0)

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={self._shape}, backend={self.backend.name})"
