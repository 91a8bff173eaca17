"""SPP (Caffe's SPPLayer): the pyramid's bin arithmetic (kernel = ceil(H / bins), pad =
(kernel*bins - H + 1) / 2, stride = kernel) and output layout pinned with hand-computed numbers,
forward against per-level pooling references concatenated as Caffe does, gradients, pyramid height
1, STOCHASTIC levels, and the error for an input too small for the pyramid."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netdef.errors import CaffeError
from netdef.shapes import spp_level
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.layers.reference_layers import pool_ref
from tests.reference.stochastic_pool import sto_test_ref


def _text(height, pool="MAX"):
    return f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {pool} }}'


def _spp_ref(x, height, mode):
    """Caffe's levels, each pooled (tests/layers/reference_layers.pool_ref), flattened per image
    and concatenated in level order."""
    n, c, h, w = x.shape
    outs = []
    for level in range(height):
        bins = 2 ** level
        kh, kw = math.ceil(h / bins), math.ceil(w / bins)
        ph, pw = (kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2
        outs.append(pool_ref(x, (kh, kw), (kh, kw), (ph, pw), mode))
    if height == 1:
        return outs[0]
    return np.concatenate([o.reshape(n, -1) for o in outs], axis=1)


def test_bin_arithmetic_hand_computed():
    """H = 7, W = 9: level 0 is the whole image; level 1 (2 bins): kernel (4, 5), remainders
    (1, 1), pad (1, 1); level 2 (4 bins): kernel (2, 3), remainders (1, 3), pad (1, 2)."""
    assert spp_level(7, 9, 0) == ((7, 9), (0, 0))
    assert spp_level(7, 9, 1) == ((4, 5), (1, 1))
    assert spp_level(7, 9, 2) == ((2, 3), (1, 2))
    layer, b, t = make_layer(_text(3), [(2, 3, 7, 9)])
    assert t[0].shape == (2, 3 * (1 + 4 + 16))
    assert [(g.out_h, g.out_w) for g in layer.levels] == [(1, 1), (2, 2), (4, 4)]


@pytest.mark.parametrize("pool,want", [("MAX", [8, 0, 2, 6, 8]), ("AVE", [4, 0, 0.75, 2.25, 6])])
def test_output_layout_hand_computed(pool, want):
    """x = 0..8 as 3x3, pyramid 2. Level 0: 3x3 window (max 8, mean 4). Level 1: kernel 2,
    pad 1, stride 2 -> windows rows/cols {0} and {1, 2}: MAX 0, 2, 6, 8; AVE divides by the
    padded window 2x2 = 4: 0/4, (1+2)/4, (3+6)/4, (4+5+7+8)/4. Top: [level 0, level 1 row-major]."""
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    _, (y,) = forward(_text(2, pool), [x], dtype=np.float64)
    assert_close(y[0], np.array(want, np.float64), 1e-15, 0, name="top")


@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(4, 9), w=st.integers(4, 9),
       height=st.integers(1, 3), pool=st.sampled_from(["MAX", "AVE"]))
def test_matches_reference(n, c, h, w, height, pool):
    for level in range(height):      # Caffe refuses a pad >= kernel (e.g. H = 5 at 4 bins)
        (kh, kw), (ph, pw) = spp_level(h, w, level)
        assume(ph < kh and pw < kw)
    x = np.random.default_rng(h * 10 + w).standard_normal((n, c, h, w))
    _, (y,) = forward(_text(height, pool), [x], dtype=np.float64)
    assert_close(y, _spp_ref(x, height, pool), 1e-12, 1e-12, name="top")


def test_pyramid_height_one_is_the_global_pool():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    _, (y,) = forward(_text(1), [x], dtype=np.float64)
    assert y.shape == (2, 3, 1, 1)
    assert_close(y[:, :, 0, 0], x.max(axis=(2, 3)), 0, 0, name="top")


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_gradient(pool):
    x = np.random.default_rng(1).permutation(2 * 6 * 7).reshape(1, 2, 6, 7) * 0.1
    layer, b, t = make_layer(_text(3, pool), [x.shape], bottom_values=[x])
    check_gradient(layer, b, t)


def test_stochastic_levels():
    """A 4x4 input needs no padding at any level, so STOCHASTIC runs: TEST gives each level's
    weighted average; TRAIN picks elements of the input and routes the gradient to them."""
    x = np.random.default_rng(2).random((1, 2, 4, 4)) + 0.1
    _, (y,) = forward(_text(3, "STOCHASTIC"), [x], phase="TEST", dtype=np.float64)
    want = np.concatenate([sto_test_ref(x, (2**lv, 2**lv), (4 >> lv, 4 >> lv), (4 >> lv, 4 >> lv))
                           .reshape(1, -1) for lv in range(3)], axis=1)
    assert_close(y, want, 1e-12, 1e-12, name="TEST")
    layer, b, t = make_layer(_text(3, "STOCHASTIC"), [x.shape], bottom_values=[x])
    layer.forward(b, t)
    assert np.isin(t[0].data, x).all()
    check_gradient(layer, b, t)


def test_input_too_small_for_the_pyramid():
    """3x3 at level 2: 4 bins, kernel 1, remainder 1, pad 1 -- not smaller than the kernel
    (Caffe's PoolingLayer CHECK)."""
    with pytest.raises(CaffeError, match=r"pyramid level 2 .*pad \(1, 1\) must be smaller"):
        make_layer(_text(3), [(1, 1, 3, 3)])
