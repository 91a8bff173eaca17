"""Solver on a tiny net over a tiny LMDB (cpu): training, logging, snapshots, exact resume,
iter_size, every solver type, clipping, signals, and the error cases."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from netdef.errors import CaffeError, DataError, SolverError
from runner.data.datum import array_to_datum
from runner.data.db import DBWriter
from runner.solver.glog import GLog
from runner.solver.solver import Solver

NET = """
name: "tiny"
layer {{ name: "d" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.00390625 {transform} }}
  data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "d" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ scale: 0.00390625 {test_transform} }}
  data_param {{ source: "{db}" batch_size: 8 backend: LMDB }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
  inner_product_param {{ num_output: 6 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
{extra}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVER = """
net: "net.prototxt"
test_iter: 2 test_interval: {test_interval} base_lr: {lr} momentum: {momentum} weight_decay: 0.0005
lr_policy: "inv" gamma: 0.0001 power: 0.75 display: {display} max_iter: {max_iter}
snapshot: {snapshot} snapshot_prefix: "snap/tiny" random_seed: 7 type: "{type}" iter_size: {iter_size}
{more}
"""


def make_db(path, n=40, shape=(1, 6, 6), bad_at=None):
    rng = np.random.default_rng(0)
    with DBWriter(path) as w:
        for i in range(n):
            lab = i % 3
            s = (1, 5, 5) if i == bad_at else shape
            a = np.clip(rng.integers(0, 80, s) + lab * 80, 0, 255).astype(np.uint8)
            w.put(b"%08d" % i, array_to_datum(a, lab).SerializeToString())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(dirpath, batch=4, transform="", extra="", test_interval=10, lr=0.1, momentum=0.9,
          display=5, max_iter=20, snapshot=10, type="SGD", iter_size=1, more=""):
    test_transform = "crop_size: 4" if "crop_size" in transform else ""
    (dirpath / "net.prototxt").write_text(NET.format(db="tiny_lmdb", batch=batch, transform=transform,
                                                     test_transform=test_transform, extra=extra))
    (dirpath / "solver.prototxt").write_text(SOLVER.format(
        test_interval=test_interval, lr=lr, momentum=momentum, display=display, max_iter=max_iter,
        snapshot=snapshot, type=type, iter_size=iter_size, more=more))
    return str(dirpath / "solver.prototxt")


def run(path, resume=None, **kw):
    buf = io.StringIO()
    s = Solver(path, log=GLog(stream=buf), **kw)
    try:
        s.solve(resume)
    finally:
        s.close()
    return s, buf.getvalue()


def weights(s):
    return {p.name: np.array(p.blob.data) for p in s.params}


def test_trains_logs_and_snapshots(workdir):
    s, log = run(write(workdir, max_iter=30))
    assert "Iteration 0, Testing net (#0)" in log and "Optimization Done." in log
    assert "    Train net output #0: loss = " in log and " (* 1 = " in log
    assert "    Test net output #0: accuracy = " in log
    assert "Iteration 5, lr = " in log
    first, last = s.test_results[0], s.test_results[-1]
    assert last["loss"] < first["loss"]
    files = sorted(os.listdir(workdir / "snap"))
    assert files == ["tiny_iter_10.caffemodel", "tiny_iter_10.solverstate", "tiny_iter_20.caffemodel",
                     "tiny_iter_20.solverstate", "tiny_iter_30.caffemodel", "tiny_iter_30.solverstate"]


@pytest.mark.parametrize("transform,extra,iter_size", [
    ("", "", 1),
    ("crop_size: 4 mirror: true", "", 2),
    ("", 'layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" '
         'dropout_param { dropout_ratio: 0.3 } }', 1),
])
def test_resume_is_bit_exact(workdir, transform, extra, iter_size):
    path = write(workdir, transform=transform, extra=extra, iter_size=iter_size, max_iter=40,
                 snapshot=20, test_interval=15)
    straight, _ = run(path)
    w_straight = weights(straight)
    os.rename("snap/tiny_iter_40.caffemodel", "straight.caffemodel")
    resumed, log = run(path, resume="snap/tiny_iter_20.solverstate")
    assert "Restoring previous solver status from snap/tiny_iter_20.solverstate" in log
    assert resumed.iter == 40
    for name, w in weights(resumed).items():
        np.testing.assert_array_equal(w, w_straight[name], err_msg=name)


def test_resume_exact_1000_iterations(workdir):
    """The issue's check: 1000 iterations straight == 500 + restore + 500, bit for bit."""
    path = write(workdir, max_iter=1000, snapshot=500, display=0, test_interval=400)
    straight, _ = run(path)
    w = weights(straight)
    resumed, _ = run(path, resume="snap/tiny_iter_500.solverstate")
    for name, v in weights(resumed).items():
        np.testing.assert_array_equal(v, w[name], err_msg=name)


def test_iter_size_equals_bigger_batch(workdir):
    no_snap = "snapshot_after_train: false"
    a, _ = run(write(workdir, batch=8, iter_size=1, max_iter=6, snapshot=0, more=no_snap))
    b, _ = run(write(workdir, batch=4, iter_size=2, max_iter=6, snapshot=0, more=no_snap))
    for name, w in weights(a).items():
        np.testing.assert_allclose(weights(b)[name], w, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind,momentum,more", [
    ("Nesterov", 0.9, ""), ("AdaGrad", 0, ""), ("RMSProp", 0, "rms_decay: 0.98"),
    ("AdaDelta", 0.95, "delta: 1e-6"), ("Adam", 0.9, "momentum2: 0.999"),
])
def test_every_solver_type_trains_and_resumes(workdir, kind, momentum, more):
    lr = 1.0 if kind == "AdaDelta" else 0.01
    path = write(workdir, type=kind, momentum=momentum, lr=lr, more=more, max_iter=20, snapshot=10)
    s, _ = run(path)
    assert s.test_results[-1]["loss"] < s.test_results[0]["loss"]
    from netdef.weights import read_solverstate
    st = read_solverstate("snap/tiny_iter_10.solverstate")
    assert len(st.history) == len(s.params) * (2 if kind in ("AdaDelta", "Adam") else 1)
    w = weights(s)
    r, _ = run(path, resume="snap/tiny_iter_10.solverstate")
    for name, v in weights(r).items():
        np.testing.assert_array_equal(v, w[name], err_msg=name)


def test_clip_gradients_logs_and_scales(workdir):
    """Caffe's ClipGradients: the diffs of all parameters scaled together to an L2 norm of
    clip_gradients, before Regularize: one SGD step without momentum moves each parameter by
    lr * lr_mult * (g * clip / ||g|| + weight_decay * decay_mult * w)."""
    buf = io.StringIO()
    s = Solver(write(workdir, max_iter=1, snapshot=0, momentum=0.0, more="clip_gradients: 0.001"),
               log=GLog(stream=buf))
    grads, w0 = [], []

    def ready():
        grads.extend(np.array(prm.blob.diff, np.float64) for prm in s.params)
        w0.extend(np.array(prm.blob.data, np.float64) for prm in s.params)
    s.add_callback(lambda: None, ready)
    try:
        s.step(1)
    finally:
        s.close()
    norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
    assert norm > 0.001 * 10                       # the clip really scales
    assert "Gradient clipping: scaling down gradients (L2 norm " in buf.getvalue()
    assert "> 0.001) by scale factor" in buf.getvalue()
    for prm, g, w in zip(s.params, grads, w0):
        want = w - 0.1 * prm.lr_mult * (g * (0.001 / norm) + 0.0005 * prm.decay_mult * w)
        np.testing.assert_allclose(prm.blob.data, want, rtol=1e-5, atol=1e-7, err_msg=prm.name)


def test_stop_request_snapshots_and_stops(workdir):
    s = Solver(write(workdir, max_iter=100, snapshot=0, more="test_initialization: false"),
               log=GLog(stream=io.StringIO()))
    s.request("stop")
    s.solve()
    s.close()
    assert s.iter == 1 and os.path.exists("snap/tiny_iter_1.caffemodel")
    assert os.path.exists("snap/tiny_iter_1.solverstate")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_names_iteration_and_last_snapshot(workdir):
    path = write(workdir, lr=1e30, momentum=0.9, max_iter=50, snapshot=1, test_interval=100)
    with pytest.raises(SolverError, match=r"Iteration (\d+): the training loss is (nan|inf).*"
                                          r"Last good snapshot: (none in this run|snap/tiny_iter_\d+"
                                          r"\.solverstate)"):
        run(path)
    assert not [f for f in os.listdir("snap") if f.endswith(".tmp")]


def test_snapshot_for_another_net_is_refused(workdir):
    run(write(workdir, max_iter=10, snapshot=10))
    (workdir / "other").mkdir()
    make_db(workdir / "other" / "tiny_lmdb")
    os.chdir(workdir / "other")
    path = write(workdir / "other", max_iter=20, extra='layer { name: "ip1b" type: "InnerProduct" '
                 'bottom: "ip1" top: "ip1" inner_product_param { num_output: 6 } }')
    with pytest.raises(CaffeError, match="history blobs|another net"):
        run(path, resume=str(workdir / "snap/tiny_iter_10.solverstate"))


def test_missing_net_and_missing_state(workdir):
    (workdir / "s.prototxt").write_text('net: "nope.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 1')
    with pytest.raises(SolverError, match="nope.prototxt"):
        Solver("s.prototxt", log=GLog(stream=io.StringIO()))
    with pytest.raises(SolverError, match="not found"):
        Solver("missing_solver.prototxt")
    path = write(workdir, max_iter=2)
    with pytest.raises(SolverError, match="no.solverstate"):
        run(path, resume="no.solverstate")


def test_record_with_wrong_shape_is_named(workdir):
    import shutil
    shutil.rmtree("tiny_lmdb")
    make_db(workdir / "tiny_lmdb", bad_at=2)
    with pytest.raises(DataError, match="record '00000002'.*differs from the first"):
        run(write(workdir, max_iter=3))


def test_missing_lmdb_is_named(workdir):
    import shutil
    shutil.rmtree("tiny_lmdb")
    with pytest.raises(DataError, match="layer 'd'.*tiny_lmdb.*does not exist"):
        run(write(workdir, max_iter=3))


def test_hdf5_snapshot_format_round_trip(workdir):
    path = write(workdir, max_iter=20, snapshot=10, more="snapshot_format: HDF5")
    s, log = run(path)
    assert "Snapshotting to HDF5 file snap/tiny_iter_10.caffemodel.h5" in log
    assert os.path.exists("snap/tiny_iter_20.solverstate.h5")
    r, _ = run(path, resume="snap/tiny_iter_10.solverstate.h5")
    for name, v in weights(r).items():
        np.testing.assert_array_equal(v, weights(s)[name], err_msg=name)


@pytest.mark.parametrize("name,effect", [("SIGINT", "sigint"), ("SIGTERM", "sigterm")])
def test_real_signal_snapshots_and_stops(workdir, name, effect):
    """A real SIGINT or SIGTERM (a batch scheduler's stop) during training, effect stop: the
    iteration finishes, a snapshot is written, training stops early, says why, and the handler
    is restored."""
    import signal
    sig = getattr(signal, name)
    s = Solver(write(workdir, max_iter=100, snapshot=0, more="test_initialization: false"),
               log=GLog(stream=io.StringIO()))

    class KillAt3:
        def update(self, n):
            if s.iter == 3:
                os.kill(os.getpid(), sig)
    s.progress = KillAt3()
    before = signal.getsignal(sig)
    try:
        s.solve()
    finally:
        s.close()
    assert s.iter == 3 and s.requested_early_exit
    assert os.path.exists("snap/tiny_iter_3.caffemodel") and os.path.exists("snap/tiny_iter_3.solverstate")
    assert f"Received {name}: snapshotting and stopping after iteration 3" in s.log.stream.getvalue()
    assert signal.getsignal(sig) is before      # handler restored


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_failed_snapshot_leaves_nothing_behind(workdir, monkeypatch, fmt):
    """A write that fails after the temporary file is complete (here the final rename) leaves
    neither the file nor its temporary behind."""
    s = Solver(write(workdir, max_iter=2, snapshot=0, more=f"snapshot_format: {fmt}"),
               log=GLog(stream=io.StringIO()))

    def broken_replace(src, dst):
        assert os.path.getsize(src) > 0
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        s.snapshot()
    s.close()
    assert os.listdir("snap") == []      # no .caffemodel, no .caffemodel.tmp


def test_callbacks_run_around_the_gradients(workdir):
    """pycaffe's add_callback: on_start after the diffs are cleared and the test pass,
    on_gradients_ready after forward/backward (diffs filled) and before the update."""
    s = Solver(write(workdir, max_iter=3, test_interval=2), log=GLog(stream=io.StringIO()))
    events = []
    w = s.params[0].blob

    def hook(name):
        return lambda: events.append((name, s.iter, float(np.abs(w.diff).sum()), np.array(w.data)))
    s.add_callback(hook("start"), hook("ready"))
    try:
        s.step(2)
    finally:
        s.close()
    assert [e[:2] for e in events] == [("start", 0), ("ready", 0), ("start", 1), ("ready", 1)]
    assert events[0][2] == 0.0 and events[1][2] > 0.0      # cleared at start, filled when ready
    assert np.array_equal(events[0][3], events[1][3])       # no update before on_gradients_ready
    assert not np.array_equal(events[1][3], events[2][3])   # the update comes right after it
