import numpy as np
import pytest

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def test_forward_and_gradient():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    _, (y,) = forward('type: "AbsVal"', [x])
    assert_close(y, np.abs(x), 0, 0)
    layer, b, t = make_layer('type: "AbsVal"', [(2, 3, 4)])
    check_gradient(layer, b, t, kink=0.0, kink_range=1e-2)


def test_in_place_is_an_error():
    with pytest.raises(NetDefinitionError, match="in-place"):
        make_layer('type: "AbsVal"', [(2, 3)], in_place=True)
