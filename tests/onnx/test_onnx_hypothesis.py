"""hypothesis: random small nets (two convolutions with drawn kernel/stride/pad/dilation/group,
an optional in-place ReLU, an Eltwise of the two, an optional pooling with drawn geometry,
rounding and padding) exported with a dynamic batch axis; ONNX Runtime at batch 1 and 3 must
match nbcaffe's forward on every blob."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")

from netdef.prototxt import read_net  # noqa: E402
from runner import Net  # noqa: E402
from tests.onnx.oracle import compare_net, randomize  # noqa: E402


@st.composite
def nets(draw) -> str:
    c = draw(st.integers(1, 4))
    group = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    nout = group * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = draw(st.integers(1, 2))
    pad = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dil * (kh - 1) + 1 - 2 * pad), 8))
    w = draw(st.integers(max(1, dil * (kw - 1) + 1 - 2 * pad), 8))
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    conv = (f"num_output: {nout} group: {group} kernel_h: {kh} kernel_w: {kw} stride: {stride} "
            f"pad: {pad} dilation: {dil}")
    text = ('name: "drawn" layer { name: "data" type: "Input" top: "data" input_param { shape { '
            f'dim: 2 dim: {c} dim: {h} dim: {w} }} }} }}\n')
    for name in ("a", "b"):
        text += (f'layer {{ name: "{name}" type: "Convolution" bottom: "data" top: "{name}" '
                 f'convolution_param {{ {conv} }} }}\n')
    if draw(st.booleans()):
        text += 'layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }\n'
    op = draw(st.sampled_from(["SUM", "PROD", "MAX"]))
    coeff = ""
    if op == "SUM" and draw(st.booleans()):
        c0, c1 = draw(st.sampled_from([-1.0, -0.5, 0.5, 1.0, 2.0])), draw(st.sampled_from([-0.5, 1.0, 3.0]))
        coeff = f"coeff: {c0} coeff: {c1}"
    text += (f'layer {{ name: "elt" type: "Eltwise" bottom: "a" bottom: "b" top: "elt" '
             f'eltwise_param {{ operation: {op} {coeff} }} }}\n')
    kind = draw(st.sampled_from(["none", "window", "global"]))
    if kind == "global":
        pool = f"pool: {draw(st.sampled_from(['MAX', 'AVE']))} global_pooling: true"
    elif kind == "window":
        pp = draw(st.integers(0, 1))
        top = min(3, min(oh, ow) + 2 * pp)
        if top < pp + 1:
            pp, top = 0, min(3, oh, ow)
        pk = draw(st.integers(pp + 1, top))
        rnd = draw(st.sampled_from(["CEIL", "FLOOR"]))
        pool = (f"pool: {draw(st.sampled_from(['MAX', 'AVE']))} kernel_size: {pk} "
                f"stride: {draw(st.integers(1, 3))} pad: {pp} round_mode: {rnd}")
    if kind != "none":
        text += (f'layer {{ name: "pool" type: "Pooling" bottom: "elt" top: "pool" '
                 f'pooling_param {{ {pool} }} }}\n')
    return text


@settings(max_examples=15)
@given(text=nets(), seed=st.integers(0, 2**16))
def test_random_conv_pool_eltwise_nets(text, seed, tmp_path_factory):
    net = Net(read_net(text))
    randomize(net, np.random.default_rng(seed))
    compare_net(net, tmp_path_factory.mktemp("drawn"), batches=(1, 3), seed=seed)
