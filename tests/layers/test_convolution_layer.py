import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import conv_ref

CASES = [  # (params, input shape, stride, pad, dilation, group)
    ("kernel_size: 3", (2, 3, 6, 5), (1, 1), (0, 0), (1, 1), 1),
    ("kernel_size: 3 stride: 2 pad: 1", (2, 2, 7, 6), (2, 2), (1, 1), (1, 1), 1),
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (1, 2, 6, 5), (2, 1), (1, 0), (1, 1), 1),  # noqa: E501
    ("kernel_size: 2 dilation: 2 group: 2", (2, 4, 6, 6), (1, 1), (0, 0), (2, 2), 2),
    ("kernel_size: 1", (2, 3, 4, 4), (1, 1), (0, 0), (1, 1), 1),
]


def _conv_text(params, bias=True, num_output=4):
    return (f'type: "Convolution" convolution_param {{ num_output: {num_output} {params} '
            f'bias_term: {"true" if bias else "false"} weight_filler {{ type: "gaussian" std: 0.5 }} '
            f'bias_filler {{ type: "gaussian" }} }}')


@pytest.mark.parametrize("params,shape,stride,pad,dil,group", CASES)
def test_forward_matches_direct_convolution(params, shape, stride, pad, dil, group):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    layer, (y,) = forward(_conv_text(params), [x])
    w = layer.blobs[0].data.astype(np.float64)
    b = layer.blobs[1].data.astype(np.float64)
    assert_close(y, conv_ref(x.astype(np.float64), w, b, stride, pad, dil, group), 1e-4, 1e-4)


def test_no_bias_and_shapes():
    layer, b, t = make_layer(_conv_text("kernel_size: 3 stride: 2", bias=False), [(2, 3, 7, 7)])
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (4, 3, 3, 3)
    assert t[0].shape == (2, 4, 3, 3)


@pytest.mark.parametrize("params,shape,stride,pad,dil,group", CASES)
def test_gradient(params, shape, stride, pad, dil, group):
    small = (1,) + shape[1:2] + (min(shape[2], 5), min(shape[3], 5))
    layer, b, t = make_layer(_conv_text(params, num_output=2 * group), [small])
    check_gradient(layer, b, t)
