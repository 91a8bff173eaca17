"""netdef.shapes rules for SPP, the recurrent layers and N-D convolution,
against hand-computed values from Caffe's layer code:
SPP's pyramid (levels, top layout, errors), RNN / LSTM (tops, parameter blobs in Caffe's order,
static input, expose_hidden, errors), LSTMUnit, the N-D convolution geometry, and the force-backward
exemption of the sequence indicators."""
from __future__ import annotations

import pytest

from netdef.errors import ShapeError
from netdef.geometry import ConvGeometry, ConvNdGeometry
from netdef.graph import build_graph
from netdef.prototxt import read_net
from netdef.shapes import infer
from tests.netdef.test_shapes import L


def test_spp_levels_and_top():
    r = infer(L('type: "SPP" spp_param { pyramid_height: 3 }'), [(2, 4, 13, 13)])
    # 13: level 1 kernel 7 pad (14-13+1)/2 = 1 -> 2x2; level 2 kernel 4, pad (16-13+1)/2 = 2 -> 4x4
    assert [(g.kernel_h, g.pad_h, g.out_h) for g in r.geometry] == [(13, 0, 1), (7, 1, 2), (4, 2, 4)]
    assert r.top_shapes == [(2, 4 * (1 + 4 + 16))] and r.param_shapes == []
    assert r.flops == 2 * 4 * (1 * 169 + 4 * 49 + 16 * 16)
    assert infer(L('type: "SPP" spp_param { pyramid_height: 1 pool: AVE }'),
                 [(2, 4, 5, 6)]).top_shapes == [(2, 4, 1, 1)]
    with pytest.raises(ShapeError, match="4 axes"):
        infer(L('type: "SPP" spp_param { pyramid_height: 2 }'), [(2, 4, 5)])
    with pytest.raises(ShapeError, match="pyramid_height must be >= 1"):
        infer(L('type: "SPP"'), [(2, 4, 5, 5)])
    with pytest.raises(ShapeError, match="pyramid level 1 .*padding is implemented only"):
        infer(L('type: "SPP" spp_param { pyramid_height: 2 pool: STOCHASTIC }'), [(1, 1, 5, 5)])


def test_recurrent_shapes():
    lstm = L('type: "LSTM" recurrent_param { num_output: 7 }', 1, 2)
    r = infer(lstm, [(5, 3, 2, 4), (5, 3)])
    assert r.top_shapes == [(5, 3, 7)] and r.param_shapes == [(28, 8), (28,), (28, 7)]
    lstm = L('type: "LSTM" recurrent_param { num_output: 7 expose_hidden: true }', 3, 5)
    r = infer(lstm, [(5, 3, 4), (5, 3), (3, 6), (1, 3, 7), (1, 3, 7)])
    assert r.top_shapes == [(5, 3, 7), (1, 3, 7), (1, 3, 7)]
    assert r.param_shapes == [(28, 4), (28,), (28, 6), (28, 7)]
    rnn = L('type: "RNN" recurrent_param { num_output: 2 expose_hidden: true }', 2, 3)
    r = infer(rnn, [(4, 1, 3), (4, 1), (1, 1, 2)])
    assert r.top_shapes == [(4, 1, 2), (1, 1, 2)]
    assert r.param_shapes == [(2, 3), (2,), (2, 2), (2, 2), (2,)]
    with pytest.raises(ShapeError, match=r"cont\) must be"):
        infer(L('type: "RNN" recurrent_param { num_output: 2 }', 1, 2), [(4, 2, 3), (4, 1)])
    with pytest.raises(ShapeError, match="num_output must be positive"):
        infer(L('type: "LSTM"', 1, 2), [(4, 2, 3), (4, 2)])
    with pytest.raises(ShapeError, match="hidden state input shape"):
        infer(L('type: "RNN" recurrent_param { num_output: 2 expose_hidden: true }', 2, 3),
              [(4, 1, 3), (4, 1), (1, 1, 3)])
    with pytest.raises(ShapeError, match="x_static"):
        infer(L('type: "RNN" recurrent_param { num_output: 2 }', 1, 3), [(4, 2, 3), (4, 2), (3, 5)])


def test_lstm_unit_shapes():
    r = infer(L('type: "LSTMUnit"', 2, 3), [(1, 4, 5), (1, 4, 20), (1, 4)])
    assert r.top_shapes == [(1, 4, 5), (1, 4, 5)]
    with pytest.raises(ShapeError, match="must be \\(1, 4, ...\\)"):
        infer(L('type: "LSTMUnit"', 2, 3), [(1, 4, 5), (2, 4, 20), (1, 4)])


def test_nd_convolution_geometry():
    r = infer(L('type: "Convolution" convolution_param { num_output: 6 kernel_size: 3 kernel_size: 1 '
                'kernel_size: 2 stride: 2 pad: 1 group: 2 }'), [(2, 4, 7, 5, 6)])
    g = r.geometry
    assert isinstance(g, ConvNdGeometry)
    assert (g.in_shape, g.out_shape, g.kernel, g.stride, g.pad) == ((7, 5, 6), (4, 4, 4), (3, 1, 2),
                                                                      (2, 2, 2), (1, 1, 1))
    assert g.w_shape == (6, 2, 3, 1, 2) and r.top_shapes == [(2, 6, 4, 4, 4)]
    r = infer(L('type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 2 stride: 2 }'),
              [(1, 4, 3)])
    assert r.top_shapes == [(1, 3, 6)]
    g = r.geometry     # the forward convolution from the deconv's top back onto its bottom
    assert (g.c_in, g.in_shape, g.c_out, g.out_shape) == (3, (6,), 4, (3,))
    forced = infer(L('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 '
                     'force_nd_im2col: true }'), [(1, 1, 5, 5)]).geometry
    assert isinstance(forced, ConvNdGeometry)
    assert isinstance(infer(L('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }'),
                            [(1, 1, 5, 5)]).geometry, ConvGeometry)


def test_force_backward_never_reaches_cont():
    net = read_net('force_backward: true input: "x" input_shape { dim: 2 dim: 1 dim: 3 } '
                   'input: "cont" input_shape { dim: 2 dim: 1 } '
                   'layer { name: "r" type: "RNN" bottom: "x" bottom: "cont" top: "o" '
                   'recurrent_param { num_output: 2 } }')
    node = build_graph(net).layers[-1]
    assert node.propagate_down == [True, False]
