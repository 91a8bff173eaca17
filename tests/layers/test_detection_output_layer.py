"""DetectionOutput (SSD fork): NMS and keep_top_k computed by hand on a small case, every option
against the loop reference of tests/reference/ssd.py (written from the fork's GPU path), drawn
configurations, the no-detection rows, the fork's checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from tests.gradcheck import make_layer
from tests.helpers import assert_close
from tests.reference.ssd import detection_output_ref

CODES = {1: "CORNER", 2: "CENTER_SIZE", 3: "CORNER_SIZE"}


def _text(num_classes, share=True, bg=0, code=1, vet=False, keep_top_k=-1, conf=None, nms=0.3,
          top_k=None, eta=None, clip=False):
    nmsp = f"nms_threshold: {nms}" + ("" if top_k is None else f" top_k: {top_k}") + \
        ("" if eta is None else f" eta: {eta}")
    c = "" if conf is None else f" confidence_threshold: {conf}"
    c += " clip: true" if clip else ""
    return (f'type: "DetectionOutput" detection_output_param {{ num_classes: {num_classes} '
            f'share_location: {str(share).lower()} background_label_id: {bg} nms_param {{ {nmsp} }} '
            f'code_type: {CODES[code]} variance_encoded_in_target: {str(vet).lower()} '
            f'keep_top_k: {keep_top_k}{c} }}')


def _run(text, loc, conf, prior, device="cpu"):
    layer, b, t = make_layer(text, [loc.shape, conf.shape, prior.shape], dtype=np.float32,
                             bottom_values=[loc, conf, prior], device=device)
    layer.forward(b, t)
    return np.array(t[0].host_data())


def _prior(boxes, var=(0.1, 0.1, 0.2, 0.2)):
    boxes = np.asarray(boxes, np.float32).reshape(-1)
    return np.stack([boxes, np.tile(np.asarray(var, np.float32), boxes.size // 4)])[None]


def test_hand_computed_nms():
    """One image, classes background/1/2, CORNER with zero offsets (boxes = priors). Class 1:
    A .9, B .8 (IoU(A, B) = .9 > .5: suppressed), C .7 (IoU .25: kept), D .05 (under 0.1).
    Class 2: only B (.6) passes. Rows: label 1 (A, C), then label 2 (B)."""
    boxes = [[0, 0, 1, 1], [0, 0, 1, .9], [0, 0, .5, .5], [.5, .5, 1, 1]]
    conf = np.array([[.1, .9, .0], [.1, .8, .6], [.2, .7, .05], [.9, .05, .05]], np.float32)
    y = _run(_text(3, nms=0.5, conf=0.1), np.zeros((1, 16), np.float32), conf.reshape(1, 12),
             _prior(boxes))
    assert y.shape == (1, 1, 3, 7)
    want = [[0, 1, .9, 0, 0, 1, 1], [0, 1, .7, 0, 0, .5, .5], [0, 2, .6, 0, 0, 1, .9]]
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-6, atol=1e-7)
    # keep_top_k 2: the two highest scores (A .9 of class 1, C .7 of class 1) stay, grouped by label
    y = _run(_text(3, nms=0.5, conf=0.1, keep_top_k=2), np.zeros((1, 16), np.float32),
             conf.reshape(1, 12), _prior(boxes))
    np.testing.assert_allclose(y[0, 0], want[:2], rtol=1e-6, atol=1e-7)
    # top_k 1 per class before NMS: class 1 keeps only A
    y = _run(_text(3, nms=0.5, conf=0.1, top_k=1), np.zeros((1, 16), np.float32), conf.reshape(1, 12),
             _prior(boxes))
    np.testing.assert_allclose(y[0, 0], [want[0], want[2]], rtol=1e-6, atol=1e-7)


def test_no_detection_gives_one_row_per_image():
    conf = np.full((2, 8), 0.25, np.float32)
    y = _run(_text(2, conf=0.5), np.zeros((2, 16), np.float32), conf, _prior(np.zeros((4, 4))))
    np.testing.assert_array_equal(y, [[[[0, -1, -1, -1, -1, -1, -1], [1, -1, -1, -1, -1, -1, -1]]]])


def test_eta_lowers_the_threshold_after_each_kept_box():
    """Overlaps with A: .6 (B), .55 (C); B and C overlap .40. nms 0.7 with eta 0.9: after A the
    threshold is .63, B (.6) stays, then .567 (still > .5, so lowered), C (.55) stays: 3 boxes.
    With eta 0.8 the threshold after A is .56: B (.6) goes, C (.55) stays: 2 boxes. Without eta
    every overlap is under .7: 3 boxes."""
    boxes = [[0, 0, 1, 1], [0, 0, 1, .6], [.45, 0, 1, 1]]
    conf = np.array([[0, .9], [0, .8], [0, .7]], np.float32).reshape(1, 6)
    z = np.zeros((1, 12), np.float32)
    y = _run(_text(2, nms=0.7, eta=0.9), z, conf, _prior(boxes))
    assert y.shape[2] == 3
    y = _run(_text(2, nms=0.7, eta=0.8), z, conf, _prior(boxes))
    np.testing.assert_allclose(y[0, 0, :, 2], [.9, .7])
    assert _run(_text(2, nms=0.7), z, conf, _prior(boxes)).shape[2] == 3


CONFIGS = [
    dict(code=2), dict(code=1), dict(code=3), dict(code=2, vet=True),
    dict(code=2, share=False), dict(code=1, share=False, bg=1), dict(code=2, bg=-1),
    dict(code=2, keep_top_k=5), dict(code=2, top_k=3, nms=0.45), dict(code=2, eta=0.8, nms=0.8),
    dict(code=2, conf=0.3), dict(code=3, share=False, keep_top_k=4, conf=0.2),
    dict(code=2, clip=True), dict(code=1, clip=True, share=False),
]


def _inputs(n, p, c, share, seed):
    rng = np.random.default_rng(seed)
    nloc = 1 if share else c
    loc = (rng.standard_normal((n, p * nloc * 4)) * 0.6).astype(np.float32)
    logits = rng.standard_normal((n, p, c)) * 2
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32).reshape(n, -1)
    ctr = rng.uniform(0.3, 0.7, (p, 2))          # crowded priors: NMS has work to do
    size = rng.uniform(0.2, 0.5, (p, 2))
    boxes = np.concatenate([ctr - size / 2, ctr + size / 2], 1)
    return loc, conf, _prior(boxes)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_matches_reference(cfg):
    c = 4
    loc, conf, prior = _inputs(2, 7, c, cfg.get("share", True), seed=len(str(cfg)))
    y = _run(_text(c, **cfg), loc, conf, prior)
    ref_args = {("share_location" if k == "share" else "background_label_id" if k == "bg" else
                 "code_type" if k == "code" else "variance_encoded_in_target" if k == "vet" else
                 "confidence_threshold" if k == "conf" else "nms_threshold" if k == "nms" else k): v
                for k, v in cfg.items()}
    ref_args.setdefault("nms_threshold", 0.3)
    want = detection_output_ref(loc, conf, prior, c, **ref_args)
    assert y.shape == (1, 1) + want.shape
    assert_close(y[0, 0], want, 1e-5, 1e-6)


@given(n=st.integers(1, 2), p=st.integers(1, 8), c=st.integers(2, 4), share=st.booleans(),
       code=st.sampled_from([1, 2, 3]), bg=st.sampled_from([-1, 0, 1]),
       keep_top_k=st.sampled_from([-1, 1, 3, 10]), nms=st.sampled_from([0.0, 0.3, 0.7]),
       seed=st.integers(0, 1000))
def test_drawn(n, p, c, share, code, bg, keep_top_k, nms, seed):
    loc, conf, prior = _inputs(n, p, c, share, seed)
    y = _run(_text(c, share, bg, code, keep_top_k=keep_top_k, nms=nms, conf=0.05), loc, conf, prior)
    want = detection_output_ref(loc, conf, prior, c, share, bg, code, False, keep_top_k, 0.05, nms)
    assert_close(y[0, 0], want, 1e-5, 1e-6)


@pytest.mark.parametrize("text,shapes,msg", [
    ('type: "DetectionOutput" detection_output_param { }', None, "must specify num_classes"),
    (_text(3), [(1, 12), (1, 9), (1, 2, 16)], "location predictions"),
    (_text(3), [(1, 16), (1, 8), (1, 2, 16)], "confidence predictions"),
    (_text(3, eta=1.5), None, "eta must be in"),
    (_text(3, nms=-0.1), None, "nms_threshold must be non negative"),
    (_text(3), [(2, 16), (1, 12), (1, 2, 16)], "same num"),
])
def test_fork_checks(text, shapes, msg):
    with pytest.raises(ShapeError, match=msg):
        make_layer(text, shapes or [(1, 16), (1, 12), (1, 2, 16)])


def test_unsupported_outputs_are_logged(caplog):
    text = _text(3).replace("keep_top_k", 'save_output_param { output_directory: "/nonexistent" } '
                            'visualize: true keep_top_k')
    make_layer(text, [(1, 16), (1, 12), (1, 2, 16)])
    assert "save_output_param.output_directory and visualize not supported" in caplog.text


def test_clip_and_zero_area_boxes():
    """clip: true clamps the decoded boxes into [0, 1]; two boxes clipped to the same zero-width
    strip at the border overlap 0 (the fork's JaccardOverlap needs a positive intersection), so
    both are kept; a third box overlapping nothing stays too."""
    boxes = [[1.2, .2, 1.5, .6], [1.1, .2, 1.3, .6], [.1, .1, .4, .4]]
    conf = np.array([[0, .9], [0, .8], [0, .7]], np.float32).reshape(1, 6)
    y = _run(_text(2, nms=0.2, clip=True), np.zeros((1, 12), np.float32), conf, _prior(boxes))
    np.testing.assert_allclose(y[0, 0], [[0, 1, .9, 1, .2, 1, .6], [0, 1, .8, 1, .2, 1, .6],
                                         [0, 1, .7, .1, .1, .4, .4]], rtol=1e-6)
    y = _run(_text(2, nms=0.2), np.zeros((1, 12), np.float32), conf, _prior(boxes))
    np.testing.assert_allclose(y[0, 0, 0, 3:], [1.2, .2, 1.5, .6], rtol=1e-6)   # unclipped
    assert y.shape[2] == 2          # IoU(box 0, box 1) = .04 / .16 = .25 > .2: box 1 suppressed
