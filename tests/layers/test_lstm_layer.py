"""LSTM (Caffe 1.0's unrolled LSTMLayer): parameter blobs in Caffe's order and shapes (a
Caffe-layout .caffemodel loads), forward against a plain numpy unrolling of Caffe's equations
(tests/reference/recurrent.py), the cont = 0 reset pinned with hand-computed numbers, the state
carried across forwards, expose_hidden, the static input, gradients (float64 checker), OpenCV 4's
LSTM as an independent forward oracle, and hypothesis draws of shapes and sequence breaks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import CaffeError
from netdef.weights import write_caffemodel
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.reference.recurrent import lstm_ref

FILLERS = ('weight_filler { type: "uniform" min: -0.6 max: 0.6 } '
           'bias_filler { type: "uniform" min: -0.4 max: 0.4 }')


def _net(T, N, X, H, static=None, expose=False, extra_inputs="") -> str:
    ins = f'input: "x" input_shape {{ dim: {T} dim: {N} dim: {X} }}\n'
    ins += f'input: "cont" input_shape {{ dim: {T} dim: {N} }}\n'
    bottoms = 'bottom: "x" bottom: "cont"'
    if static:
        ins += f'input: "xs" input_shape {{ dim: {N} dim: {static} }}\n'
        bottoms += ' bottom: "xs"'
    tops = 'top: "h"'
    if expose:
        ins += f'input: "h0" input_shape {{ dim: 1 dim: {N} dim: {H} }}\n'
        ins += f'input: "c0" input_shape {{ dim: 1 dim: {N} dim: {H} }}\n'
        bottoms += ' bottom: "h0" bottom: "c0"'
        tops += ' top: "hT" top: "cT"'
    return (ins + extra_inputs + f'layer {{ name: "lstm" type: "LSTM" {bottoms} {tops} recurrent_param '
            f'{{ num_output: {H} {FILLERS} expose_hidden: {"true" if expose else "false"} }} }}\n')


def _params(net):
    return [np.array(b.host_data(), np.float64) for b in net.params["lstm"]]


def test_parameter_blobs_in_caffe_order():
    net = Net(_net(2, 3, 4, 5), seed=1)
    assert [b.shape for b in net.params["lstm"]] == [(20, 4), (20,), (20, 5)]   # W_xc, b_c, W_hc
    net = Net(_net(2, 3, 4, 5, static=6), seed=1)
    assert [b.shape for b in net.params["lstm"]] == [(20, 4), (20,), (20, 6), (20, 5)]


def test_default_fillers_are_caffes_constant_zero():
    text = ('input: "x" input_shape { dim: 2 dim: 1 dim: 3 } input: "cont" input_shape { dim: 2 dim: 1 }'
            ' layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
            'recurrent_param { num_output: 2 } }')
    net = Net(text, seed=0)
    assert all(not np.any(b.host_data()) for b in net.params["lstm"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_steps_match_numpy_unrolling(dtype):
    net = Net(_net(2, 3, 4, 5), seed=2, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    cont = np.array([[0, 0, 0], [1, 0, 1]], np.float64)
    h = net.forward(x=x, cont=cont)["h"]
    want, _, _ = lstm_ref(x, cont, *_params(net))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert_close(h, want, tol, tol, name="h")


def test_cont_zero_resets_the_state_hand_computed():
    """H = 1, input 1; i', f', o' get no input (sigmoid(0) = 0.5), g' = x + h_conted (W_xc, W_hc
    select the g row). x = atanh(0.5) at both steps:
    step 1: g = 0.5, c1 = 0.5*0.5 = 0.25, h1 = 0.5*tanh(0.25).
    step 2, cont = 1: g = tanh(atanh(0.5) + h1), c2 = 0.5*c1 + 0.5*g, h2 = 0.5*tanh(c2).
    step 2, cont = 0: h_{t-1} and c_{t-1} are dropped: it repeats step 1 exactly."""
    text = ('input: "x" input_shape { dim: 2 dim: 2 dim: 1 } input: "cont" input_shape { dim: 2 dim: 2 }'
            ' layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
            'recurrent_param { num_output: 1 } }')
    net = Net(text, dtype=np.float64)
    w_xc, b_c, w_hc = net.params["lstm"]
    w_xc.data = np.array([[0], [0], [0], [1.0]])
    b_c.data = np.zeros(4)
    w_hc.data = np.array([[0], [0], [0], [1.0]])
    a = math.atanh(0.5)
    x = np.full((2, 2, 1), a)
    cont = np.array([[0, 0], [1, 0]], np.float64)     # stream 0 continues, stream 1 restarts
    h = net.forward(x=x, cont=cont)["h"][:, :, 0]
    h1 = 0.5 * math.tanh(0.25)
    g2 = math.tanh(a + h1)
    h2 = 0.5 * math.tanh(0.5 * 0.25 + 0.5 * g2)
    assert_close(h, np.array([[h1, h1], [h2, h1]]), 1e-12, 1e-12, name="h")
    assert h1 == pytest.approx(0.12245933120185456, abs=1e-15)


def test_state_carries_across_forwards():
    """Without expose_hidden a forward starts where the last one ended (Caffe copies h_T, c_T
    into h_0, c_0): two forwards of 2 steps with cont = 1 at the second's first step equal one
    4-step sequence."""
    net = Net(_net(2, 2, 3, 4), seed=3, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float64)
    first = net.forward(x=x[:2], cont=cont[:2])["h"].copy()
    second = net.forward(x=x[2:], cont=cont[2:])["h"]
    want, _, _ = lstm_ref(x, cont, *_params(net))
    assert_close(np.concatenate([first, second]), want, 1e-12, 1e-12, name="h")


def test_expose_hidden_uses_and_returns_the_state():
    net = Net(_net(3, 2, 3, 4, expose=True), seed=4, dtype=np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 3))
    h0, c0 = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4))
    cont = np.array([[1, 0], [1, 1], [0, 1]], np.float64)
    out = net.forward(x=x, cont=cont, h0=h0, c0=c0)
    want, hT, cT = lstm_ref(x, cont, *_params(net), h0=h0, c0=c0)
    assert_close(out["h"], want, 1e-12, 1e-12, name="h")
    assert_close(out["hT"][0], hT, 1e-12, 1e-12, name="h_T")
    assert_close(out["cT"][0], cT, 1e-12, 1e-12, name="c_T")
    # the same input again: the exposed state, not the carried one, is used
    assert_close(net.forward(x=x, cont=cont, h0=h0, c0=c0)["h"], want, 1e-12, 1e-12, name="h again")


def test_expose_hidden_gradients_stop_at_the_state_blobs():
    """Caffe shares only the data of h_0/c_0 and h_T/c_T: h_0/c_0 get a zero gradient and the
    diffs of h_T/c_T change nothing."""
    layer, b, t = make_layer(f'type: "LSTM" top: "h" top: "hT" top: "cT" recurrent_param {{ '
                             f'num_output: 3 {FILLERS} expose_hidden: true }}',
                             [(2, 2, 3), (2, 2), (1, 2, 3), (1, 2, 3)],
                             bottom_values=[None, np.array([[1, 1], [1, 0]]), None, None])
    layer.forward(b, t)
    rng = np.random.default_rng(0)
    grads = []
    for scale in (0.0, 1.0):
        t[0].diff = np.ones(t[0].shape)
        t[1].diff = scale * rng.standard_normal(t[1].shape)
        t[2].diff = scale * rng.standard_normal(t[2].shape)
        for p in layer.blobs:
            p.diff = np.zeros(p.shape)
        b[2].diff = np.full(b[2].shape, 7.0)
        b[3].diff = np.full(b[3].shape, 7.0)
        layer.backward(t, [True, False, True, True], b)
        grads.append([np.array(b[0].diff)] + [np.array(p.diff) for p in layer.blobs])
        assert not np.any(b[2].diff) and not np.any(b[3].diff)
    for g0, g1 in zip(*grads):
        assert_close(g1, g0, 0, 0, name="grad with h_T/c_T diffs")


def test_static_input_matches_numpy():
    net = Net(_net(2, 3, 4, 3, static=5), seed=5, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, xs = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 5))
    cont = np.array([[0, 0, 0], [1, 1, 0]], np.float64)
    W_xc, b_c, W_s, W_hc = _params(net)
    want, _, _ = lstm_ref(x, cont, W_xc, b_c, W_hc, x_static=xs, W_xc_static=W_s)
    assert_close(net.forward(x=x, cont=cont, xs=xs)["h"], want, 1e-12, 1e-12, name="h")


@pytest.mark.parametrize("static", [False, True])
def test_gradient(static):
    shapes = [(2, 2, 3), (2, 2)] + ([(2, 4)] if static else [])
    values = [None, np.array([[0, 0], [1, 0]])] + ([None] if static else [])
    layer, b, t = make_layer(f'type: "LSTM" recurrent_param {{ num_output: 2 {FILLERS} }}', shapes,
                             bottom_values=values)
    check_gradient(layer, b, t, check_bottoms=[0, 2] if static else [0])


def test_loads_a_caffe_layout_caffemodel(tmp_path):
    """Blobs written in Caffe's order (W_xc, b_c, W_hc) load into the layer and give the numpy
    unrolling with those weights (what a Caffe-trained LRCN .caffemodel holds)."""
    text = _net(2, 2, 3, 4)
    rng = np.random.default_rng(4)
    W_xc, b_c, W_hc = rng.standard_normal((16, 3)), rng.standard_normal(16), rng.standard_normal((16, 4))
    path = tmp_path / "lstm.caffemodel"
    write_caffemodel(path, {"lstm": ("LSTM", [W_xc, b_c, W_hc])})
    net = Net(text, weights=path, dtype=np.float64)
    x, cont = rng.standard_normal((2, 2, 3)), np.array([[0, 0], [1, 1]], np.float64)
    want, _, _ = lstm_ref(x, cont, W_xc.astype(np.float32), b_c.astype(np.float32),
                          W_hc.astype(np.float32))
    assert_close(net.forward(x=x, cont=cont)["h"], want, 1e-6, 1e-6, name="h")


def test_opencv_lstm_oracle(tmp_path):
    """OpenCV 4's LSTM layer computes the same step (gates i, f, o, g; zero initial state, no
    sequence breaks). Its Caffe importer expects blobs [W_h, W_x, b, h_0, c_0] (not Caffe's order)
    and no cont bottom, so the oracle net gets our weights in that layout; the layer is named like
    its top (OpenCV looks the output up by that name)."""
    cv2 = pytest.importorskip("cv2")
    T, N, X, H = 4, 2, 3, 5
    net = Net(_net(T, N, X, H), phase="TEST", seed=6)
    W_xc, b_c, W_hc = (np.array(b.host_data()) for b in net.params["lstm"])
    x = np.random.default_rng(5).standard_normal((T, N, X)).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    ours = net.forward(x=x, cont=cont)["h"]
    proto = tmp_path / "cv.prototxt"
    proto.write_text(f'input: "x" input_shape {{ dim: {T} dim: {N} dim: {X} }}\n'
                     f'layer {{ name: "h" type: "LSTM" bottom: "x" top: "h" '
                     f'recurrent_param {{ num_output: {H} }} }}\n')
    zeros = np.zeros((N, H), np.float32)
    write_caffemodel(tmp_path / "cv.caffemodel", {"h": ("LSTM", [W_hc, W_xc, b_c, zeros, zeros])})
    cv_net = cv2.dnn.readNetFromCaffe(str(proto), str(tmp_path / "cv.caffemodel"))
    cv_net.setInput(x, "x")
    theirs = cv_net.forward("h").reshape(ours.shape)
    assert_close(ours, theirs, 1e-5, 1e-6, name="h vs OpenCV")


@given(T=st.integers(1, 3), N=st.integers(1, 3), X=st.integers(1, 3), H=st.integers(1, 3),
       breaks=st.integers(0, 2**9 - 1))
def test_hypothesis_shapes_and_breaks(T, N, X, H, breaks):
    net = Net(_net(T, N, X, H), seed=T * 100 + N * 10 + X, dtype=np.float64)
    cont = np.array([[(breaks >> (t * N + n)) & 1 for n in range(N)] for t in range(T)], np.float64)
    cont[0] = 0
    x = np.random.default_rng(breaks).standard_normal((T, N, X))
    want, _, _ = lstm_ref(x, cont, *_params(net))
    assert_close(net.forward(x=x, cont=cont)["h"], want, 1e-12, 1e-12, name="h")


def test_errors_name_the_layer():
    net = Net(_net(2, 2, 3, 4), seed=0)
    with pytest.raises(CaffeError, match="timesteps"):
        net.forward(x=np.zeros((3, 2, 3)), cont=np.zeros((3, 2)))
    with pytest.raises(CaffeError, match=r"lstm.*cont"):
        Net('input: "x" input_shape { dim: 2 dim: 2 dim: 3 } input: "cont" input_shape { dim: 2 dim: 3 }'
            ' layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
            'recurrent_param { num_output: 2 } }')
    layer, b, t = make_layer('type: "LSTM" recurrent_param { num_output: 2 }', [(2, 1, 3), (2, 1)])
    layer.forward(b, t)
    with pytest.raises(CaffeError, match="sequence indicators"):
        layer.backward(t, [True, True], b)


def test_shared_weights_reach_the_unrolled_net():
    """Net.share_weights (the solver's test net) and a later weight change in the train net: the
    test net's unrolled steps all use the train net's blobs (Caffe re-shares them at TEST time)."""
    train = Net(_net(2, 2, 3, 4), phase="TRAIN", seed=1, dtype=np.float64)
    test = Net(_net(2, 2, 3, 4), phase="TEST", seed=2, dtype=np.float64)
    test.share_weights(train)
    for blob in train.params["lstm"]:
        blob.data = np.random.default_rng(blob.count).standard_normal(blob.shape)
    x, cont = np.random.default_rng(3).standard_normal((2, 2, 3)), np.array([[0, 0], [1, 1]], np.float64)
    want, _, _ = lstm_ref(x, cont, *_params(train))
    assert_close(test.forward(x=x, cont=cont)["h"], want, 1e-12, 1e-12, name="h")


def test_sgd_on_the_lstm_lowers_a_loss():
    """Gradients flow through the unrolled net into the layer's blobs: 30 plain SGD steps on an
    Euclidean loss towards a fixed target lower it (shared W_hc gets the sum over steps)."""
    text = _net(3, 2, 2, 3) + ('input: "target" input_shape { dim: 3 dim: 2 dim: 3 }\n'
                               'layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target" '
                               'top: "loss" }\n')
    net = Net(text, phase="TRAIN", seed=4, dtype=np.float64)
    rng = np.random.default_rng(5)
    feed = dict(x=rng.standard_normal((3, 2, 2)), cont=np.array([[0, 0], [1, 1], [1, 0]], np.float64),
                target=0.5 * np.tanh(rng.standard_normal((3, 2, 3))))
    losses = []
    for _ in range(30):
        net.clear_param_diffs()
        losses.append(net.forward_backward(**feed))
        for p in net.learnable_params:
            p.blob.data = p.blob.data - 0.5 * p.blob.diff
    assert losses[-1] < 0.5 * losses[0]


def test_streams_may_change_between_forwards():
    """Caffe's RecurrentLayer::Reshape takes a new #streams (T is fixed at setup)."""
    net = Net(_net(2, 2, 3, 3, static=4), seed=7, dtype=np.float64)
    W_xc, b_c, W_s, W_hc = _params(net)
    for n in (3, 1):
        rng = np.random.default_rng(n)
        feed = dict(x=rng.standard_normal((2, n, 3)), cont=np.array([[0] * n, [1] * n], np.float64),
                    xs=rng.standard_normal((n, 4)))
        for name, value in feed.items():
            net.blobs[name].reshape(value.shape)
            net.blobs[name].data = value
        want, _, _ = lstm_ref(feed["x"], feed["cont"], W_xc, b_c, W_hc, x_static=feed["xs"],
                              W_xc_static=W_s)
        assert_close(net.forward()["h"], want, 1e-12, 1e-12, name=f"h, {n} streams")


def test_layers_sharing_their_blobs_by_name():
    """Two LSTM layers whose params are shared by name compute the same sequence (the second's
    unrolled steps follow the owner's blobs)."""
    shared = " ".join(f'param {{ name: "{p}" }}' for p in ("W_x", "b", "W_h"))
    text = _net(2, 2, 3, 4) + (f'layer {{ name: "twin" type: "LSTM" bottom: "x" bottom: "cont" '
                               f'top: "h2" {shared} recurrent_param {{ num_output: 4 {FILLERS} }} }}\n')
    text = text.replace('top: "h" recurrent_param', f'top: "h" {shared} recurrent_param')
    net = Net(text, seed=8, dtype=np.float64)
    x, cont = np.random.default_rng(9).standard_normal((2, 2, 3)), np.array([[0, 0], [1, 1]], np.float64)
    out = net.forward(x=x, cont=cont)
    assert_close(out["h2"], out["h"], 0, 0, name="twin")
    assert len(net.learnable_params) == 3
