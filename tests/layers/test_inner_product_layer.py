import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def _text(extra=""):
    return ('type: "InnerProduct" inner_product_param { num_output: 5 ' + extra +
            ' weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }')


@pytest.mark.parametrize("extra,axis", [("", 1), ("axis: 2", 2), ("transpose: true", 1), ("bias_term: false", 1)])  # noqa: E501
def test_forward(extra, axis):
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2)).astype(np.float32)
    layer, (y,) = forward(_text(extra), [x])
    m = int(np.prod(x.shape[:axis]))
    w = layer.blobs[0].data
    x2 = x.reshape(m, -1)
    ref = x2 @ (w if "transpose" in extra else w.T)
    if "bias_term: false" not in extra:
        ref = ref + layer.blobs[1].data
    assert y.shape == x.shape[:axis] + (5,)
    assert_close(y.reshape(m, 5), ref, 1e-5, 1e-5)


@pytest.mark.parametrize("extra", ["", "axis: 2", "transpose: true"])
def test_gradient(extra):
    layer, b, t = make_layer(_text(extra), [(2, 3, 2, 2)])
    check_gradient(layer, b, t)
