"""Data-parallel training (runner/dist): sharded data, the bucketed gradient exchange, and real
2-rank MPI runs (``mpiexec -n 2``) against one process with the doubled batch, plus resume of a
2-rank snapshot on 1 and on 2 ranks."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from google.protobuf import text_format

from netdef.errors import CaffeError
from netdef.weights import caffemodel_blobs, read_caffemodel
from proto import caffe_pb2 as pb
from runner.data.datum import array_to_datum
from runner.data.db import DBWriter
from runner.data.sources import DatumDBSource
from runner.dist.gradients import GradientReducer, HostTransport
from runner.dist.launch import parse_gpus
from runner.dist.world import World
from runner.net import Net
from runner.solver.glog import GLog
from runner.solver.solver import Solver

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")


def _db(path: Path, n: int, shape=(1, 28, 28), seed: int = 0) -> None:
    """n noisy images of 10 classes: class c lights a 6x6 square at its own place."""
    rng = np.random.default_rng(seed)
    with DBWriter(str(path)) as w:
        for i in range(n):
            label = i % 10
            img = rng.normal(30, 20, shape)
            y, x = 2 + 7 * (label // 4) % (shape[1] - 6), 2 + 6 * (label % 4) % (shape[2] - 6)
            img[:, y:y + 6, x:x + 6] += 150
            w.put(b"%08d" % i, array_to_datum(np.clip(img, 0, 255).astype(np.uint8),
                                              label).SerializeToString())


# ----------------------------------------------------------------------------------- sharded data
def test_ranks_batches_together_are_one_bigger_batch(tmp_path):
    """At batch k the shards (0, 2) and (1, 2) of batch 3 hold, in rank order, batch k of one
    process with batch 6: the same records with the same random crops and mirrors."""
    _db(tmp_path / "db", 25, shape=(3, 8, 8))
    lp = pb.LayerParameter()
    text_format.Parse(f'name: "d" type: "Data" top: "data" top: "label" transform_param {{ '
                      f'crop_size: 5 mirror: true scale: 0.5 }} data_param {{ source: '
                      f'"{tmp_path / "db"}" batch_size: 3 backend: LMDB }}', lp)
    big_lp = pb.LayerParameter()
    big_lp.CopyFrom(lp)
    big_lp.data_param.batch_size = 6
    big = DatumDBSource(big_lp, "TRAIN", seed=11)
    ranks = [DatumDBSource(lp, "TRAIN", seed=11) for _ in range(2)]
    for r, src in enumerate(ranks):
        src.shard = (r, 2)
    for k in (0, 1, 4, 5):              # 4 and 5 wrap around the 25 records
        want = big.batch(k)
        got = [np.concatenate(parts) for parts in zip(*(src.batch(k) for src in ranks))]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    for src in [big, *ranks]:
        src.close()


# ------------------------------------------------------------------------ the gradient exchange
class _TwinWorld:
    """Rank 0 of two ranks whose partner computes exactly the same gradients: the all-reduce
    doubles every value (an exact float operation), so the averaged diffs equal the local ones."""

    rank, size, local_rank, is_root, connected, nccl = 0, 2, 0, True, True, None

    def __init__(self):
        self.exchanged: list[int] = []
        self.comm = SimpleNamespace(Iallreduce=self._iallreduce, Bcast=lambda a, root: None)

    def _iallreduce(self, in_place, buf, op):
        self.exchanged.append(buf.size)
        buf *= 2
        return SimpleNamespace(Wait=lambda: None, Test=lambda: True)

    def bcast(self, obj):
        return obj

    def mean(self, values):
        return values


NET = """
name: "tiny" force_backward: false
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 1 dim: 6 dim: 6 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv" top: "ip1" param { name: "shared" }
  inner_product_param { num_output: 48 weight_filler { type: "xavier" } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def _solver(world):
    sp = pb.SolverParameter()
    text_format.Parse(NET, sp.net_param)
    sp.base_lr, sp.momentum, sp.lr_policy, sp.max_iter, sp.random_seed = 0.1, 0.9, "fixed", 10, 3
    return Solver(sp, log=GLog(quiet=True), world=world)


def _feed(solver, seed):
    rng = np.random.default_rng(seed)
    solver.net.blobs["data"].data[...] = rng.standard_normal((4, 1, 6, 6))
    solver.net.blobs["label"].data[...] = rng.integers(0, 3, 4)


def test_bucketed_exchange_starts_during_backward_and_averages(monkeypatch):
    """With small buckets the exchanges start as backward completes them (before conv, the first
    layer, has run its backward), every parameter travels once per iteration, and the averaged
    update equals the one-process update bit for bit."""
    monkeypatch.setattr("runner.dist.gradients.BUCKET_BYTES", 256)
    world = _TwinWorld()
    monkeypatch.setattr("runner.dist.gradients.import_mpi",
                        lambda: SimpleNamespace(IN_PLACE=None, SUM=None))
    dist, alone = _solver(world), _solver(World())
    for it in range(3):
        _feed(dist, it)
        _feed(alone, it)
        dist.step(1)
        alone.step(1)
    reducer = dist.reducer
    assert isinstance(reducer.transport, HostTransport) and len(reducer.buckets) >= 3
    assert sum(world.exchanged) == 3 * sum(p.blob.count for p in dist.net.learnable_params)
    conv = list(dist.net.layer_dict).index("conv")
    first_iteration = reducer.started_after[:len(reducer.buckets)]
    assert max(first_iteration) > conv          # started before backward reached the first layer
    assert first_iteration == sorted(first_iteration, reverse=True)
    for a, b in zip(dist.net.learnable_params, alone.net.learnable_params):
        np.testing.assert_array_equal(a.blob.data, b.blob.data)


def test_bucket_waits_for_every_user_of_a_shared_parameter():
    """A parameter shared by two layers is complete only after the earlier layer's backward."""
    text = NET.replace('layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"',
                       'layer { name: "ip1b" type: "InnerProduct" bottom: "ip1" top: "ip1b" '
                       'param { name: "sq" } inner_product_param { num_output: 48 } }\n'
                       'layer { name: "ip1c" type: "InnerProduct" bottom: "ip1b" top: "ip1c" '
                       'param { name: "sq" } inner_product_param { num_output: 48 } }\n'
                       'layer { name: "ip2" type: "InnerProduct" bottom: "ip1c" top: "ip2"')
    p = pb.NetParameter()
    text_format.Parse(text, p)
    net = Net(p, "TRAIN")
    names = list(net.layer_dict)
    shared = next(j for j, users in enumerate(net.param_users) if len(users) == 2)
    assert [names[i] for i in net.param_users[shared]] == ["ip1b", "ip1c"]
    reducer = GradientReducer(_TwinWorld(), net, bucket_bytes=1,
                              transport=SimpleNamespace(allocate=lambda b: None))
    bucket = next(b for b in reducer.buckets if net.learnable_params[shared] in b.params)
    assert bucket.ready_layer == names.index("ip1b")


# ----------------------------------------------------------------------------------- the launcher
def test_gpu_lists_and_the_missing_extra(monkeypatch):
    assert parse_gpus("0,1") == [0, 1] and parse_gpus("-1") == [] and parse_gpus(None) == []
    with pytest.raises(CaffeError, match="distinct"):
        parse_gpus("1,1")
    with pytest.raises(CaffeError, match="device ids"):
        parse_gpus("zero")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(CaffeError, match=r'mpi4py.*pip install -e "\.\[dist\]"'):
        World.from_environment()


# ----------------------------------------------------------------------------- real MPI, 2 ranks
SOLVER = """net: "net.prototxt"
test_iter: 2 test_interval: {test_interval} base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005
lr_policy: "inv" gamma: 0.0001 power: 0.75 display: 10 max_iter: {max_iter} snapshot: {snapshot}
snapshot_prefix: "snap/lenet" random_seed: 5
"""


def _lenet_dir(tmp: Path, batch: int, max_iter: int = 50, snapshot: int = 0) -> Path:
    """Caffe's LeNet example (its net, its solver settings) over small synthetic MNIST-like LMDBs."""
    tmp.mkdir(parents=True, exist_ok=True)
    if not (tmp / "train_lmdb").exists():
        _db(tmp / "train_lmdb", 400, seed=1)
        _db(tmp / "test_lmdb", 200, seed=2)
    text = (ROOT / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()
    text = text.replace("examples/mnist/mnist_train_lmdb", "train_lmdb").replace(
        "examples/mnist/mnist_test_lmdb", "test_lmdb").replace("batch_size: 64", f"batch_size: {batch}")
    (tmp / "net.prototxt").write_text(text)
    (tmp / "solver.prototxt").write_text(SOLVER.format(test_interval=25, max_iter=max_iter,
                                                      snapshot=snapshot))
    return tmp


def _train(where: Path, ranks: int, *extra: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NBCAFFE_DEVICE="sim", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "runner", "train", "-solver", "solver.prototxt", *extra]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    out = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def _lines(log: str, pattern: str) -> list[str]:
    return [re.sub(r"^.*\] ", "", x) for x in log.splitlines() if re.search(pattern, x)]


def _values(log: str, pattern: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(pattern, log)]


def _weights(path: Path) -> dict[str, list[np.ndarray]]:
    return {k: v[1] for k, v in caffemodel_blobs(read_caffemodel(str(path))).items()}


needs_mpi = pytest.mark.skipif(not os.access(MPIEXEC, os.X_OK), reason="no mpiexec (the dist extra)")


@needs_mpi
@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_doubled_batch(tmp_path):
    """mpiexec -n 2 with batch 32 per rank vs one process with batch 64, 50 iterations of LeNet:
    identical test accuracy lines, test losses and final weights within 1e-5 relative; then the
    2-rank snapshot of iteration 25 resumes on 2 ranks to the same weights bit for bit, and on 1
    rank."""
    two = _lenet_dir(tmp_path / "two", 32, snapshot=25)
    one = _lenet_dir(tmp_path / "one", 64, snapshot=25)
    log2, log1 = _train(two, 2), _train(one, 1)
    assert "Data-parallel training on 2 processes" in log2
    assert _lines(log2, r"Test net output #0: accuracy") == _lines(log1, r"Test net output #0: accuracy")
    loss2, loss1 = (_values(log, r"Test net output #1: loss = ([0-9.e+-]+)") for log in (log2, log1))
    assert len(loss2) == len(loss1) == 3
    np.testing.assert_allclose(loss2, loss1, rtol=1e-5)     # printed with 6 digits
    w2, w1 = _weights(two / "snap/lenet_iter_50.caffemodel"), _weights(one / "snap/lenet_iter_50.caffemodel")
    for name in w1:
        for a, b in zip(w2[name], w1[name]):
            assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), name
    shutil.copy(two / "snap/lenet_iter_50.caffemodel", tmp_path / "straight.caffemodel")
    _train(two, 2, "-snapshot", "snap/lenet_iter_25.solverstate")
    for name, arrays in _weights(tmp_path / "straight.caffemodel").items():
        for a, b in zip(_weights(two / "snap/lenet_iter_50.caffemodel")[name], arrays):
            np.testing.assert_array_equal(a, b, err_msg=name)
    log = _train(two, 1, "-snapshot", "snap/lenet_iter_25.solverstate")
    assert "Restoring previous solver status from snap/lenet_iter_25.solverstate" in log
    assert "Optimization Done." in log
