"""Im2col: hand-computed columns (Caffe's row order c*K + kernel offset; padding, stride,
dilation), the col2im backward (overlaps add up), the channel axis, 1-D and 3-D inputs, gradient
(float64), cpu-vs-cuda parity, hypothesis draws against tests/reference/caffe_extra.py. OpenCV's
Caffe importer has no Im2col layer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X9 = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)


def test_hand_computed_2x2():
    _, (y,), (dx,) = forward_backward('type: "Im2col" convolution_param { kernel_size: 2 }', [X9],
                                      [np.ones((1, 4, 2, 2))])
    np.testing.assert_array_equal(y[0], [[[0, 1], [3, 4]], [[1, 2], [4, 5]], [[3, 4], [6, 7]],
                                         [[4, 5], [7, 8]]])
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])   # window counts


def test_hand_computed_pad_stride_dilation():
    _, (y,), _ = forward_backward('type: "Im2col" convolution_param { kernel_size: 2 pad: 1 stride: 2 }',
                                  [X9])
    assert y.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[0, 0], [0, 4]])     # offset (0, 0): rows/cols -1, 1
    np.testing.assert_array_equal(y[0, 3], [[0, 2], [6, 8]])     # offset (1, 1): rows/cols 0, 2
    _, (y,), _ = forward_backward('type: "Im2col" convolution_param { kernel_size: 2 dilation: 2 }', [X9])
    assert y.shape == (1, 4, 1, 1)
    np.testing.assert_array_equal(y.reshape(-1), [0, 2, 6, 8])


def test_channel_axis_and_nd():
    x = np.arange(2 * 3 * 2 * 5, dtype=np.float64).reshape(2, 3, 2, 5)
    _, (y,), _ = forward_backward('type: "Im2col" convolution_param { axis: 2 kernel_size: 2 }', [x])
    assert y.shape == (2, 3, 4, 4)                               # (2, 3) batch, 2 channels, 1-D
    assert_close(y, ref.im2col_ref(x, (2,), (1,), (0,), (1,), axis=2), 0, 0)
    x3 = np.random.default_rng(0).standard_normal((1, 2, 3, 3, 4))
    text = 'type: "Im2col" convolution_param { kernel_size: 2 kernel_size: 1 kernel_size: 3 pad: 1 }'
    _, (y,), _ = forward_backward(text, [x3])
    assert_close(y, ref.im2col_ref(x3, (2, 1, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)), 0, 0)


@pytest.mark.parametrize("params,shape", [("kernel_size: 2 stride: 2 pad: 1", (2, 2, 4, 3)),
                                          ("kernel_size: 3 dilation: 2 pad: 2", (1, 2, 3, 3)),
                                          ("kernel_size: 2 kernel_size: 2 kernel_size: 1", (1, 2, 2, 3, 2))])
def test_gradient(params, shape):
    layer, b, t = make_layer(f'type: "Im2col" convolution_param {{ {params} }}', [shape])
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(16).standard_normal((2, 2, 4, 3)).astype(np.float32)
    check_parity(layer_text('type: "Im2col" convolution_param { kernel_size: 2 stride: 2 pad: 1 }'),
                 {"x": x.shape}, {"x": x})
    x3 = np.random.default_rng(17).standard_normal((1, 2, 3, 2, 3)).astype(np.float32)
    check_parity(layer_text('type: "Im2col" convolution_param { kernel_size: 2 dilation: 1 pad: 1 '
                            'stride: 2 }'), {"x": x3.shape}, {"x": x3})


@given(nd=st.integers(1, 3), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(nd, data, seed):
    k = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    s = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    p = [data.draw(st.integers(0, 1)) for _ in range(nd)]
    d = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    ins = [max(data.draw(st.integers(1, 4)), dd * (kk - 1) + 1 - 2 * pp) for kk, pp, dd in zip(k, p, d)]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([2, 2] + ins)
    params = " ".join(f"kernel_size: {v}" for v in k) + " " + " ".join(f"stride: {v}" for v in s)
    params += " " + " ".join(f"pad: {v}" for v in p) + " " + " ".join(f"dilation: {v}" for v in d)
    text = f'type: "Im2col" convolution_param {{ {params} }}'
    y_ref = ref.im2col_ref(x, k, s, p, d)
    dy = rng.standard_normal(y_ref.shape)
    _, (y,), (dx,) = forward_backward(text, [x], [dy])
    assert_close(y, y_ref, 0, 0, name="y")
    assert_close(dx, ref.im2col_grad_ref(x.shape, dy, k, s, p, d), 1e-12, 1e-12, name="dx")
