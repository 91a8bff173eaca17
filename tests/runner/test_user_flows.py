"""Issue 19: a Caffe user's everyday flows. Fine-tuning logs, the Net set-up log, solver_mode,
draw, plot-log, convert-imageset, HDF5 sources, exact resume of every data layer, snapshot paths,
the LMDB a Net reads staying open to the user, each pinned as the user sees it."""
from __future__ import annotations

import io
import os
import re
import shutil

import numpy as np
import pytest

from netdef.errors import DataError, SolverError
from netdef.weights import caffemodel_blobs, read_caffemodel, write_caffemodel
from proto import caffe_pb2 as pb
from runner.cli import main
from runner.net import Net
from runner.solver.glog import GLog
from runner.solver.solver import Solver
from tests.runner.test_solver import make_db, run, weights, write


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_db(tmp_path / "tiny_lmdb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def messages(log: str) -> list[str]:
    """The messages of glog lines (prefix removed)."""
    return [m.group(1) for m in re.finditer(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] (.*)$", log, re.M)]


# ---------------------------------------------------------------------------- 1. fine-tuning
def test_finetuning_logs_what_it_copied(workdir, capsys):
    solver = write(workdir, max_iter=10, snapshot=10)
    assert main(["train", "-solver", solver]) == 0
    net = read_caffemodel("snap/tiny_iter_10.caffemodel")
    for lp in net.layer:
        if lp.name == "ip2":
            lp.name = "ip2_old"            # the user renamed the last layer to learn it afresh
    blobs = caffemodel_blobs(net)
    write_caffemodel("base.caffemodel", blobs, net=net)
    capsys.readouterr()
    solver = write(workdir, max_iter=0, snapshot=0)       # the fine-tuned weights, before training
    assert main(["train", "-solver", solver, "-weights", "base.caffemodel"]) == 0
    log = messages(capsys.readouterr().err)
    assert "Finetuning from base.caffemodel" in log
    assert "Ignoring source layer ip2_old" in log                      # Caffe's line
    assert "base.caffemodel: no weights for layer(s) ip2: they keep their fresh initialisation" in log
    got = caffemodel_blobs(read_caffemodel("snap/tiny_iter_0.caffemodel"))
    np.testing.assert_array_equal(got["ip1"][1][0], blobs["ip1"][1][0])          # copied
    assert not np.array_equal(got["ip2"][1][0], blobs["ip2_old"][1][0])          # fresh


# ---------------------------------------------------------------------------- 2. Net set-up log
def test_net_setup_log_in_caffes_words(workdir, capsys):
    solver = write(workdir, max_iter=1, snapshot=0)
    assert main(["train", "-solver", solver]) == 0
    log = messages(capsys.readouterr().err)
    start = log.index("Creating training net from net.prototxt")
    train = log[start:log.index("Network initialization done.", start) + 1]
    assert "The NetState phase (0) differed from the phase (1) specified by a rule in layer acc" in train
    # data 4x1x6x6 + label 4 floats = 592 bytes, then each layer's tops are added (Caffe's count)
    expect = ["Creating Layer d", "d -> data", "d -> label", "Opened lmdb tiny_lmdb",
              "output data size: 4,1,6,6", "Setting up d", "Top shape: 4 1 6 6 (144)",
              "Top shape: 4 (4)", "Memory required for data: 592", "Creating Layer ip1", "ip1 <- data",
              "ip1 -> ip1", "Setting up ip1", "Top shape: 4 6 (24)", "Memory required for data: 688",
              "Creating Layer relu", "relu <- ip1", "relu -> ip1 (in-place)", "Setting up relu",
              "Top shape: 4 6 (24)", "Memory required for data: 784"]
    i = train.index("Creating Layer d")
    assert train[i:i + len(expect)] == expect
    assert "Top shape: (1)" in train and "    with loss weight 1" in train
    tail = train[train.index("loss needs backward computation."):]
    assert tail == ["loss needs backward computation.", "ip2 needs backward computation.",
                    "relu needs backward computation.", "ip1 needs backward computation.",
                    "d does not need backward computation.", "This network produces output loss",
                    "Network initialization done."]
    test_net = log[log.index("Creating test net (#0) specified by net.prototxt"):]
    assert "acc does not need backward computation." in test_net
    assert "This network produces output accuracy" in test_net
    # caffe test / caffe time print them too; a Python user's Net prints nothing unless asked
    assert main(["test", "-model", "net.prototxt", "-weights", "snap/tiny_iter_1.caffemodel",
                 "-iterations", "1"]) == 0
    assert "Network initialization done." in messages(capsys.readouterr().err)
    assert main(["time", "-model", "net.prototxt", "-iterations", "1"]) == 0
    assert "Network initialization done." in messages(capsys.readouterr().err)
    net = Net("net.prototxt", "TEST")
    net.close()
    assert capsys.readouterr().err == ""
    buf = io.StringIO()
    Net("net.prototxt", "TEST", log=GLog(stream=buf)).close()
    assert "Network initialization done." in messages(buf.getvalue())


# ---------------------------------------------------------------------------- 3. solver_mode
def test_solver_mode_gpu_without_a_gpu_runs_on_cpu_with_one_line(workdir, capsys, monkeypatch):
    import runner.backend as backend
    monkeypatch.setattr(backend, "cuda_problem", lambda: "no usable CUDA GPU was found (test)")
    solver = write(workdir, max_iter=2, snapshot=0, more="solver_mode: GPU device_id: 1")
    assert main(["train", "-solver", solver]) == 0
    log = messages(capsys.readouterr().err)
    assert ("solver_mode is GPU (device_id 1) but no usable CUDA GPU was found (test): using the "
            "cpu backend") in log
    assert "Optimization Done." in log
    # an explicit -gpu on the same machine is an error, not a silent fallback
    assert main(["train", "-solver", solver, "-gpu", "0"]) == 1
    assert "-gpu 0 asks for the cuda backend, but no usable CUDA GPU was found (test)" in \
        capsys.readouterr().err


def test_solver_mode_gpu_uses_device_id(workdir, capsys, monkeypatch):
    """With a GPU (here: Numba's simulator), solver_mode: GPU selects device_id as caffe.cpp
    does; an id the machine lacks is one line naming what was found."""
    import runner.backend as backend
    chosen = []
    monkeypatch.setattr(backend, "cuda_problem", lambda: None)
    monkeypatch.setattr(backend, "select_gpu", lambda i: chosen.append(i) or "Test GPU")
    solver = write(workdir, max_iter=0, snapshot=0, more="solver_mode: GPU device_id: 1")
    from netdef.prototxt import read_solver
    from runner.commands._common import resolve_device

    class Args:
        device = gpu = None
    lines = []
    assert resolve_device(Args(), read_solver(solver), lambda m, *a: lines.append(m)) == "cuda"
    assert chosen == [1] and lines == ["Using GPUs 1", "GPU 1: Test GPU"]
    monkeypatch.undo()
    if backend.cuda_problem() is None:        # simulator or a real GPU: ask for one too many
        from numba import cuda
        n = len(cuda.gpus)
        with pytest.raises(Exception, match=f"GPU {n} was asked for, but this machine has {n} GPU"):
            backend.select_gpu(n)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------- 4. draw
def test_draw_follows_the_extension(caffe_models, tmp_path, capsys, monkeypatch):
    net = str(caffe_models / "lenet_train_test.prototxt")
    monkeypatch.chdir(tmp_path)
    assert main(["draw", net, "net.dot", "--rankdir", "TB", "--phase", "TRAIN"]) == 0   # draw_net.py form
    dot = open("net.dot").read()
    assert "rankdir=TB;" in dot and dot.count("shape=record") == 9     # TRAIN: no accuracy layer
    assert main(["draw", net, "-o", "all.dot"]) == 0                       # default phase ALL
    assert open("all.dot").read().count("shape=record") == 11              # both data layers
    import runner.draw as draw
    if shutil.which("dot"):
        assert main(["draw", net, "net.png"]) == 0
        assert open("net.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        assert main(["draw", net, "net.svg"]) == 0
        assert "<svg" in open("net.svg").read()
        assert main(["draw", net, "net.pdf"]) == 0
        assert open("net.pdf", "rb").read(5) == b"%PDF-"
    capsys.readouterr()
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)      # a machine without Graphviz
    assert main(["draw", net, "none.png"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rendering .png needs Graphviz's 'dot' program" in err[0]
    assert "apt-get install graphviz" in err[0] and not os.path.exists("none.png")
    assert main(["draw", net, "net.txt"]) == 1
    assert "unknown drawing format '.txt'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 5. plot-log
def test_plot_log_panels_colours_markers(workdir, capsys):
    pytest.importorskip("matplotlib")
    solver = write(workdir, max_iter=30, snapshot=0, display=10, test_interval=15)
    assert main(["train", "-solver", solver, "--log", "train.log"]) == 0
    assert main(["plot-log", "train.log", "-o", "curves.png", "--csv", "parsed"]) == 0
    assert open("curves.png", "rb").read(4) == b"\x89PNG"
    train_csv = open("parsed.train.csv").read().splitlines()
    assert train_csv[1].startswith("0,") and ",0.1," in train_csv[1]      # int iteration, lr at 0
    assert "nan" not in open("parsed.test.csv").read()
    from runner.commands.plot_log import build_figure
    from runner.solver.parse_log import parse_log
    fig = build_figure([("train.log", *parse_log("train.log"))])
    loss_ax, acc_ax = fig.axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["train loss", "test loss"]
    assert [ln.get_label() for ln in acc_ax.lines] == ["test accuracy"]
    lines = loss_ax.lines + acc_ax.lines
    assert len({ln.get_color() for ln in lines}) == 3                   # distinct colours
    assert all(ln.get_marker() not in (None, "None", "") for ln in lines)
    assert loss_ax.get_legend() is not None and acc_ax.get_legend() is not None
    assert all(float(t).is_integer() for t in acc_ax.get_xticks())
    # a log with a single display point still draws (a marker)
    assert main(["train", "-solver", write(workdir, max_iter=1, snapshot=0, display=1,
                                           test_interval=100), "--log", "one.log"]) == 0
    fig = build_figure([("one.log", *parse_log("one.log"))])
    assert len(fig.axes[0].lines[0].get_xdata()) == 1 and fig.axes[0].lines[0].get_marker() == "o"
    # Caffe's plot_training_log.py form: chart type 6 (train loss vs iters), image, logs
    assert main(["plot-log", "6", "chart.png", "train.log", "one.log"]) == 0
    assert os.path.getsize("chart.png") > 1000


# ---------------------------------------------------------------------------- 6. convert-imageset
def test_convert_imageset_skips_unreadable_images(tmp_path, capsys):
    from PIL import Image
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 3), (10, 20, 30)).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "list.txt").write_text("a.png 0\nmissing.png 1\nbroken.png 2\nb.png 1\n")
    root = str(tmp_path) + "/"
    assert main(["convert-imageset", root, str(tmp_path / "list.txt"), str(tmp_path / "db")]) == 0
    err = capsys.readouterr().err
    warns = [x for x in err.splitlines() if x.startswith("W")]
    assert len(warns) == 3 and "missing.png" in warns[0] and "broken.png" in warns[1]
    assert "Skipped 2 of 4 images that could not be read" in warns[2]
    from runner.data.db import open_reader
    with open_reader(tmp_path / "db") as r:
        keys = [r.next()[0] for _ in range(len(r))]
    assert keys == [b"00000000_a.png", b"00000003_b.png"]          # Caffe's keys keep the gaps
    assert main(["convert-imageset", root, str(tmp_path / "list.txt"), str(tmp_path / "db2"),
                 "--strict"]) == 1
    assert "missing.png: image file not found (--strict" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "db2") and not os.path.exists(tmp_path / "db2.tmp")


# ---------------------------------------------------------------------------- 7. HDF5 source
def test_hdf5_source_pointing_at_an_h5_file(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["data"] = np.zeros((4, 3), np.float32)
        f["label"] = np.zeros(4, np.float32)
    p = tmp_path / "net.prototxt"
    p.write_text(f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" hdf5_data_param '
                 f'{{ source: "{tmp_path / "train.h5"}" batch_size: 2 }} }}')
    for argv in (["inspect", str(p)], ["time", "-model", str(p), "-iterations", "1"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "UnicodeDecodeError" not in err
        assert "source " in err and "train.h5 is an HDF5 file; HDF5Data's source must be a text file " \
            "listing HDF5 files" in err


# ---------------------------------------------------------------------------- 8. exact resume
IMAGE_NET = """name: "img"
layer {{ name: "d" type: "{type}" top: "data" top: "label" {params} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""
RESUME_SOLVER = """net: "net.prototxt" base_lr: 0.05 momentum: 0.9 lr_policy: "fixed" display: 0
max_iter: 20 snapshot: 10 snapshot_prefix: "snap/r" {seed}
"""


def data_net(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "ImageData":
        from PIL import Image
        lines = []
        for i in range(7):
            Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
            lines.append(f"{i}.png {i % 3}")
        (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
        params = ('image_data_param { source: "list.txt" batch_size: 3 shuffle: true } '
                  'transform_param { crop_size: 4 mirror: true scale: 0.01 }')
    elif kind == "HDF5Data":
        import h5py
        for j in range(2):
            with h5py.File(tmp_path / f"p{j}.h5", "w") as f:
                f["data"] = rng.standard_normal((5 + j, 2, 3, 3)).astype(np.float32)
                f["label"] = (np.arange(5 + j) % 3).astype(np.float32)
        (tmp_path / "h5.txt").write_text("p0.h5\np1.h5\n")
        params = 'hdf5_data_param { source: "h5.txt" batch_size: 4 shuffle: true }'
    else:
        params = "memory_data_param { batch_size: 2 channels: 2 height: 3 width: 3 }"
    (tmp_path / "net.prototxt").write_text(IMAGE_NET.format(type=kind, params=params))


def memory_arrays(solver):
    layer = solver.net.layer_dict.get("d")
    if layer is not None and layer.type == "MemoryData":
        rng = np.random.default_rng(1)
        layer.set_input_arrays(rng.standard_normal((6, 2, 3, 3)).astype(np.float32),
                               (np.arange(6) % 3).astype(np.float32))


@pytest.mark.parametrize("kind", ["ImageData", "HDF5Data", "MemoryData"])
@pytest.mark.parametrize("seed", ["", "random_seed: 5"])
def test_resume_is_bit_exact_for_every_data_layer(tmp_path, monkeypatch, kind, seed):
    """20 iterations straight == 10, snapshot, resume, 10 more: with or without random_seed (the
    snapshot carries each data layer's seed and position), for shuffled ImageData with crops and
    mirrors, shuffled HDF5Data and MemoryData."""
    pytest.importorskip("h5py")
    monkeypatch.chdir(tmp_path)
    data_net(tmp_path, kind)
    (tmp_path / "solver.prototxt").write_text(RESUME_SOLVER.format(seed=seed))

    def solve(resume=None):
        s = Solver("solver.prototxt", log=GLog(stream=io.StringIO()))
        memory_arrays(s)
        try:
            s.solve(resume)
        finally:
            s.close()
        return s
    w = weights(solve())
    resumed = solve("snap/r_iter_10.solverstate")
    for name, v in weights(resumed).items():
        np.testing.assert_array_equal(v, w[name], err_msg=name)


def test_our_solverstate_is_still_caffes(workdir):
    """Caffe's reader (protobuf's SolverState parser) reads the file: the stream record sits in a
    field caffe.proto does not declare, which protobuf keeps as unknown and Caffe ignores."""
    run(write(workdir, max_iter=10, snapshot=10))
    raw = open("snap/tiny_iter_10.solverstate", "rb").read()
    st = pb.SolverState()
    st.ParseFromString(raw)
    assert st.iter == 10 and st.learned_net == "snap/tiny_iter_10.caffemodel" and len(st.history) == 4
    assert b'"streams"' in raw and b"\xc2\xb8\x02" in raw          # field 5000, wire type 2
    clean = pb.SolverState()
    clean.CopyFrom(st)
    clean.DiscardUnknownFields()
    assert raw.startswith(clean.SerializeToString())             # Caffe's fields, byte for byte


# ---------------------------------------------------------------------------- 9. paths
def test_snapshot_prefix_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    make_db(tmp_path / "proj" / "tiny_lmdb")
    solver = write(tmp_path / "proj", max_iter=2, snapshot=0)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")                   # started from elsewhere, as the issue did
    s, log = run(solver)
    assert os.path.exists(tmp_path / "run" / "snap" / "tiny_iter_2.caffemodel")   # Caffe's rule
    lines = [m for m in messages(log) if m.startswith("Snapshots go to ")]
    assert lines == [f"Snapshots go to {tmp_path / 'run' / 'snap' / 'tiny'}_iter_<N>.caffemodel"]
    (tmp_path / "run" / "blocker").write_text("a file where the folder should be")
    text = open(solver).read().replace('snapshot_prefix: "snap/tiny"', 'snapshot_prefix: "blocker/x"')
    open(solver, "w").write(text)
    with pytest.raises(SolverError, match="Cannot write to snapshot prefix 'blocker/x'"):
        run(solver)


# ---------------------------------------------------------------------------- 10. LMDB sharing
def test_users_lmdb_open_works_beside_a_net(workdir):
    lmdb = pytest.importorskip("lmdb")
    write(workdir, max_iter=1)
    net = Net("net.prototxt", "TRAIN")
    try:
        net.forward()
        env = lmdb.open("tiny_lmdb", readonly=True, lock=False)     # the user's own look
        with env.begin() as txn:
            assert txn.stat()["entries"] == 40
        env.close()
        net.forward()
    finally:
        net.close()


def test_missing_and_corrupt_sources_stay_data_errors(workdir):
    shutil.rmtree("tiny_lmdb")
    os.mkdir("tiny_lmdb")
    write(workdir, max_iter=1)
    with pytest.raises(DataError, match="no data.mdb in it"):
        Net("net.prototxt", "TRAIN")
