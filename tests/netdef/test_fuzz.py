"""Mutated corpus files: read_net / read_solver / build_graph either succeed or raise a CaffeError
subclass, never anything else."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netdef.errors import CaffeError
from netdef.graph import build_graph
from netdef.prototxt import read_net, read_solver, solver_nets
from proto import caffe_pb2 as pb
from tests.conftest import SHARED
from tests.netdef.corpus import declared_states, input_shapes_for

MODELS = SHARED / "caffe-models"
FILES = sorted(p.name for p in MODELS.glob("*.prototxt")) if MODELS.is_dir() else []
TOKENS = ["{", "}", ":", '"', "layer", "layers", "bottom", "top", "-1", "0", "99999999999",
          "TRAIN", "include", "param", "Convolution", "kernel_size", "num_output", "1e40", "'",
          "#", "\n", "lr_mult", "shape", "dim"]


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
        v = data.draw(st.sampled_from(["0", "1", "-3", "100000", "2147483648"]))
        return text[:m.start()] + v + text[m.end():]
    return text[:i]


def _load_everything(text: str, name: str) -> None:
    if "solver" in name:
        solver = read_solver(text)
        try:
            nets = solver_nets(solver, str(MODELS / name))
        except CaffeError:
            return
        nets_states = [(n, None, None) for n in [nets.train] + nets.tests]
    else:
        net = read_net(text)
        nets_states = [(net, p, s) for p, s in declared_states(net)]
    for net, phase, stages in nets_states:
        ph = phase or pb.Phase.Name(net.state.phase)
        try:
            shapes = input_shapes_for(net, ph, stages if stages is not None else net.state.stage)
        except (StopIteration, ValueError):
            shapes = {}
        build_graph(net, phase, stages, None, shapes)


@pytest.mark.skipif(not FILES, reason=f"{MODELS} not present")
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_mutated_corpus_raises_only_caffe_errors(data):
    name = data.draw(st.sampled_from(FILES))
    text = (MODELS / name).read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        text = _mutate(text, data)
    try:
        _load_everything(text, name)
    except CaffeError:
        pass


@pytest.mark.skipif(not FILES, reason=f"{MODELS} not present")
def test_fixed_mutations_of_every_file():
    """Deterministic coverage: each file truncated at 3 places and with a token dropped."""
    for name in FILES:
        text = (MODELS / name).read_text()
        variants = [text[: len(text) * k // 4] for k in (1, 2, 3)]
        variants.append(text.replace("}", "", 1))
        variants.append(text.replace("bottom", "top", 1))
        variants.append(text.replace("num_output: ", "num_output: 0", 1))
        for v in variants:
            try:
                _load_everything(v, name)
            except CaffeError:
                pass
