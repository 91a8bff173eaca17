"""Normalize (SSD fork): scale blob shapes and fillers, forward against the float64 reference of the
fork's equations for each (across_spatial, channel_shared) and for 2-D/3-D bottoms, the float64
gradient check, the fork's backward formula where it is not the exact gradient, in place, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from tests.gradcheck import check_gradient, make_layer
from tests.helpers import assert_close
from tests.layers._common import forward
from tests.reference.ssd import normalize_bwd_fork_ref, normalize_fwd_ref


def _text(across=True, shared=True, filler='scale_filler { type: "constant" value: 2.5 }', eps=None):
    e = "" if eps is None else f" eps: {eps}"
    return (f'type: "Normalize" norm_param {{ across_spatial: {str(across).lower()} '
            f'channel_shared: {str(shared).lower()} {filler}{e} }}')


def test_scale_blob_shape_and_default_filler():
    x = np.ones((2, 3, 2, 2), np.float32)
    layer, _ = forward('type: "Normalize"', [x])            # fork defaults: across, shared, 1
    assert layer.blobs[0].shape == () and float(layer.blobs[0].data) == 1.0
    layer, _ = forward(_text(shared=False, filler=""), [x])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, [1, 1, 1])
    layer, _ = forward(_text(shared=False), [x])
    np.testing.assert_array_equal(layer.blobs[0].data, [2.5] * 3)


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (2, 3, 5)])
def test_forward_matches_reference(across, shared, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer, (y,) = forward(_text(across, shared, 'scale_filler { type: "gaussian" std: 3 }', 1e-6), [x])
    want, _ = normalize_fwd_ref(x, layer.blobs[0].data, across, 1e-6)
    assert_close(y, want, 1e-5, 1e-6)


def test_hand_computed():
    """x = (3, 4) per position (one image, 2 channels, 1x2): per-position norms 5 and 5."""
    x = np.array([[[[3.0, 0.0]], [[4.0, 5.0]]]], np.float32)             # (1, 2, 1, 2)
    _, (y,) = forward(_text(False, True, 'scale_filler { type: "constant" value: 10 }', 0), [x])
    np.testing.assert_allclose(y, [[[[6.0, 0.0]], [[8.0, 10.0]]]], rtol=1e-6)
    _, (y,) = forward(_text(True, True, 'scale_filler { type: "constant" value: 1 }', 0), [x])
    np.testing.assert_allclose(y, x / np.sqrt(50.0), rtol=1e-6)


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_gradient(across, shared):
    """Exact gradients where the fork's formula is the gradient: a shared scale, or per-channel
    scales all equal (the fork's initial constant filler)."""
    filler = 'scale_filler { type: "constant" value: 1.7 }' if not shared else \
        'scale_filler { type: "gaussian" std: 2 }'
    layer, b, t = make_layer(_text(across, shared, filler), [(2, 3, 2, 3)])
    check_gradient(layer, b, t)


def test_in_place_gradient():
    layer, b, t = make_layer(_text(False, True), [(2, 3, 2, 2)], in_place=True)
    check_gradient(layer, b, t)


@pytest.mark.parametrize("across", [True, False])
def test_backward_is_the_forks_formula_with_distinct_channel_scales(across):
    """With different per-channel scales the fork's bottom gradient uses sum(x * dy) without the
    scale inside the sum, so it is not the exact gradient; nbcaffe reproduces the fork."""
    rng = np.random.default_rng(3)
    layer, b, t = make_layer(_text(across, False, 'scale_filler { type: "uniform" min: 0.5 max: 3 }'),
                             [(2, 3, 2, 2)])
    layer.forward(b, t)
    dy = rng.standard_normal(t[0].shape)
    t[0].diff = dy
    layer.blobs[0].diff = np.zeros(3)
    layer.backward(t, [True], b)
    x = b[0].host_data()
    want_dx, want_ds = normalize_bwd_fork_ref(x, dy, layer.blobs[0].data, across, 1e-10)
    assert_close(b[0].host_diff(), want_dx, 1e-10, 1e-12, name="dx")
    assert_close(layer.blobs[0].host_diff(), want_ds, 1e-10, 1e-12, name="dscale")
    with pytest.raises(AssertionError, match="bottom"):      # ... and differs from the gradient
        check_gradient(layer, b, t, check_params=False)


@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       across=st.booleans(), shared=st.booleans(), seed=st.integers(0, 100))
def test_forward_drawn(n, c, h, w, across, shared, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)
    layer, (y,) = forward(_text(across, shared, 'scale_filler { type: "gaussian" }'), [x], seed=seed)
    want, _ = normalize_fwd_ref(x, layer.blobs[0].data, across, 1e-10)
    assert_close(y, want, 1e-5, 1e-6)


@pytest.mark.parametrize("shape,msg", [((5,), ">= 2"), ((1, 2, 2, 2, 2), "more than 4 axes")])
def test_bad_bottom(shape, msg):
    with pytest.raises(ShapeError, match=msg):
        make_layer('type: "Normalize"', [shape])
