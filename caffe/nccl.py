"""pycaffe's multi-GPU training API (Caffe 1.0's python/train.py drives it): the process-wide solver
count and rank, and ``caffe.NCCL``, which joins this process's solver to the others that hold the
same NCCL unique id. It is a thin layer over ``runner.dist``: the solver's world gets connected
through NCCL and its gradient reducer (buckets overlapped with backward) is what the callbacks run.

    uid = caffe.NCCL.new_uid()                   # in the parent, passed to every process
    # in process r of n:
    caffe.set_mode_gpu(); caffe.set_device(gpus[r])
    caffe.set_solver_count(n); caffe.set_solver_rank(r); caffe.set_multiprocess(True)
    solver = caffe.SGDSolver(proto)
    nccl = caffe.NCCL(solver, uid)
    nccl.bcast()                                 # rank 0's weights everywhere
    solver.add_callback(nccl)                    # average the gradients before each update
    solver.net.after_backward(nccl)              # ... layer by layer during backward
    solver.step(solver.param.max_iter)

A run started by ``mpiexec`` needs none of this: every solver made there joins MPI's world itself.
"""
from __future__ import annotations

from typing import Any

from netdef.errors import CaffeError

_count = 1
_rank = 0
_multiprocess = False


def set_solver_count(count: int) -> None:
    """How many solvers (processes) train together; solvers made afterwards are one of them."""
    global _count
    if int(count) < 1:
        raise CaffeError(f"set_solver_count: {count} must be >= 1")
    _count = int(count)


def set_solver_rank(rank: int) -> None:
    """This process's solver index (0 is the root solver: it tests, logs and snapshots)."""
    global _rank
    _rank = int(rank)


def set_multiprocess(multiprocess: bool) -> None:
    """Caffe's flag that the solvers run in separate processes (the only way here)."""
    global _multiprocess
    _multiprocess = bool(multiprocess)


def solver_count() -> int:
    return _count


def solver_rank() -> int:
    return _rank


def world() -> Any:
    """The World a solver made now belongs to: MPI's when mpiexec started this process, else
    rank ``solver_rank()`` of ``solver_count()``, connected later by ``NCCL``."""
    from runner.dist.world import World, launched_size
    if launched_size() > 1 or _count == 1:
        return World.from_environment()
    if not 0 <= _rank < _count:
        raise CaffeError(f"solver rank {_rank} is outside 0..{_count - 1} (set_solver_rank)")
    return World(rank=_rank, size=_count)


class NCCL:
    """Joins ``solver`` (made after ``set_solver_count``/``set_solver_rank`` in GPU mode) to the
    processes holding ``uid``; ``bcast()``, and the callbacks ``solver.add_callback(nccl)`` and
    ``solver.net.after_backward(nccl)`` register."""

    def __init__(self, solver: Any, uid: bytes):
        s = solver._solver
        if s.backend.name != "cuda":
            raise CaffeError("caffe.NCCL needs GPU mode (caffe.set_mode_gpu() before making the "
                             "solver); on the cpu backend start the processes with mpiexec")
        if s.world.size < 2:
            raise CaffeError("caffe.NCCL: call caffe.set_solver_count(n > 1) and "
                             "caffe.set_solver_rank(r) before making the solver")
        s.world.connect_nccl(bytes(uid))
        s._distribute(hooks=False)
        self._solver = s

    @staticmethod
    def new_uid() -> bytes:
        """A fresh NCCL unique id (pass the same one to every process)."""
        from runner.dist.world import import_nccl
        return bytes(import_nccl().get_unique_id())

    def bcast(self) -> None:
        """Every solver takes the root solver's weights."""
        self._solver.reducer.broadcast_parameters()
        self._solver._params_synced = True

    def on_start(self) -> None:
        self._solver.reducer.on_start()

    def on_gradients_ready(self) -> None:
        self._solver.reducer.on_gradients_ready()

    def layer_wise(self) -> None:
        """Start each bucket's all-reduce as backward completes it (``net.after_backward``)."""
        self._solver.executor.after_backward = self._solver.reducer.after_backward
