"""Fuzzing what users feed nbcaffe: mutated prototxts (the Caffe corpus in ../shared/caffe-models
and this repository's examples), mutated weight files and damaged LMDBs. The only outcomes
allowed are a valid net (parsed, its graph built and, for the small nets, a runner.Net
constructed) or a CaffeError subclass: no other exception type, no signal (the LMDB cases run in
a process of their own). Seeded; example counts are CI defaults (about a minute in all on 2
cores) that ``NBCAFFE_FUZZ_EXAMPLES`` raises for soak runs, and ``NBCAFFE_FUZZ_REPORT`` collects
the tally (see tests/netdef/fuzz_common.py; the last long run is in docs/netdef.md)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import CaffeError
from netdef.graph import build_graph, filter_layers
from netdef.limits import estimate_memory
from netdef.prototxt import read_net, read_solver, solver_nets
from proto import caffe_pb2 as pb
from tests.conftest import ROOT, SHARED
from tests.netdef.corpus import aliases, declared_states, input_shapes_for
from tests.netdef.fuzz_common import fuzz_settings, mutate_bytes, record, write_report

MODELS = SHARED / "caffe-models"
CORPUS = sorted(MODELS.glob("*.prototxt")) if MODELS.is_dir() else []
CORPUS += sorted((ROOT / "examples").rglob("*.prototxt"))
TOKENS = ["{", "}", ":", '"', "layer", "layers", "bottom", "top", "-1", "0", "99999999999",
          "TRAIN", "include", "param", "Convolution", "kernel_size", "num_output", "1e40", "'",
          "#", "\n", "lr_mult", "shape", "dim", "4294967295", "dropout_ratio: 2", 'type: "nope"']
#: a runner.Net is built for graphs up to this size (bigger ones stop at the graph: time)
NET_BYTES = 64 << 20


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    write_report()


def _mutate(text: str, data) -> str:
    op = data.draw(st.sampled_from(["delete", "duplicate", "replace_char", "replace_token",
                                    "truncate", "number"]))
    n = len(text)
    i = data.draw(st.integers(0, max(n - 1, 0)))
    if op == "delete":
        j = data.draw(st.integers(i, min(n, i + 40)))
        return text[:i] + text[j:]
    if op == "duplicate":
        j = data.draw(st.integers(i, min(n, i + 80)))
        return text[:j] + text[i:j] + text[j:]
    if op == "replace_char":
        c = data.draw(st.sampled_from(list('{}:"#\n 0-9aZ\x00é')))
        return text[:i] + c + text[i + 1:]
    if op == "replace_token":
        words = list(re.finditer(r"[A-Za-z_]+|\d+|[{}:\"]", text))
        if not words:
            return text
        m = words[data.draw(st.integers(0, len(words) - 1))]
        return text[:m.start()] + data.draw(st.sampled_from(TOKENS)) + text[m.end():]
    if op == "number":
        nums = list(re.finditer(r"\b\d+\b", text))
        if not nums:
            return text
        m = nums[data.draw(st.integers(0, len(nums) - 1))]
        v = data.draw(st.sampled_from(["0", "1", "-3", "100000", "2147483648", "4294967295"]))
        return text[:m.start()] + v + text[m.end():]
    return text[:i]


def _build_net(net: pb.NetParameter, phase: str, stages, graph) -> None:
    """Construct the runner.Net of a graph small enough to build quickly, its data layers
    replaced by Input layers of the graph's shapes (the corpus's data sources are not here)."""
    if estimate_memory(graph).total > NET_BYTES:
        return
    from runner.net import Net
    state = pb.NetState(phase=pb.Phase.Value(phase), stage=list(stages or ()))
    param = pb.NetParameter(name=net.name)
    for lp in filter_layers(net, state):
        if lp.type in ("Data", "HDF5Data", "ImageData", "MemoryData", "WindowData") and not lp.bottom:
            new = param.layer.add(name=lp.name, type="Input")
            new.top.extend(lp.top)
            for t in lp.top:
                new.input_param.shape.add().dim.extend(graph.blob_shapes[t])
        else:
            dst = param.layer.add()
            dst.CopyFrom(lp)
            del dst.include[:]
            del dst.exclude[:]
    Net(param, phase, seed=0).close()


def _load_everything(text: str, path: Path) -> None:
    if "solver" in path.name:
        solver = read_solver(text)
        from runner.solver.solver import check_solver
        check_solver(solver, str(path))
        nets = solver_nets(solver, str(path), aliases(MODELS) if MODELS.is_dir() else None)
        nets_states = [(n, None, None) for n in [nets.train] + nets.tests]
    else:
        net = read_net(text)
        nets_states = [(net, p, s) for p, s in declared_states(net)]
    for net, phase, stages in nets_states:
        ph = phase or pb.Phase.Name(net.state.phase)
        st_ = stages if stages is not None else tuple(net.state.stage)
        try:
            shapes = input_shapes_for(net, ph, st_)
        except (StopIteration, ValueError):
            shapes = {}
        graph = build_graph(net, phase, stages, None, shapes)
        _build_net(net, ph, st_, graph)


@pytest.mark.skipif(not CORPUS, reason="no corpus prototxts")
@fuzz_settings(80)
@given(data=st.data())
def test_mutated_corpus_raises_only_caffe_errors(data):
    path = data.draw(st.sampled_from(CORPUS))
    text = path.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        text = _mutate(text, data)
    record("prototxt", lambda: _load_everything(text, path))


@pytest.mark.skipif(not CORPUS, reason="no corpus prototxts")
def test_fixed_mutations_of_every_file():
    """Deterministic coverage: each file truncated at 3 places and with a token dropped."""
    for path in CORPUS:
        text = path.read_text()
        variants = [text[: len(text) * k // 4] for k in (1, 2, 3)]
        variants.append(text.replace("}", "", 1))
        variants.append(text.replace("bottom", "top", 1))
        variants.append(text.replace("num_output: ", "num_output: 0", 1))
        for v in variants:
            try:
                _load_everything(v, path)
            except CaffeError:
                pass


# ---------------------------------------------------------------------------- weight files
LENET = SHARED / "data" / "lenet-caffe"
DEPLOY = MODELS / "lenet_deploy.prototxt"


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Weight files to damage: Caffe's own LeNet .caffemodel (when ../shared is here) and a
    .caffemodel, .caffemodel.h5, .solverstate and .binaryproto that nbcaffe writes."""
    from netdef.weights import write_binaryproto, write_caffemodel, write_solverstate
    folder = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(0)
    w = {"conv": ("Convolution", [rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
                                  rng.standard_normal(4).astype(np.float32)]),
         "ip": ("InnerProduct", [rng.standard_normal((3, 16)).astype(np.float32)])}
    write_caffemodel(folder / "small.caffemodel", w)
    from netdef.weights import write_caffemodel_hdf5
    write_caffemodel_hdf5(folder / "small.caffemodel.h5", {k: v[1] for k, v in w.items()})
    write_solverstate(folder / "small.solverstate", 10, "small.caffemodel", [v for _, a in w.values()
                                                                          for v in a], 1, '{"a": 1}')
    write_binaryproto(folder / "mean.binaryproto", rng.random((1, 3, 4, 4)).astype(np.float32),
                      legacy_4d=True)
    files = {p.name: p for p in folder.iterdir()}
    for p in sorted(LENET.glob("*.caffemodel"))[:1] if LENET.is_dir() else []:
        files[p.name] = p
    return folder, sorted(files.items())      # paths only: hypothesis prints its arguments


def _use_weights(path: Path) -> None:
    from netdef.weights import read_binaryproto, read_solverstate
    name = path.name
    if name.endswith(".binaryproto"):
        read_binaryproto(path)
    elif ".solverstate" in name:
        from runner.solver.solver import read_extra
        read_extra(read_solverstate(path).extra, str(path))
    elif name.startswith("small"):
        from runner.net import Net
        net = Net(read_net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 '
                           'dim: 1 dim: 4 dim: 4 } } }\nlayer { name: "conv" type: "Convolution" '
                           'bottom: "x" top: "conv" convolution_param { num_output: 4 kernel_size: '
                           '3 } }\nlayer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" '
                           'inner_product_param { num_output: 3 bias_term: false } }'), "TEST")
        net.copy_from(str(path), require_match=True)
    else:
        from runner.net import Net
        net = Net(str(DEPLOY), "TEST")
        net.copy_from(str(path), require_match=True)
        net.forward(data=np.zeros((1, 1, 28, 28), np.float32))


@fuzz_settings(100)
@given(data=st.data())
def test_mutated_weight_files_raise_only_caffe_errors(weight_files, data):
    folder, files = weight_files
    name, source = data.draw(st.sampled_from(files))
    raw = source.read_bytes()
    for _ in range(data.draw(st.integers(1, 2))):
        raw = mutate_bytes(raw, data.draw)
    path = folder / "mutant" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(raw)
    if not name.startswith("small") and ".caffemodel" in name and not DEPLOY.exists():
        return
    record(f"weights ({name.split('.', 1)[1]})", lambda: _use_weights(path))


# ---------------------------------------------------------------------------- LMDBs
def test_damaged_lmdbs_give_only_caffe_errors(tmp_path):
    """In a child process: a signal (SIGBUS, SIGSEGV, abort) would be its exit code, and the
    last example it printed names the damage."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-m", "tests.netdef.fuzz_lmdb_worker", str(tmp_path)],
                       capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=60 * 60)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-25:])
    assert r.returncode == 0, f"exit code {r.returncode} (negative: killed by that signal)\n{tail}"
    result = json.loads(r.stdout.strip().splitlines()[-1])     # the child wrote its own tally
    assert 1 <= sum(result["outcomes"].values()) <= result["examples"]
