"""Data-parallel training over several processes (Caffe's multi-GPU training, on MPI and NCCL).

- ``world.py``: the processes of a run (``World``: rank, size, collectives on host values; MPI
  through mpi4py when the run was started by ``mpiexec``, a one-process world otherwise).
- ``gradients.py``: ``GradientReducer`` sums every parameter's gradient over the ranks in buckets
  started as soon as the backward that completes them is done, then scales by 1/size (MPI on host
  buffers on cpu, NCCL on the device buffers on cuda).
- ``launch.py``: ``nbcaffe train -gpu 0,1`` / ``-gpu all`` re-runs itself under ``mpiexec``, one
  process per listed device.

Both transports are the optional ``dist`` extra (``pip install -e ".[dist]"``).
"""
