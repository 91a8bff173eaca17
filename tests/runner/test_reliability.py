"""Issue 15: every fault a user can cause ends in one line naming the file, layer or record and
what is wrong (exit code 1), never a traceback, a bus error or a silent skip. Each case of the
issue is pinned here; the fuzz suite is tests/netdef/test_fuzz.py."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from netdef.errors import (
    CaffeError,
    NetDefinitionError,
    ResourceError,
    ShapeError,
    SolverError,
    WeightsError,
)
from netdef.weights import read_caffemodel, write_caffemodel
from runner.cli import main
from runner.net import Net
from runner.solver.glog import GLog
from runner.solver.solver import Solver
from tests.conftest import ROOT, _gpu_present
from tests.runner.test_solver import make_db, run, weights, write


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_line(err: str) -> str:
    """The CLI's error: exactly one 'nbcaffe: error:' line and no traceback."""
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("nbcaffe: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def cli(*argv: str, env_drop: tuple[str, ...] = (), timeout: int = 300) -> subprocess.CompletedProcess:
    """nbcaffe in a child process (signals and exit codes as a shell sees them)."""
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "runner", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)


# ---------------------------------------------------------------------------- 1. test_iter
@pytest.mark.parametrize("n", [0, -1])
def test_test_iter_must_be_positive(workdir, capsys, n):
    solver = write(workdir, max_iter=2)
    text = open(solver).read().replace("test_iter: 2", f"test_iter: {n}")
    open(solver, "w").write(text)
    for argv in (["train", "-solver", solver], ["inspect", solver]):
        assert main(argv) == 1
        line = error_line(capsys.readouterr().err)
        assert f"test_iter: {n}" in line and "test net #0" in line and solver in line


# ---------------------------------------------------------------------------- 2. sizes, memory
DEPLOY = """name: "big"
layer {{ name: "in" type: "Input" top: "data" input_param {{ shape {{ dim: {shape} }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: {num_output} kernel_size: 3 pad: {pad} }} }}
"""


def deploy(tmp_path, shape="1 dim: 3 dim: 8 dim: 8", num_output="4", pad="0"):
    p = tmp_path / "deploy.prototxt"
    p.write_text(DEPLOY.format(shape=shape, num_output=num_output, pad=pad))
    return str(p)


@pytest.mark.parametrize("field,kw", [("convolution_param.num_output", {"num_output": "4294967295"}),
                                      ("convolution_param.pad", {"pad": "4294967295"})])
def test_uint32_fields_are_checked_as_caffe_ints(tmp_path, capsys, field, kw):
    path = deploy(tmp_path, **kw)
    for argv in (["inspect", path], ["time", "-model", path, "-iterations", "1"]):
        assert main(argv) == 1
        line = error_line(capsys.readouterr().err)
        assert f"layer 'conv' (Convolution): {field} = 4294967295" in line
        assert "2147483647" in line and path in line
    with pytest.raises(NetDefinitionError, match=re.escape(field)):
        Net(path)


def test_blob_beyond_int_max_is_refused(tmp_path, capsys):
    """An Input of 100000x3x227x227 (15.5e9 values) is more than a Caffe Blob holds (INT_MAX)."""
    path = deploy(tmp_path, shape="100000 dim: 3 dim: 227 dim: 227")
    for argv in (["inspect", path], ["time", "-model", path, "-iterations", "1"]):
        assert main(argv) == 1
        line = error_line(capsys.readouterr().err)
        assert "layer 'in' (Input): top 'data'" in line and "15,458,700,000 elements" in line
    with pytest.raises(ShapeError, match="INT_MAX"):
        Net(path)


def test_net_bigger_than_memory_is_refused_before_allocating(tmp_path, capsys):
    """Eight tops of 2e9 values each (each within INT_MAX): 128 GB with their diffs."""
    p = tmp_path / "huge.prototxt"
    tops = "".join(f' top: "t{i}"' for i in range(8))
    shapes = "".join(" shape { dim: 2000000000 }" for _ in range(8))
    p.write_text(f'name: "huge" layer {{ name: "in" type: "Input"{tops} input_param {{{shapes} }} }}')
    for argv in (["inspect", str(p)], ["time", "-model", str(p), "-iterations", "1"]):
        assert main(argv) == 1
        line = error_line(capsys.readouterr().err)
        assert re.search(r"net 'huge' \((TEST|TRAIN)\) needs 119\.2 GiB", line)
        assert "largest blob 't0' 7.5 GiB" in line
        assert "of available host memory is left on the cpu backend" in line
    with pytest.raises(ResourceError, match="needs 119.2 GiB"):
        Net(str(p))


def test_memory_figure_matches_what_the_net_allocates(caffe_models, monkeypatch, capsys):
    """netdef.limits.estimate_memory (printed by inspect) against the buffers a built Net holds:
    every distinct blob's data and diff, every parameter once (the diffs included)."""
    from netdef.limits import estimate_memory, human
    path = str(caffe_models / "lenet_deploy.prototxt")
    net = Net(path)
    bufs = {}
    for b in net.blobs.values():
        bufs[id(b._data)], bufs[id(b._diff)] = b._data.capacity, b._diff.capacity
    for blobs in net.params.values():
        for b in blobs:
            bufs[id(b._data)], bufs[id(b._diff)] = b._data.capacity, b._diff.capacity
    est = estimate_memory(net.graph)
    assert est.blobs + est.params == 4 * sum(bufs.values())
    assert est.workspace == 4 * 64 * 20 * 5 * 5 * 8 * 8     # conv2's columns: 20*5*5 x 64*8*8
    assert main(["inspect", path]) == 0
    assert f"memory: {human(est.total)} (blobs " in capsys.readouterr().out
    # with (pretend) 1 KiB free, the same net is refused with the figures
    import runner.backend.base as base
    monkeypatch.setattr(base, "host_available_memory", lambda: 1024)
    with pytest.raises(ResourceError, match=r"needs .* but only 1\.0 KiB of available host memory"):
        Net(path)


def test_inspect_runs_the_checks_net_and_solver_run(workdir, capsys):
    """A file inspect accepts builds: filler types, dropout range (layer setup) and solver
    fields fail in inspect exactly as in Net()/train."""
    bad_filler = write(workdir, max_iter=2)
    net = (workdir / "net.prototxt").read_text()
    (workdir / "net.prototxt").write_text(net.replace('type: "xavier"', 'type: "xavierr"', 1))
    assert main(["inspect", bad_filler]) == 1
    assert "unknown filler type 'xavierr'" in error_line(capsys.readouterr().err)
    (workdir / "net.prototxt").write_text(net.replace(
        'layer { name: "ip2"', 'layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" '
        'dropout_param { dropout_ratio: 1.5 } }\nlayer { name: "ip2"'))
    assert main(["inspect", bad_filler]) == 1
    assert "dropout_ratio must be in [0, 1), got 1.5" in error_line(capsys.readouterr().err)
    (workdir / "net.prototxt").write_text(net)
    s = open(bad_filler).read()
    for change, msg in [(('type: "SGD"', 'type: "AdaGrad"'), "Momentum cannot be used with AdaGrad"),
                        (('lr_policy: "inv"', 'lr_policy: "invv"'), "Unknown learning rate policy"),
                        (("iter_size: 1", "iter_size: 0"), "iter_size must be >= 1")]:
        open(bad_filler, "w").write(s.replace(*change))
        assert main(["inspect", bad_filler]) == 1
        assert msg in error_line(capsys.readouterr().err)
        with pytest.raises(SolverError, match=msg):
            Solver(bad_filler, log=GLog(stream=io.StringIO()))


# ---------------------------------------------------------------------------- 3. LMDB
def test_truncated_lmdb_is_one_line_not_sigbus(workdir):
    solver = write(workdir, max_iter=3)
    data = workdir / "tiny_lmdb" / "data.mdb"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    r = cli("train", "-solver", solver)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])      # not 135 (SIGBUS)
    line = error_line(r.stderr)
    assert "layer 'd': " in line and "data.mdb: truncated: the file has" in line


def test_corrupt_lmdb_record_names_database_and_key(workdir, capsys):
    """A flipped length in the node of record '00000005' (found in the raw file by its key)."""
    solver = write(workdir, max_iter=3)
    path = workdir / "tiny_lmdb" / "data.mdb"
    raw = bytearray(path.read_bytes())
    at = raw.find(b"00000005")
    raw[at - 6:at - 4] = b"\xff\x00"           # node header: lo, hi (value size), flags, ksize
    path.write_bytes(bytes(raw))
    assert main(["train", "-solver", solver]) == 1
    line = error_line(capsys.readouterr().err)
    assert "tiny_lmdb/data.mdb: record '00000005'" in line and "runs past its page" in line


# ---------------------------------------------------------------------------- 4. NaN
def diverging(workdir, snapshot: int):
    path = write(workdir, lr=0.5, momentum=0.9, max_iter=300, snapshot=snapshot, test_interval=1000,
                 display=0)
    text = open(path).read().replace('lr_policy: "inv"', 'lr_policy: "exp"').replace(
        "gamma: 0.0001", "gamma: 1.5")
    open(path, "w").write(text)
    return path


def test_nan_names_the_last_snapshot_that_resumes_finite(workdir):
    path = diverging(workdir, snapshot=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no numpy RuntimeWarning on the way to the NaN
        with pytest.raises(SolverError) as e:
            run(path)
    m = re.match(r"Iteration (\d+): the training loss is (nan|inf|-inf); stopping\. Last good "
                 r"snapshot: snap/tiny_iter_(\d+)\.solverstate \(resume with -snapshot .*\); "
                 r"snap/tiny_iter_(\d+)\.solverstate holds the weights that gave this loss",
                 str(e.value))
    assert m, str(e.value)
    it, good, bad = int(m.group(1)), int(m.group(3)), int(m.group(4))
    assert bad == it and good == it - 1
    # the named one really resumes: its first forward gives a finite loss
    s = Solver(path, log=GLog(stream=io.StringIO()))
    try:
        s.restore(f"snap/tiny_iter_{good}.solverstate")
        s.step(1)
        assert np.isfinite(s.smoothed_loss)
    finally:
        s.close()


def test_nan_in_the_cli_is_one_line(workdir):
    r = cli("train", "-solver", diverging(workdir, snapshot=5))
    assert r.returncode == 1
    assert "RuntimeWarning" not in r.stderr
    assert re.search(r"Iteration \d+: the training loss is nan; stopping\. Last good snapshot: "
                     r"snap/tiny_iter_\d+\.solverstate", error_line(r.stderr))


def test_accuracy_of_non_finite_scores_is_nan(tmp_path):
    p = tmp_path / "acc.prototxt"
    p.write_text('layer { name: "s" type: "Input" top: "s" top: "l" input_param { shape { dim: 4 '
                 'dim: 3 } shape { dim: 4 } } }\nlayer { name: "acc" type: "Accuracy" bottom: "s" '
                 'bottom: "l" top: "acc" }')
    net = Net(str(p))
    labels = np.array([0, 1, 2, 1], np.float32)
    scores = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    assert net.forward(s=scores, l=labels)["acc"] == pytest.approx(0.75)   # numpy: 3 of 4 argmax
    scores[1, 1] = np.nan
    assert np.isnan(net.forward(s=scores, l=labels)["acc"])
    scores[1, 1] = np.inf
    assert np.isnan(net.forward(s=scores, l=labels)["acc"])


# ---------------------------------------------------------------------------- 5. weights
def renamed_model(src: str, dst: str, rename) -> None:
    net = read_caffemodel(src)
    for lp in net.layer:
        lp.name = rename(lp.name)
    from netdef.weights import caffemodel_blobs
    write_caffemodel(dst, {n: v for n, v in caffemodel_blobs(net).items()}, net=net)


def test_weights_that_match_no_layer(workdir, capsys):
    solver = write(workdir, max_iter=10, snapshot=10)
    assert main(["train", "-solver", solver]) == 0
    capsys.readouterr()
    renamed_model("snap/tiny_iter_10.caffemodel", "renamed.caffemodel", lambda n: "x_" + n)
    assert main(["test", "-model", "net.prototxt", "-weights", "renamed.caffemodel"]) == 1
    line = error_line(capsys.readouterr().err)
    assert "renamed.caffemodel sets no layer of net 'tiny'" in line and "x_ip1" in line
    assert main(["train", "-solver", solver, "-weights", "renamed.caffemodel", "--max-iter", "1"]) == 0
    err = capsys.readouterr().err
    assert "] Ignoring source layer x_ip1" in err
    warn = [x for x in err.splitlines() if x.startswith("W") and "sets no layer" in x]
    assert len(warn) == 1 and "Every layer keeps its fresh initialisation" in warn[0]
    with pytest.warns(UserWarning, match="sets no layer"):
        Net("net.prototxt", "TEST", weights="renamed.caffemodel")


# ---------------------------------------------------------------------------- 6. no GPU
@pytest.mark.skipif(_gpu_present(), reason="this machine has a GPU")
def test_gpu_asked_without_one_is_one_line(workdir):
    solver = write(workdir, max_iter=2)
    sim = ("NUMBA_ENABLE_CUDASIM", "NBCAFFE_DEVICE")
    for argv, asked in [(["train", "-solver", solver, "-gpu", "0"], "-gpu 0"),
                        (["test", "-model", "net.prototxt", "-weights", "x", "-gpu", "0"], "-gpu 0"),
                        (["time", "-model", "net.prototxt", "--device", "cuda"], "--device cuda")]:
        r = cli(*argv, env_drop=sim)
        assert r.returncode == 1
        assert r.stderr.strip().splitlines() == [error_line(r.stderr)]   # nothing else at all
        assert f"{asked} asks for the cuda backend, but no usable CUDA GPU was found" in r.stderr
    code = "from runner import Net; Net('net.prototxt', device='cuda')"
    env = {k: v for k, v in os.environ.items() if k not in sim}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "CudaSupportError" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "netdef.errors.ResourceError: device 'cuda' was asked for, but no usable CUDA GPU was found")


# ---------------------------------------------------------------------------- 7. signals, pairs
def test_sigterm_in_the_cli_exits_0_with_a_snapshot(workdir):
    solver = write(workdir, max_iter=100000, snapshot=0, display=1, test_interval=100000)
    p = subprocess.Popen([sys.executable, "-m", "runner", "train", "-solver", solver, "--log", "t.log"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    import time
    deadline = time.time() + 240
    while time.time() < deadline and not re.search(r"Iteration [3-9]\d* ", open("t.log").read()
                                                   if os.path.exists("t.log") else ""):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-1500:]
    m = re.search(r"Received SIGTERM: snapshotting and stopping after iteration (\d+)", err)
    assert m and "Optimization stopped early." in err
    it = m.group(1)
    assert os.path.exists(f"snap/tiny_iter_{it}.caffemodel")
    assert os.path.exists(f"snap/tiny_iter_{it}.solverstate")


def test_snapshot_temp_names_are_made_once_model_first(workdir, monkeypatch):
    s = Solver(write(workdir, max_iter=2, snapshot=0), log=GLog(stream=io.StringIO()))
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    try:
        s.snapshot()
    finally:
        s.close()
    assert renames == [("snap/tiny_iter_0.caffemodel.tmp", "snap/tiny_iter_0.caffemodel"),
                       ("snap/tiny_iter_0.solverstate.tmp", "snap/tiny_iter_0.solverstate")]


def test_incomplete_pairs_and_stale_temp_files_are_named(workdir):
    path = write(workdir, max_iter=20, snapshot=10)
    run(path)
    os.remove("snap/tiny_iter_20.solverstate")        # killed between the model and the state
    open("snap/tiny_iter_20.solverstate.tmp", "wb").write(b"\0" * 10)
    buf = io.StringIO()
    s = Solver(path, log=GLog(stream=buf))
    try:
        with pytest.raises(SolverError) as e:
            s.restore("snap/tiny_iter_20.solverstate")
    finally:
        s.close()
    assert ("its model snap/tiny_iter_20.caffemodel was written but the state was not (the run "
            "stopped while snapshotting): this snapshot pair is incomplete; the newest complete "
            "snapshot is snap/tiny_iter_10.solverstate") in str(e.value)
    assert ("Removed 1 unfinished snapshot file(s) of a stopped run: "
            "snap/tiny_iter_20.solverstate.tmp") in buf.getvalue()
    assert not os.path.exists("snap/tiny_iter_20.solverstate.tmp")
    run(path, resume="snap/tiny_iter_10.solverstate")
    os.remove("snap/tiny_iter_10.caffemodel")
    with pytest.raises(SolverError, match="incomplete snapshot pair: its learned_net "
                                          "snap/tiny_iter_10.caffemodel was not found"):
        run(path, resume="snap/tiny_iter_10.solverstate")


# ---------------------------------------------------------------------------- 8. data shapes
def test_test_data_of_another_shape_points_at_the_data(workdir):
    make_db(workdir / "rgb_lmdb", shape=(3, 6, 6))
    path = write(workdir, max_iter=2)
    net = (workdir / "net.prototxt").read_text()
    head, sep, tail = net.partition("include { phase: TEST }")
    (workdir / "net.prototxt").write_text(head + sep + tail.replace("tiny_lmdb", "rgb_lmdb", 1))
    with pytest.raises(WeightsError) as e:
        run(path)
    msg = str(e.value)
    assert "share_weights: layer 'ip1' param 0" in msg
    assert ("data top 'data' is 3x6x6 per item here (layer 'd', rgb_lmdb) but 1x6x6 in net 'tiny' "
            "(layer 'd', tiny_lmdb): the data sources disagree") in msg


def test_every_user_error_above_is_a_caffe_error():
    """The error types the CLI turns into one line are all CaffeError subclasses."""
    for cls in (NetDefinitionError, ShapeError, ResourceError, SolverError, WeightsError):
        assert issubclass(cls, CaffeError)


def test_solverstate_weights_equal_after_sigterm_resume(workdir):
    """Stopping on SIGTERM and resuming gives the weights of a run never stopped."""
    path = write(workdir, max_iter=8, snapshot=0, more="test_initialization: false")
    straight, _ = run(path)
    w = weights(straight)
    s = Solver(path, log=GLog(stream=io.StringIO()))

    class TermAt5:
        def update(self, n):
            if s.iter == 5:
                os.kill(os.getpid(), signal.SIGTERM)
    s.progress = TermAt5()
    try:
        s.solve()
    finally:
        s.close()
    resumed, _ = run(path, resume="snap/tiny_iter_5.solverstate")
    for name, v in weights(resumed).items():
        np.testing.assert_array_equal(v, w[name], err_msg=name)
