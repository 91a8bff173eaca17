"""PriorBox (SSD fork): one small case computed by hand, every option against the loops of
tests/reference/ssd.py (written from the fork's Forward_cpu), drawn parameters, the fork's checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from tests.gradcheck import make_layer
from tests.helpers import assert_close
from tests.reference.ssd import prior_box_ref

FEAT, IMG = (1, 5, 2, 2), (1, 3, 8, 8)


def _run(params: str, feat=FEAT, img=IMG):
    layer, b, t = make_layer(f'type: "PriorBox" prior_box_param {{ {params} }}', [feat, img],
                             dtype=np.float32)
    layer.forward(b, t)
    return layer, np.array(t[0].host_data())


def test_hand_computed_2x2_map_on_8x8_image():
    """min 4, max 9 (sqrt(4*9) = 6), aspect ratio 2 flipped: 4 priors per cell, step 8/2 = 4,
    centres 2 and 6; box order min, sqrt(min*max), 2, 1/2."""
    _, y = _run("min_size: 4 max_size: 9 aspect_ratio: 2 flip: true clip: false "
                "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2")
    assert y.shape == (1, 2, 2 * 2 * 4 * 4)
    r2 = math.sqrt(2.0)
    a, b = (2 - 2 * r2) / 8, (2 - 2 / r2) / 8        # ar 2: half sizes 2*sqrt2 and 2/sqrt2
    c, d = (2 + 2 * r2) / 8, (2 + 2 / r2) / 8
    cell00 = [0, 0, .5, .5,  -.125, -.125, .625, .625,  a, b, c, d,  b, a, d, c]
    assert_close(y[0, 0, :16], np.array(cell00), 1e-6, 1e-7, name="cell (0, 0)")
    assert_close(y[0, 0, 16:20], [.5, 0, 1, .5], 1e-6, 1e-7, name="cell (0, 1) min box")
    assert_close(y[0, 0, 32:36], [0, .5, .5, 1], 1e-6, 1e-7, name="cell (1, 0) min box")
    assert_close(y[0, 0, 52:56], [.375, .375, 1.125, 1.125], 1e-6, 1e-7, name="cell (1, 1) max box")
    np.testing.assert_allclose(y[0, 1], np.tile([.1, .1, .2, .2], 16), rtol=1e-7)


def test_hand_computed_clip_img_size_step_offset():
    _, y = _run("min_size: 4 max_size: 9 clip: true variance: 0.1")
    assert_close(y[0, 0, 4:8], [0, 0, .625, .625], 1e-6, 1e-7, name="clipped max box")
    np.testing.assert_allclose(y[0, 1], 0.1, rtol=1e-7)            # one variance for all
    _, y = _run("min_size: 2 img_size: 16 step: 5 offset: 0")      # centres 0 and 5 over 16
    assert_close(y[0, 0], [-1 / 16, -1 / 16, 1 / 16, 1 / 16, 4 / 16, -1 / 16, 6 / 16, 1 / 16,
                           -1 / 16, 4 / 16, 1 / 16, 6 / 16, 4 / 16, 4 / 16, 6 / 16, 6 / 16],
                 1e-6, 1e-7, name="img_size/step/offset")
    _, y = _run("min_size: 2")                                     # default variance 0.1
    np.testing.assert_allclose(y[0, 1], 0.1, rtol=1e-7)


def test_min_size_is_truncated_like_the_fork():
    """The fork reads min/max sizes into an int (``int min_size_ = min_sizes_[s]``)."""
    _, a = _run("min_size: 4.9 max_size: 9.99")
    _, b = _run("min_size: 4 max_size: 9")
    np.testing.assert_array_equal(a, b)


def test_duplicate_and_unit_ratios_are_skipped():
    layer, _ = _run("min_size: 4 aspect_ratio: 1 aspect_ratio: 2 aspect_ratio: 2.0000001 "
                    "aspect_ratio: 0.5 flip: true")
    assert layer.g.num_priors == 3          # 1, 2, 1/2 (0.5 is 1/2, already there)
    layer, _ = _run("min_size: 4 aspect_ratio: 2 aspect_ratio: 3 flip: false")
    assert layer.g.num_priors == 3


CASES = [
    dict(min_sizes=[3, 7], max_sizes=[6, 11], aspect_ratios=[2, 3], flip=True, clip=True,
         variance=[0.1, 0.1, 0.2, 0.2]),
    dict(min_sizes=[5.5], aspect_ratios=[0.5], flip=False, variance=[0.2]),
    dict(min_sizes=[4], step_h=3.5, step_w=2.25, offset=0.25),
]


def _params(d, img=None):
    out = [f"min_size: {m}" for m in d["min_sizes"]] + [f"max_size: {m}" for m in d.get("max_sizes", [])]
    out += [f"aspect_ratio: {a}" for a in d.get("aspect_ratios", [])]
    out += [f"flip: {str(d.get('flip', True)).lower()}", f"clip: {str(d.get('clip', False)).lower()}"]
    out += [f"variance: {v}" for v in d.get("variance", [])]
    if "step_h" in d:
        out += [f"step_h: {d['step_h']}", f"step_w: {d['step_w']}"]
    if "offset" in d:
        out.append(f"offset: {d['offset']}")
    if img is not None:
        out += [f"img_h: {img[0]}", f"img_w: {img[1]}"]
    return " ".join(out)


@pytest.mark.parametrize("d", CASES)
def test_options_match_reference(d):
    _, y = _run(_params(d), feat=(2, 4, 3, 4), img=(2, 3, 12, 20))
    want = prior_box_ref(3, 4, 12, 20, d["min_sizes"], d.get("max_sizes", ()), d.get("aspect_ratios", ()),
                         d.get("flip", True), d.get("clip", False), d.get("variance", ()),
                         d.get("step_h", 0.0), d.get("step_w", 0.0), d.get("offset", 0.5))
    assert_close(y[0], want, 1e-6, 1e-7)
    _, y = _run(_params(d, img=(30, 17)), feat=(2, 4, 3, 4), img=(2, 3, 12, 20))
    want = prior_box_ref(3, 4, 30, 17, d["min_sizes"], d.get("max_sizes", ()), d.get("aspect_ratios", ()),
                         d.get("flip", True), d.get("clip", False), d.get("variance", ()),
                         d.get("step_h", 0.0), d.get("step_w", 0.0), d.get("offset", 0.5))
    assert_close(y[0], want, 1e-6, 1e-7, name="img_h/img_w")


@given(lh=st.integers(1, 4), lw=st.integers(1, 4), ih=st.integers(4, 40), iw=st.integers(4, 40),
       mn=st.integers(1, 20), extra=st.integers(1, 10), ar=st.sampled_from([[], [2.0], [2.0, 3.0], [0.7]]),
       flip=st.booleans(), clip=st.booleans(), nvar=st.sampled_from([0, 1, 4]))
def test_drawn(lh, lw, ih, iw, mn, extra, ar, flip, clip, nvar):
    var = [0.1, 0.15, 0.2, 0.25][:nvar] if nvar != 1 else [0.3]
    d = dict(min_sizes=[mn], max_sizes=[mn + extra], aspect_ratios=ar, flip=flip, clip=clip, variance=var)
    _, y = _run(_params(d), feat=(1, 2, lh, lw), img=(1, 3, ih, iw))
    want = prior_box_ref(lh, lw, ih, iw, [mn], [mn + extra], ar, flip, clip, var)
    assert_close(y[0], want, 1e-6, 1e-7)


@pytest.mark.parametrize("params,msg", [
    ("", "must provide min_size"),
    ("min_size: 0", "min_size must be positive"),
    ("min_size: 4 max_size: 4", "max_size must be greater than min_size"),
    ("min_size: 4 min_size: 5 max_size: 9", "one per min_size"),
    ("min_size: 4 variance: 0.1 variance: 0.2", "1 or 4 variance"),
    ("min_size: 4 variance: 0", "variance must be positive"),
    ("min_size: 4 img_size: 8 img_h: 8 img_w: 8", "not both"),
    ("min_size: 4 img_h: 8", "img_h and img_w"),
    ("min_size: 4 step: 2 step_h: 2 step_w: 2", "not both"),
    ("min_size: 4 aspect_ratio: -2", "aspect_ratio must be positive"),
])
def test_fork_checks(params, msg):
    with pytest.raises(ShapeError, match=msg):
        _run(params)


def test_no_gradient_reaches_the_bottoms():
    layer, b, t = make_layer('type: "PriorBox" prior_box_param { min_size: 4 }', [FEAT, IMG])
    layer.forward(b, t)
    for blob in b:
        blob.diff = np.ones(blob.shape)
    layer.backward(t, [True, True], b)
    assert not any(np.any(blob.host_diff()) for blob in b)
