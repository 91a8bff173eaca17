import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import deconv_ref

CASES = [("kernel_size: 3 stride: 2 pad: 1", (2, 2, 3, 4), (2, 2), (1, 1), (1, 1), 1),
         ("kernel_size: 4 stride: 2 group: 2", (1, 4, 3, 3), (2, 2), (0, 0), (1, 1), 2),
         ("kernel_size: 2 dilation: 2", (1, 2, 3, 3), (1, 1), (0, 0), (2, 2), 1)]


def _text(params):
    return (f'type: "Deconvolution" convolution_param {{ num_output: 4 {params} '
            'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }')


@pytest.mark.parametrize("params,shape,stride,pad,dil,group", CASES)
def test_forward(params, shape, stride, pad, dil, group):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    layer, (y,) = forward(_text(params), [x])
    ref = deconv_ref(x.astype(np.float64), layer.blobs[0].data.astype(np.float64),
                     layer.blobs[1].data.astype(np.float64), stride, pad, dil, group)
    assert_close(y, ref, 1e-4, 1e-4)


def test_bilinear_upsampling_weights():
    text = ('type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 4 stride: 2 pad: 1 '
            'bias_term: false weight_filler { type: "bilinear" } }')
    x = np.ones((1, 1, 3, 3), np.float32)
    _, (y,) = forward(text, [x])
    assert y.shape == (1, 1, 6, 6)
    assert_close(y[0, 0, 1:-1, 1:-1], np.ones((4, 4)), 1e-6, 1e-6)


@pytest.mark.parametrize("params,shape,stride,pad,dil,group", CASES)
def test_gradient(params, shape, stride, pad, dil, group):
    layer, b, t = make_layer(_text(params), [(1,) + shape[1:]])
    check_gradient(layer, b, t)
