"""Tile: Caffe's axis rule pinned with hand-computed numbers (the whole block of axes from
``axis`` on repeats, not each element), the backward sum over tiles, the required tiles, gradient
(float64), cpu-vs-cuda parity, hypothesis draws against tests/reference/caffe_extra.py. OpenCV's
Caffe importer does not run Caffe's Tile (its Tile layer asks for ONNX-style "repeats")."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text, net_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_hand_computed_axes():
    _, (y,), _ = forward_backward('type: "Tile" tile_param { tiles: 2 }', [X])        # axis 1
    np.testing.assert_array_equal(y, [[1, 2, 3, 1, 2, 3], [4, 5, 6, 4, 5, 6]])
    _, (y,), _ = forward_backward('type: "Tile" tile_param { axis: 0 tiles: 2 }', [X])
    np.testing.assert_array_equal(y, [[1, 2, 3], [4, 5, 6], [1, 2, 3], [4, 5, 6]])
    x3 = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    _, (y,), _ = forward_backward('type: "Tile" tile_param { axis: 1 tiles: 2 }', [x3])
    assert y.shape == (2, 4, 2)                                  # block (2, 2) repeated
    np.testing.assert_array_equal(y[0], [[0, 1], [2, 3], [0, 1], [2, 3]])
    _, (y,), _ = forward_backward('type: "Tile" tile_param { axis: -1 tiles: 3 }', [x3])
    np.testing.assert_array_equal(y[1, 1], [6, 7, 6, 7, 6, 7])


def test_backward_sums_the_tiles():
    dy = np.arange(12, dtype=np.float64).reshape(2, 6)
    _, _, (dx,) = forward_backward('type: "Tile" tile_param { tiles: 2 }', [X], [dy])
    np.testing.assert_array_equal(dx, [[0 + 3, 1 + 4, 2 + 5], [6 + 9, 7 + 10, 8 + 11]])


def test_tiles_required():
    with pytest.raises(ShapeError, match="number of tiles must be specified"):
        Net(net_text(layer_text('type: "Tile" tile_param { axis: 1 }'), {"x": (2, 3)}))
    with pytest.raises(ShapeError, match="number of tiles must be positive"):
        Net(net_text(layer_text('type: "Tile" tile_param { tiles: 0 }'), {"x": (2, 3)}))


@pytest.mark.parametrize("params", ["tiles: 3", "axis: 0 tiles: 2", "axis: -1 tiles: 2"])
def test_gradient(params):
    layer, b, t = make_layer(f'type: "Tile" tile_param {{ {params} }}', [(2, 3, 2)])
    check_gradient(layer, b, t)


def test_parity():
    x = np.random.default_rng(13).standard_normal((2, 3, 2)).astype(np.float32)
    check_parity(layer_text('type: "Tile" tile_param { axis: 1 tiles: 3 }'), {"x": x.shape}, {"x": x})


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), data=st.data(),
       tiles=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, data, tiles, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    text = f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}'
    _, (y,), _ = forward_backward(text, [x])
    assert_close(y, ref.tile_ref(x, axis, tiles), 0, 0, name="y")
    dy = rng.standard_normal(y.shape)
    _, _, (dx,) = forward_backward(text, [x], [dy])
    assert_close(dx, ref.tile_grad_ref(x.shape, dy, axis, tiles), 1e-12, 1e-12, name="dx")
