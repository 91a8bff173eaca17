"""Embed: hand-computed lookups with a bias, the backward's accumulation over repeated indices,
Caffe's refusals (no gradient to the indices; a bad index is an error on cpu naming it, a row of
NaN on cuda), gradient (float64, both parameters), cpu-vs-cuda parity, hypothesis draws against
tests/reference/caffe_extra.py. OpenCV's Caffe importer has no Embed layer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

TEXT = 'type: "Embed" embed_param { num_output: 2 input_dim: 3 }'


def _layer(index, device="cpu", bias=True):
    text = TEXT if bias else TEXT.replace("}", "bias_term: false }")
    dtype = np.float32 if device == "cuda" else np.float64
    layer, b, t = make_layer(text, [np.shape(index)], bottom_values=[np.asarray(index)], device=device,
                             dtype=dtype)
    layer.blobs[0].data = [[1, 2], [3, 4], [5, 6]]
    if bias:
        layer.blobs[1].data = [0.5, -0.5]
    return layer, b, t


def test_shapes_and_default_fillers():
    layer, _, t = make_layer('type: "Embed" embed_param { num_output: 4 input_dim: 5 }', [(2, 3)],
                             bottom_values=[np.zeros((2, 3))])
    assert t[0].shape == (2, 3, 4)                                # bottom shape + num_output
    assert [p.shape for p in layer.blobs] == [(5, 4), (4,)]
    assert not layer.blobs[0].data.any() and not layer.blobs[1].data.any()   # constant 0


def test_hand_computed_forward_and_accumulating_backward():
    layer, b, t = _layer([[2, 0], [2, 1]])
    layer.forward(b, t)
    np.testing.assert_allclose(t[0].data, [[[5.5, 5.5], [1.5, 1.5]], [[5.5, 5.5], [3.5, 3.5]]])
    t[0].diff = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    for p in layer.blobs:
        p.diff = np.ones(p.shape)                                  # parameter diffs accumulate
    layer.backward(t, [False], b)
    # row 2 gets dy[0, 0] + dy[1, 0] = (0, 1) + (4, 5); row 0 gets (2, 3); row 1 gets (6, 7)
    np.testing.assert_allclose(layer.blobs[0].diff, [[3, 4], [7, 8], [5, 7]])
    np.testing.assert_allclose(layer.blobs[1].diff, [1 + 12, 1 + 16])


def test_refusals():
    layer, b, t = _layer([0, 1])
    layer.forward(b, t)
    with pytest.raises(NetDefinitionError, match="can't backpropagate to the Embed input"):
        layer.backward(t, [True], b)
    for bad in ([0, 3], [0, -1], [0, 1.5]):
        layer, b, t = _layer(bad)
        with pytest.raises(NetDefinitionError, match=f"embed index {bad[1]:g} is not an integer in .0, 3."):
            layer.forward(b, t)


def test_cuda_bad_index_gives_nan_rows():
    layer, b, t = _layer([1, 7], device="cuda")
    layer.forward(b, t)
    y = t[0].host_data()
    np.testing.assert_allclose(y[0], [3.5, 3.5])
    assert np.isnan(y[1]).all()


def test_gradient():
    idx = np.array([[1, 0, 2], [2, 2, 0]], dtype=np.float64)
    layer, b, t = make_layer('type: "Embed" embed_param { num_output: 3 input_dim: 4 weight_filler '
                             '{ type: "gaussian" } bias_filler { type: "gaussian" } }', [idx.shape],
                             bottom_values=[idx])
    assert check_gradient(layer, b, t, check_bottoms=[]) == 12 + 3


def test_parity():
    """No force_backward (Caffe's Embed refuses a gradient to its input, and force_backward
    overrides propagate_down); a Power (y^2) with a loss weight after it makes the Embed run
    backward with varied top diffs (2y)."""
    idx = np.array([[1, 0, 4], [4, 4, 2]], np.float32)
    layer = layer_text('type: "Embed" embed_param { num_output: 3 input_dim: 5 weight_filler '
                       '{ type: "gaussian" } bias_filler { type: "gaussian" } }', bottoms=("i",))
    layer += layer_text('type: "Power" power_param { power: 2 } loss_weight: 1', bottoms=("y",),
                        tops=("z",), name="post")
    check_parity(layer, {"i": idx.shape}, {"i": idx}, force_backward=False)


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), k=st.integers(1, 5),
       n=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(shape, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, shape).astype(np.float64)
    text = (f'type: "Embed" embed_param {{ num_output: {n} input_dim: {k} bias_term: {str(bias).lower()} '
            'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }')
    dy = rng.standard_normal(tuple(shape) + (n,))
    layer, (y,), _ = forward_backward(text, [idx], [dy], propagate=[False])
    w = layer.blobs[0].data
    assert_close(y, ref.embed_ref(idx, w, layer.blobs[1].data if bias else None), 1e-12, 1e-12, name="y")
    dw_ref, db_ref = ref.embed_grad_ref(idx, dy, k)
    assert_close(layer.blobs[0].diff, dw_ref, 1e-12, 1e-12, name="dw")
    if bias:
        assert_close(layer.blobs[1].diff, db_ref, 1e-12, 1e-12, name="db")
