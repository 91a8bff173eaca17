"""Permute (SSD fork): top = numpy transpose with the fork's order completion, identity orders
share the bottom, float64 gradient check (the inverse permutation), drawn shapes and orders,
the fork's errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from tests.gradcheck import check_gradient, make_layer
from tests.layers._common import forward


def _text(*order):
    return 'type: "Permute" permute_param { ' + " ".join(f"order: {o}" for o in order) + " }"


def test_nchw_to_nhwc():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    _, (y,) = forward(_text(0, 2, 3, 1), [x])
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))


def test_unnamed_axes_follow_in_order():
    """order: 2 on a 4-D blob means (2, 0, 1, 3), as the fork completes it."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer, (y,) = forward(_text(2), [x])
    np.testing.assert_array_equal(y, x.transpose(2, 0, 1, 3))
    assert layer.g.order == (2, 0, 1, 3)


def test_identity_shares_data_and_diff():
    layer, b, t = make_layer(_text(0, 1), [(2, 3, 4)])
    layer.forward(b, t)
    assert t[0].shape == (2, 3, 4)
    assert t[0]._data is b[0]._data and t[0]._diff is b[0]._diff
    np.testing.assert_array_equal(t[0].host_data(), b[0].host_data())


@pytest.mark.parametrize("order,shape", [((0, 2, 3, 1), (2, 3, 2, 3)), ((3, 1, 0, 2), (2, 3, 1, 2)),
                                         ((1, 0), (3, 4))])
def test_gradient(order, shape):
    layer, b, t = make_layer(_text(*order), [shape])
    check_gradient(layer, b, t)


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=5), data=st.data())
def test_drawn_orders(shape, data):
    order = data.draw(st.permutations(range(len(shape))))
    given_n = data.draw(st.integers(0, len(shape)))
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    _, (y,) = forward(_text(*order[:given_n]), [x])
    full = list(order[:given_n]) + [a for a in range(len(shape)) if a not in order[:given_n]]
    np.testing.assert_array_equal(y, x.transpose(full))


def test_in_place_is_refused():
    from netdef.errors import NetDefinitionError
    with pytest.raises(NetDefinitionError, match="cannot permute in place"):
        make_layer(_text(1, 0), [(2, 3)], in_place=True)
    layer, b, t = make_layer(_text(0, 1), [(2, 3)], in_place=True)     # the identity is fine
    layer.forward(b, t)


@pytest.mark.parametrize("order,msg", [((0, 4), "less than the input dimension"),
                                       ((1, 1), "duplicate orders")])
def test_errors(order, msg):
    with pytest.raises(ShapeError, match=msg):
        make_layer(_text(*order), [(2, 3, 4, 5)])
