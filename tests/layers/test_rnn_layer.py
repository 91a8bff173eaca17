"""RNN (Caffe 1.0's unrolled RNNLayer): Caffe's blob order and shapes, forward against a numpy
unrolling of Caffe's equations (tests/reference/recurrent.py), the cont = 0 reset pinned with
hand-computed numbers, static input, expose_hidden, gradients, hypothesis draws. (OpenCV 4's Caffe
importer has no RNN type, so there is no OpenCV oracle for it.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.reference.recurrent import rnn_ref

FILLERS = ('weight_filler { type: "uniform" min: -0.6 max: 0.6 } '
           'bias_filler { type: "uniform" min: -0.4 max: 0.4 }')


def _net(T, N, X, H, static=None, expose=False) -> str:
    ins = (f'input: "x" input_shape {{ dim: {T} dim: {N} dim: {X} }}\n'
           f'input: "cont" input_shape {{ dim: {T} dim: {N} }}\n')
    bottoms, tops = 'bottom: "x" bottom: "cont"', 'top: "o"'
    if static:
        ins += f'input: "xs" input_shape {{ dim: {N} dim: {static} }}\n'
        bottoms += ' bottom: "xs"'
    if expose:
        ins += f'input: "h0" input_shape {{ dim: 1 dim: {N} dim: {H} }}\n'
        bottoms += ' bottom: "h0"'
        tops += ' top: "hT"'
    return (ins + f'layer {{ name: "rnn" type: "RNN" {bottoms} {tops} recurrent_param {{ num_output: '
            f'{H} {FILLERS} expose_hidden: {"true" if expose else "false"} }} }}\n')


def _params(net):
    return [np.array(b.host_data(), np.float64) for b in net.params["rnn"]]


def test_parameter_blobs_in_caffe_order():
    net = Net(_net(2, 3, 4, 5), seed=1)
    # W_xh, b_h, W_hh, W_ho, b_o
    assert [b.shape for b in net.params["rnn"]] == [(5, 4), (5,), (5, 5), (5, 5), (5,)]
    net = Net(_net(2, 3, 4, 5, static=6), seed=1)
    assert [b.shape for b in net.params["rnn"]] == [(5, 4), (5,), (5, 6), (5, 5), (5, 5), (5,)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_steps_match_numpy_unrolling(dtype):
    net = Net(_net(2, 3, 4, 5), seed=2, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    cont = np.array([[0, 0, 0], [1, 0, 1]], np.float64)
    want, _ = rnn_ref(x, cont, *_params(net))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert_close(net.forward(x=x, cont=cont)["o"], want, tol, tol, name="o")


def test_cont_zero_resets_the_state_hand_computed():
    """H = 1, X = 1, W_xh = W_hh = W_ho = 1, biases 0, x = 0.5 at both steps:
    h1 = tanh(0.5), o1 = tanh(h1); cont = 1: h2 = tanh(h1 + 0.5), o2 = tanh(h2);
    cont = 0: the state is dropped, o2 = o1."""
    text = ('input: "x" input_shape { dim: 2 dim: 2 dim: 1 } input: "cont" input_shape { dim: 2 dim: 2 }'
            ' layer { name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "o" '
            'recurrent_param { num_output: 1 } }')
    net = Net(text, dtype=np.float64)
    for blob in net.params["rnn"]:
        blob.data = np.ones(blob.shape) if len(blob.shape) == 2 else np.zeros(blob.shape)
    o = net.forward(x=np.full((2, 2, 1), 0.5), cont=np.array([[0, 0], [1, 0]], np.float64))["o"]
    h1 = math.tanh(0.5)
    o1 = math.tanh(h1)
    o2 = math.tanh(math.tanh(h1 + 0.5))
    assert_close(o[:, :, 0], np.array([[o1, o1], [o2, o1]]), 1e-12, 1e-12, name="o")


def test_static_input_and_exposed_state():
    net = Net(_net(3, 2, 3, 4, static=2, expose=True), seed=3, dtype=np.float64)
    rng = np.random.default_rng(1)
    x, xs, h0 = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 2)), rng.standard_normal((1, 2, 4))
    cont = np.array([[1, 0], [1, 1], [0, 1]], np.float64)
    W_xh, b_h, W_s, W_hh, W_ho, b_o = _params(net)
    want, hT = rnn_ref(x, cont, W_xh, b_h, W_hh, W_ho, b_o, x_static=xs, W_xh_static=W_s, h0=h0)
    out = net.forward(x=x, cont=cont, xs=xs, h0=h0)
    assert_close(out["o"], want, 1e-12, 1e-12, name="o")
    assert_close(out["hT"][0], hT, 1e-12, 1e-12, name="h_T")


def test_state_carries_across_forwards():
    net = Net(_net(2, 2, 3, 4), seed=4, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float64)
    first = net.forward(x=x[:2], cont=cont[:2])["o"].copy()
    second = net.forward(x=x[2:], cont=cont[2:])["o"]
    want, _ = rnn_ref(x, cont, *_params(net))
    assert_close(np.concatenate([first, second]), want, 1e-12, 1e-12, name="o")


@pytest.mark.parametrize("static", [False, True])
def test_gradient(static):
    shapes = [(2, 2, 3), (2, 2)] + ([(2, 2)] if static else [])
    values = [None, np.array([[0, 0], [1, 0]])] + ([None] if static else [])
    layer, b, t = make_layer(f'type: "RNN" recurrent_param {{ num_output: 2 {FILLERS} }}', shapes,
                             bottom_values=values)
    check_gradient(layer, b, t, check_bottoms=[0, 2] if static else [0])


@given(T=st.integers(1, 3), N=st.integers(1, 3), X=st.integers(1, 3), H=st.integers(1, 3),
       breaks=st.integers(0, 2**9 - 1))
def test_hypothesis_shapes_and_breaks(T, N, X, H, breaks):
    net = Net(_net(T, N, X, H), seed=breaks, dtype=np.float64)
    cont = np.array([[(breaks >> (t * N + n)) & 1 for n in range(N)] for t in range(T)], np.float64)
    cont[0] = 0
    x = np.random.default_rng(breaks).standard_normal((T, N, X))
    want, _ = rnn_ref(x, cont, *_params(net))
    assert_close(net.forward(x=x, cont=cont)["o"], want, 1e-12, 1e-12, name="o")
