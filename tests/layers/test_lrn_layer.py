import numpy as np
import pytest

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import lrn_across_ref, lrn_within_ref


@pytest.mark.parametrize("size,k", [(5, 1.0), (3, 2.0), (1, 1.0)])
def test_across_channels(size, k):
    x = np.random.default_rng(0).standard_normal((2, 7, 3, 3)).astype(np.float32)
    text = f'type: "LRN" lrn_param {{ local_size: {size} alpha: 0.3 beta: 0.75 k: {k} }}'
    _, (y,) = forward(text, [x])
    assert_close(y, lrn_across_ref(x.astype(np.float64), size, 0.3, 0.75, k), 1e-5, 1e-6)
    layer, b, t = make_layer(text, [(1, 5, 2, 2)])
    check_gradient(layer, b, t)


@pytest.mark.parametrize("size", [3, 5])
def test_within_channel(size):
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 4)).astype(np.float32)
    text = f'type: "LRN" lrn_param {{ local_size: {size} alpha: 0.5 beta: 0.6 k: 7 norm_region: WITHIN_CHANNEL }}'  # noqa: E501
    _, (y,) = forward(text, [x])   # k is ignored in WITHIN_CHANNEL, as in Caffe
    assert_close(y, lrn_within_ref(x.astype(np.float64), size, 0.5, 0.6), 1e-5, 1e-6)
    layer, b, t = make_layer(text, [(1, 2, 4, 3)])
    check_gradient(layer, b, t)


def test_even_size_is_an_error():
    with pytest.raises(NetDefinitionError, match="odd"):
        make_layer('type: "LRN" lrn_param { local_size: 4 }', [(1, 5, 2, 2)])
