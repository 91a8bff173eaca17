"""Python layers (type: "Python"), as Caffe's pycaffe examples write them: a Euclidean loss that
must equal the built-in EuclideanLoss in loss and gradients (and a numpy recomputation), a layer
with a learnable parameter set from param_str, a Python data layer training through
``nbcaffe train``, errors naming the layer and the module, and the same on the cuda backend
(simulator, tiny net) with and without launch replay."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import caffe

ROOT = Path(__file__).resolve().parents[2]
_ids = itertools.count()

LOSS_MODULE = '''
import numpy as np
import caffe


class EuclideanLossLayer(caffe.Layer):
    """sum((a - b)^2) / (2 N), written the way pycaffe's example loss layer is."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                sign = 1 if i == 0 else -1
                bottom[i].diff[...] = sign * self.diff / bottom[i].num


class ScaleLayer(caffe.Layer):
    """top = bottom * w with one learnable w per feature, initialised from param_str."""

    def setup(self, bottom, top):
        self.init = float(eval(self.param_str)["init"])
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = self.init
        self.seen_phase = self.phase

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(0)
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data


class Broken(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        raise ValueError("something is off\\nin this layer")
'''


def _module(tmp_path: Path) -> str:
    """Write LOSS_MODULE under a fresh name beside the test's prototxts; return that name."""
    name = f"pylayers_{os.getpid()}_{next(_ids)}"
    (tmp_path / f"{name}.py").write_text(LOSS_MODULE)
    return name


def _net_text(loss: str, n: int, d: int, extra: str = "") -> str:
    return textwrap.dedent(f'''
        name: "euclid"
        force_backward: true
        layer {{ name: "in" type: "Input" top: "x" top: "y"
                input_param {{ shape {{ dim: {n} dim: {d} }} shape {{ dim: {n} dim: {d} }} }} }}
        layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                inner_product_param {{ num_output: {d} weight_filler {{ type: "gaussian" std: 0.5 }}
                                      bias_filler {{ type: "gaussian" std: 0.5 }} }} }}
        {extra}
        {loss}
        ''')


def _python_loss(module: str, bottom: str = "ip") -> str:
    return (f'layer {{ name: "loss" type: "Python" bottom: "{bottom}" bottom: "y" top: "loss" '
            f'python_param {{ module: "{module}" layer: "EuclideanLossLayer" }} loss_weight: 1 }}')


BUILTIN_LOSS = 'layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }'


@pytest.mark.parametrize("mode,n,d", [("cpu", 8, 5), ("gpu", 2, 3)])
def test_python_euclidean_loss_equals_the_builtin(mode, n, d, tmp_path):
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()
    mod = _module(tmp_path)
    (tmp_path / "py.prototxt").write_text(_net_text(_python_loss(mod), n, d))
    (tmp_path / "builtin.prototxt").write_text(_net_text(BUILTIN_LOSS, n, d))
    caffe.set_random_seed(3)
    py = caffe.Net(str(tmp_path / "py.prototxt"), caffe.TRAIN)
    builtin = caffe.Net(str(tmp_path / "builtin.prototxt"), caffe.TRAIN)
    builtin.share_with(py)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.standard_normal((n, d)).astype(np.float32)
    results = []
    for net in (py, builtin):
        net.blobs["x"].data[...] = x
        net.blobs["y"].data[...] = y
        net.forward()
        diffs = net.backward(diffs=["ip"])
        results.append((float(net.blobs["loss"].data.ravel()[0]), diffs["x"].copy(), diffs["y"].copy(),
                        diffs["ip"].copy(), net.params["ip"][0].diff.copy(), net.params["ip"][1].diff.copy()))
    # numpy: ip = x W^T + b; loss = |ip - y|^2 / 2n; d loss / d ip = (ip - y) / n
    w, b = py.params["ip"][0].data.astype(np.float64), py.params["ip"][1].data.astype(np.float64)
    ip = x @ w.T + b
    g = (ip - y) / n
    expect = (float(((ip - y) ** 2).sum() / (2 * n)), g @ w, -g, g, g.T @ x, g.sum(0))
    for got_py, got_builtin, want in zip(results[0], results[1], expect):
        np.testing.assert_allclose(got_py, got_builtin, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_py, want, rtol=1e-4, atol=1e-5)
    # net.layers holds the Python layer object itself
    layer = py.layer_dict["loss"]
    assert type(layer).__name__ == "EuclideanLossLayer" and isinstance(layer, caffe.Layer)
    assert layer is py.layers[-1] and layer.type == "Python" and layer.diff.shape == (n, d)


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_learnable_python_layer_trains_saves_and_sees_its_phase(mode, tmp_path, monkeypatch):
    caffe.set_mode_gpu() if mode == "gpu" else caffe.set_mode_cpu()
    mod = _module(tmp_path)
    scale = (f'layer {{ name: "scale" type: "Python" bottom: "ip" top: "ip" python_param {{ '
             f'module: "{mod}" layer: "ScaleLayer" param_str: "{{\'init\': 0.5}}" }} }}')
    (tmp_path / "net.prototxt").write_text(_net_text(_python_loss(mod), 2, 3, extra=scale))
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 3\ndisplay: 0\n'
        'snapshot_prefix: "snap"\nrandom_seed: 5\ntest_iter: 1\ntest_interval: 100\n'
        'test_initialization: false\n')
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver("solver.prototxt")
    layer = solver.net.layer_dict["scale"]
    assert layer.init == 0.5 and layer.seen_phase == caffe.TRAIN
    assert solver.test_nets[0].layer_dict["scale"].seen_phase == caffe.TEST
    np.testing.assert_array_equal(solver.net.params["scale"][0].data, [0.5, 0.5, 0.5])
    rng = np.random.default_rng(1)
    before = solver.net.params["scale"][0].data.copy()
    for _ in range(2):
        solver.net.blobs["x"].data[...] = rng.standard_normal((2, 3))
        solver.net.blobs["y"].data[...] = rng.standard_normal((2, 3))
        # SGD without momentum: w -= lr * dw, with dw the Python layer's own gradient
        solver.net.forward()
        solver.net.clear_param_diffs()
        solver.net.backward()
        expect = solver.net.params["scale"][0].data - 0.1 * solver.net.params["scale"][0].diff
        solver.step(1)
        np.testing.assert_allclose(solver.net.params["scale"][0].data, expect, rtol=1e-5, atol=1e-6)
    assert not np.allclose(solver.net.params["scale"][0].data, before)
    solver.net.save("scaled.caffemodel")
    again = caffe.Net("net.prototxt", caffe.TEST, weights="scaled.caffemodel")
    np.testing.assert_array_equal(again.params["scale"][0].data, solver.net.params["scale"][0].data)


def test_python_layer_errors_name_the_layer_and_module(tmp_path):
    mod = _module(tmp_path)
    broken = (f'layer {{ name: "oops" type: "Python" bottom: "ip" top: "out" '
              f'python_param {{ module: "{mod}" layer: "Broken" }} }}')
    (tmp_path / "broken.prototxt").write_text(_net_text("", 2, 3, extra=broken))
    net = caffe.Net(str(tmp_path / "broken.prototxt"), caffe.TEST)
    with pytest.raises(Exception) as e:
        net.forward()
    msg = str(e.value)
    assert type(e.value).__name__ == "LayerError" and "\n" not in msg
    assert f"layer 'oops' (Python {mod}.Broken)" in msg and "forward" in msg
    assert f"{mod}.py:" in msg and "ValueError: something is off in this layer" in msg
    missing = broken.replace(f'module: "{mod}"', 'module: "no_such_module_xyz"')
    (tmp_path / "missing.prototxt").write_text(_net_text("", 2, 3, extra=missing))
    with pytest.raises(Exception, match="layer 'oops' .*no_such_module_xyz"):
        caffe.Net(str(tmp_path / "missing.prototxt"), caffe.TEST)
    no_class = broken.replace('layer: "Broken"', 'layer: "Nope"')
    (tmp_path / "no_class.prototxt").write_text(_net_text("", 2, 3, extra=no_class))
    with pytest.raises(Exception, match=f"module '{mod}' .* has no class 'Nope'"):
        caffe.Net(str(tmp_path / "no_class.prototxt"), caffe.TEST)


DATA_MODULE = '''
import numpy as np
import caffe


class Blobs(caffe.Layer):
    """Two Gaussian blobs in 4-D, labels 0/1; the batch size comes from param_str."""

    def setup(self, bottom, top):
        self.batch = int(self.param_str)
        self.rng = np.random.default_rng(0)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, 4)
        top[1].reshape(self.batch)

    def forward(self, bottom, top):
        label = self.rng.integers(0, 2, self.batch)
        top[0].data[...] = self.rng.standard_normal((self.batch, 4)) * 0.5 + (2 * label - 1)[:, None]
        top[1].data[...] = label

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_python_data_layer_trains_from_the_command_line(tmp_path):
    """``nbcaffe train`` with a Python data layer whose module sits beside the prototxt (and is
    not on sys.path): the module is found, training runs, accuracy ends near 1."""
    work = tmp_path / "model"
    work.mkdir()
    (work / "pydata_cli.py").write_text(DATA_MODULE)
    (work / "net.prototxt").write_text(textwrap.dedent('''
        name: "pydata"
        layer { name: "data" type: "Python" top: "data" top: "label"
                python_param { module: "pydata_cli" layer: "Blobs" param_str: "16" } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
        layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
        '''))
    (work / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 60\n'
        'display: 20\nsnapshot_prefix: "pydata"\nrandom_seed: 1\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "runner", "train", "-solver",
                           str(work / "solver.prototxt")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    accs = [float(line.rsplit("=", 1)[1]) for line in done.stderr.splitlines()
            if "Train net output" in line and "acc =" in line]
    assert len(accs) == 3 and accs[-1] >= 0.9, done.stderr[-3000:]
    assert (tmp_path / "pydata_iter_60.caffemodel").exists()


def test_python_layer_on_cuda_replays_like_eager(tmp_path, monkeypatch):
    """A training net whose loss is a Python layer, on cuda: with launch replay (the Python layer
    an eager stretch between replayed ones) the weights equal those of the eager run."""
    mod = _module(tmp_path)
    (tmp_path / "net.prototxt").write_text(_net_text(_python_loss(mod), 2, 3).replace(
        'type: "Input"', 'type: "DummyData"').replace(
        "input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } }",
        'dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } '
        'data_filler { type: "gaussian" } data_filler { type: "uniform" } }'))
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 4\n'
        'display: 0\nsnapshot_prefix: "s"\nrandom_seed: 2\n')
    monkeypatch.chdir(tmp_path)
    caffe.set_mode_gpu()
    weights = []
    for replay_on in ("1", "0"):
        monkeypatch.setenv("NBCAFFE_REPLAY", replay_on)
        solver = caffe.get_solver("solver.prototxt")
        solver.step(3)                      # eager, recorded, replayed
        executor = solver._solver.executor  # the runner solver under the pycaffe one
        assert (executor.replays and executor.replayed > 0) == (replay_on == "1")
        weights.append([b.data.copy() for b in solver.net.params["ip"]])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
