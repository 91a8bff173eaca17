"""The processes of one training run and the collectives the Solver needs on host values.

A run started by ``mpiexec -n K`` (MPICH, Open MPI, Slurm's PMI) has K ranks: ``World.from_environment``
sees the launcher's environment and joins MPI's COMM_WORLD through mpi4py; anything else is a
one-process world whose collectives return their input. The Solver is written against this one
interface, so a one-process run takes the same path as rank 0 of a K-process run.

pycaffe's own multi-GPU scripts start their processes themselves (``multiprocessing``) and join
them with an NCCL unique id: ``World(rank=r, size=n)`` is such a world before it is connected, and
``connect_nccl(uid)`` connects it, its host collectives then going through NCCL on small device
buffers.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from netdef.errors import CaffeError

#: environment variables an MPI launcher sets for its processes (the world size)
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")

DIST_EXTRA = 'pip install -e ".[dist]" (mpi4py and the mpich wheel; ".[dist-cuda]" adds NCCL)'
NCCL_EXTRA = 'pip install -e ".[dist-cuda]" (nccl4py and the NCCL runtime)'


def launched_size() -> int:
    """The world size an MPI launcher gave this process (1 when it was not started by one)."""
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def import_mpi() -> Any:
    """mpi4py's MPI module, or a CaffeError saying which extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise CaffeError(f"multi-process training needs mpi4py and an MPI library ({e}); "
                         f"install them with {DIST_EXTRA}") from None
    return MPI


def import_nccl() -> Any:
    """nccl4py's core module, or a CaffeError saying which extra to install."""
    try:
        import nccl.core as nccl
    except ImportError as e:
        raise CaffeError(f"multi-GPU training needs NCCL's Python binding ({e}); install it with "
                         f"{NCCL_EXTRA}") from None
    return nccl


class _MpiCollectives:
    """Host collectives over an mpi4py communicator."""

    def __init__(self, comm: Any):
        self.comm, self._mpi = comm, import_mpi()

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def allreduce_sum(self, arr: np.ndarray) -> np.ndarray:
        out = np.empty_like(arr)
        self.comm.Allreduce(arr, out, op=self._mpi.SUM)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()


class _NcclCollectives:
    """Host collectives through an NCCL communicator: values travel in small device buffers."""

    def __init__(self, communicator: Any):
        from numba import cuda
        self.nccl, self._cuda = communicator, cuda
        self._sum = import_nccl().SUM

    def _bcast_bytes(self, data: bytes | None) -> bytes:
        n = np.array([len(data) if data is not None else 0], np.int64)
        n = self._roundtrip(n, lambda d: self.nccl.broadcast(d, d, 0))
        buf = np.zeros(int(n[0]), np.uint8)
        if data is not None:
            buf[:] = np.frombuffer(data, np.uint8)
        return self._roundtrip(buf, lambda d: self.nccl.broadcast(d, d, 0)).tobytes()

    def _roundtrip(self, host: np.ndarray, op) -> np.ndarray:
        dev = self._cuda.to_device(host)
        op(dev)
        self._cuda.synchronize()
        return dev.copy_to_host()

    def bcast(self, obj: Any) -> Any:
        return pickle.loads(self._bcast_bytes(pickle.dumps(obj) if self.nccl.rank == 0 else None))

    def allreduce_sum(self, arr: np.ndarray) -> np.ndarray:
        return self._roundtrip(arr, lambda d: self.nccl.allreduce(d, d, self._sum))

    def barrier(self) -> None:
        self.allreduce_sum(np.zeros(1, np.float32))


class World:
    """``rank``/``size`` of this process, ``local_rank`` among the ranks on this machine, and the
    host collectives (all ranks must call them in the same order). ``comm`` is the mpi4py
    communicator of an MPI world, ``nccl`` the NCCL communicator of a connected pycaffe-style one."""

    def __init__(self, comm: Any = None, rank: int = 0, size: int = 1):
        self.comm, self.nccl = comm, None
        self._coll: Any = None
        if comm is None:
            self.rank, self.size, self.local_rank = int(rank), int(size), int(rank)
            return
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local_rank = comm.Split_type(import_mpi().COMM_TYPE_SHARED).Get_rank()
        self._coll = _MpiCollectives(comm)

    @classmethod
    def from_environment(cls) -> World:
        """The MPI world when an MPI launcher started this process with more than one rank;
        otherwise a one-process world (MPI is not even imported)."""
        if launched_size() <= 1:
            return cls()
        return cls(import_mpi().COMM_WORLD)

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that tests, logs and snapshots."""
        return self.rank == 0

    @property
    def connected(self) -> bool:
        """Whether the ranks can talk (always, for one process)."""
        return self.size == 1 or self._coll is not None

    def connect_nccl(self, uid: bytes) -> None:
        """Join the ranks that hold the NCCL unique id ``uid`` (pycaffe's ``caffe.NCCL``): this
        process's current CUDA device becomes rank ``rank`` of ``size``."""
        nccl = import_nccl()
        self.nccl = nccl.Communicator.init(self.size, self.rank, nccl.UniqueId.from_bytes(uid))
        if self._coll is None:
            self._coll = _NcclCollectives(self.nccl)

    def _collectives(self) -> Any:
        if self._coll is None:
            raise CaffeError(f"rank {self.rank} of {self.size} is not connected to the other "
                             "processes yet (pycaffe: create caffe.NCCL(solver, uid) first)")
        return self._coll

    def bcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small Python values)."""
        return obj if self.size == 1 else self._collectives().bcast(obj)

    def mean(self, values: np.ndarray | float) -> np.ndarray | float:
        """The mean over the ranks of a float or a float64 array (the same shape on every rank)."""
        if self.size == 1:
            return values
        out = self._collectives().allreduce_sum(np.array(values, dtype=np.float64)) / self.size
        return float(out) if np.ndim(values) == 0 else out

    def barrier(self) -> None:
        if self.size > 1:
            self._collectives().barrier()
