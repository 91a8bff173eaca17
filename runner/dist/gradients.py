"""Gradient exchange of data-parallel training: Caffe's NCCL callback, with the all-reduce
overlapped with backward.

Every rank computes the gradients of its share of the batch; before the update each parameter's
diff becomes the sum over the ranks times 1/size (Caffe: ncclAllReduce, then caffe_gpu_scal by
1/solver_count), so every rank applies the same update to the same weights.

Buckets. The learnable parameters are grouped, in the order backward completes them, into buckets
of about ``BUCKET_BYTES``. A parameter is complete once the backward of the first layer (in net
order) that uses it has run: later layers run backward earlier, and a shared parameter collects
the gradients of all its users. The executor calls ``after_backward(i)`` after layer i's backward
(replayed segments: after the segment, for each of its layers), and every bucket complete by then
is packed into one contiguous buffer and its all-reduce is started, non-blocking, while backward
goes on. ``on_gradients_ready`` (the Solver's callback point before the update) starts what is
left, waits, and unpacks the scaled sums into the diffs. With ``iter_size`` > 1 the diffs are only
complete after the last pass, so the exchange then runs at ``on_gradients_ready`` alone.

Transports: ``HostTransport`` (numpy buffers, MPI ``Iallreduce`` through mpi4py) on the cpu
backend; ``NcclTransport`` (device buffers, NCCL all-reduce on a stream of its own that waits for
the backward kernels, the NCCL unique id broadcast over MPI) on cuda.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from netdef.errors import CaffeError
from runner.dist.world import World, import_mpi, import_nccl

#: bytes of gradients per bucket (an all-reduce starts when a bucket is complete)
BUCKET_BYTES = 1 << 20


class Bucket:
    """Parameters whose diffs travel together: ``ready_layer`` is the layer whose backward
    completes the last of them; ``offsets`` their places in the packed buffer."""

    def __init__(self, params: list[Any], ready_layer: int):
        self.params = params
        self.ready_layer = ready_layer
        self.offsets: list[int] = []
        n = 0
        for p in params:
            self.offsets.append(n)
            n += p.blob.count
        self.count = n
        self.buffer: Any = None
        self.pending: Any = None      # the transport's handle of a started all-reduce


class HostTransport:
    """MPI all-reduce of host buffers (the cpu backend) through ``world.comm`` (an mpi4py
    communicator; ``mpi`` is the module its constants come from), in place on each parameter's
    diff: one non-blocking all-reduce per blob, no packing copy."""

    def __init__(self, world: World, backend: Any, mpi: Any = None):
        if world.comm is None:
            raise CaffeError("data-parallel training on the cpu backend exchanges gradients over "
                             "MPI: start the processes with mpiexec (NCCL is for the cuda backend)")
        self.world, self.backend = world, backend
        self._mpi = mpi if mpi is not None else import_mpi()

    def allocate(self, bucket: Bucket) -> None:
        """Nothing to allocate: the diffs are exchanged where they are."""

    def start(self, bucket: Bucket) -> None:
        comm, mpi = self.world.comm, self._mpi
        bucket.pending = [comm.Iallreduce(mpi.IN_PLACE, p.blob.dev_diff, op=mpi.SUM)
                          for p in bucket.params]

    def progress(self, bucket: Bucket) -> None:
        """Let MPI move a started exchange along (without an asynchronous progress thread, MPI
        advances a non-blocking collective only inside MPI calls: a test between the layers of
        backward is what makes it overlap)."""
        for request in bucket.pending:
            request.Test()

    def finish(self, bucket: Bucket) -> None:
        scale = np.float32(1.0 / self.world.size)
        for p, request in zip(bucket.params, bucket.pending):
            request.Wait()
            diff = p.blob.dev_diff
            diff *= scale
        bucket.pending = None

    def broadcast(self, arrays: Sequence[Any]) -> None:
        """Rank 0's values of ``arrays`` (host numpy) on every rank, in place."""
        for a in arrays:
            self.world.comm.Bcast(a, root=0)


class NcclTransport:
    """NCCL all-reduce of device buffers (the cuda backend), on a stream of its own: it waits for
    the kernels queued before it on the default stream, and the default stream waits for it
    before the diffs are unpacked."""

    def __init__(self, world: World, backend: Any):
        from numba import cuda
        nccl = import_nccl()
        self.world, self.backend, self._cuda, self._sum = world, backend, cuda, nccl.SUM
        if world.nccl is None:          # an MPI world: the unique id travels over MPI
            world.connect_nccl(world.bcast(bytes(nccl.get_unique_id()) if world.is_root else None))
        self.comm = world.nccl
        self.stream = cuda.stream()
        self._handle = int(self.stream.handle.value or 0)

    def allocate(self, bucket: Bucket) -> None:
        bucket.buffer = self.backend.empty((bucket.count,))

    def start(self, bucket: Bucket) -> None:
        buf = bucket.buffer
        for p, off in zip(bucket.params, bucket.offsets):
            self.backend.copy(p.blob.dev_diff, buf[off:off + p.blob.count])
        packed = self._cuda.event()
        packed.record(0)                      # after the backward kernels and the packing
        packed.wait(self.stream)
        self.comm.allreduce(buf, buf, self._sum, stream=self._handle)
        done = self._cuda.event()
        done.record(self.stream)
        bucket.pending = done

    def progress(self, bucket: Bucket) -> None:
        """NCCL runs on its own stream: nothing to do on the host."""

    def finish(self, bucket: Bucket) -> None:
        bucket.pending.wait(0)                # the default stream waits for the all-reduce
        bucket.pending = None
        scale = 1.0 / self.world.size
        for p, off in zip(bucket.params, bucket.offsets):
            d = p.blob.dev_diff
            self.backend.axpby(scale, bucket.buffer[off:off + p.blob.count], 0.0, d)

    def broadcast(self, arrays: Sequence[Any]) -> None:
        for a in arrays:
            self.comm.broadcast(a, a, 0, stream=0)
        self._cuda.synchronize()


class GradientReducer:
    """Sums each learnable parameter's diff over the ranks and scales it by 1/size (see the module
    docstring). ``after_backward`` is the executor's hook; ``on_start``/``on_gradients_ready`` are
    the Solver callbacks; ``comm_seconds`` and ``wait_seconds`` add up the time spent starting
    exchanges and waiting for them (the latter is what backward did not hide)."""

    def __init__(self, world: World, net: Any, overlap: bool = True,
                 bucket_bytes: int | None = None, transport: Any = None):
        self.world, self.net, self.overlap = world, net, overlap
        if transport is None:
            transport = (NcclTransport if net.backend.name == "cuda" else HostTransport)(world,
                                                                                       net.backend)
        self.transport = transport
        self.buckets = self._buckets(BUCKET_BYTES if bucket_bytes is None else bucket_bytes)
        for b in self.buckets:
            transport.allocate(b)
        self._next = 0
        self.comm_seconds = 0.0
        self.wait_seconds = 0.0
        self.started_after: list[int] = []     # per exchange: the layer whose backward started it

    def _buckets(self, bucket_bytes: int) -> list[Bucket]:
        net = self.net
        ready = [min(users) if users else -1 for users in net.param_users]
        order = sorted(range(len(net.learnable_params)), key=lambda j: -ready[j])
        buckets: list[Bucket] = []
        group: list[int] = []
        size = 0
        for j in order:
            group.append(j)
            size += 4 * net.learnable_params[j].blob.count
            if size >= bucket_bytes:
                buckets.append(Bucket([net.learnable_params[k] for k in group],
                                      min(ready[k] for k in group)))
                group, size = [], 0
        if group:
            buckets.append(Bucket([net.learnable_params[k] for k in group], min(ready[k] for k in group)))
        return buckets

    def _start(self, bucket: Bucket, layer: int) -> None:
        t0 = time.perf_counter()
        self.transport.start(bucket)
        self.comm_seconds += time.perf_counter() - t0
        self.started_after.append(layer)

    def on_start(self) -> None:
        """A new iteration: no exchange is in flight."""
        self._next = 0

    def after_backward(self, layer: int) -> None:
        """Layer ``layer``'s backward is done: move the exchanges in flight along and start every
        bucket it completed."""
        if not self.overlap:
            return
        for b in self.buckets[:self._next]:
            self.transport.progress(b)
        while self._next < len(self.buckets) and self.buckets[self._next].ready_layer >= layer:
            self._start(self.buckets[self._next], layer)
            self._next += 1

    def on_gradients_ready(self) -> None:
        """Start what backward did not, wait for every exchange, unpack the averaged diffs."""
        while self._next < len(self.buckets):
            self._start(self.buckets[self._next], -1)
            self._next += 1
        t0 = time.perf_counter()
        for b in self.buckets:
            self.transport.finish(b)
        self.wait_seconds += time.perf_counter() - t0
        self._next = 0

    def broadcast_parameters(self) -> None:
        """Every rank takes rank 0's weights (at the start, as Caffe's NCCL::Broadcast, and after a
        restore), so all ranks step from the same point."""
        self.transport.broadcast([p.blob.dev_data for p in self.net.learnable_params])
