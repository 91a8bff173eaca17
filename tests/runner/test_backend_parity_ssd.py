"""cpu vs cuda (the simulator in CI) for the SSD fork's layers, with the harness of
test_backend_parity_layers.py: one-layer nets, forward + backward (data, diffs, parameter diffs)
twice; DetectionOutput (forward only) on drawn inputs, rows compared in order."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import Net
from tests.helpers import assert_close
from tests.runner.test_backend_parity_layers import _L, _input
from tests.runner.test_backend_parity_layers import test_layer_parity as run_parity

X4 = {"x": (2, 3, 3, 4)}
NORM = 'type: "Normalize" norm_param {{ across_spatial: {} channel_shared: {} scale_filler {{ {} }} }}'

CASES = [
    ("normalize_across_shared", _L(NORM.format("true", "true", 'type: "gaussian" std: 2')), X4, {},
     "TRAIN"),
    ("normalize_spatial_channels", _L(NORM.format("false", "false", 'type: "constant" value: 3')), X4,
     {}, "TRAIN"),
    ("normalize_across_channels", _L(NORM.format("true", "false", 'type: "constant" value: 0.5')), X4,
     {}, "TRAIN"),
    ("normalize_spatial_shared_2d", _L(NORM.format("false", "true", 'type: "gaussian" std: 2')),
     {"x": (3, 5)}, {}, "TRAIN"),
    ("permute_nhwc", _L('type: "Permute" permute_param { order: 0 order: 2 order: 3 order: 1 }'), X4,
     {}, "TRAIN"),
    ("permute_3d", _L('type: "Permute" permute_param { order: 2 order: 0 }'), {"x": (2, 3, 4)}, {},
     "TRAIN"),
    ("prior_box", _L('type: "PriorBox" prior_box_param { min_size: 3 max_size: 7 aspect_ratio: 2 '
                     'aspect_ratio: 3 flip: true clip: true variance: 0.1 variance: 0.1 variance: 0.2 '
                     'variance: 0.2 offset: 0.4 }', bottoms=("x", "img")),
     {"x": (1, 2, 3, 4), "img": (1, 3, 13, 17)}, {}, "TRAIN"),
    ("prior_box_steps", _L('type: "PriorBox" prior_box_param { min_size: 5 img_h: 40 img_w: 30 '
                           'step_h: 9 step_w: 7.5 }', bottoms=("x", "img")),
     {"x": (1, 2, 4, 3), "img": (1, 3, 8, 8)}, {}, "TRAIN"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ssd_layer_parity(case):
    run_parity(case)


@settings(max_examples=4)
@given(p=st.integers(2, 6), c=st.integers(2, 3), share=st.booleans(), code=st.sampled_from(
    ["CORNER", "CENTER_SIZE", "CORNER_SIZE"]), keep=st.sampled_from([-1, 3]), seed=st.integers(0, 99))
def test_detection_output_parity(p, c, share, code, keep, seed):
    nloc = 1 if share else c
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0.3, 0.7, (p, 2))
    size = rng.uniform(0.2, 0.5, (p, 2))
    boxes = np.concatenate([ctr - size / 2, ctr + size / 2], 1).reshape(-1)
    feed = {"loc": (rng.standard_normal((2, p * nloc * 4)) * 0.5).astype(np.float32),
            "conf": rng.uniform(0, 1, (2, p * c)).astype(np.float32),
            "prior": np.stack([boxes, np.tile([.1, .1, .2, .2], p)]).astype(np.float32)[None]}
    text = "".join(_input(k, v.shape) for k, v in feed.items()) + _L(
        f'type: "DetectionOutput" detection_output_param {{ num_classes: {c} share_location: '
        f'{str(share).lower()} nms_param {{ nms_threshold: 0.4 }} code_type: {code} '
        f'keep_top_k: {keep} confidence_threshold: 0.2 }}', bottoms=("loc", "conf", "prior"))
    outs = [Net(text, device=d).forward(**feed)["y"] for d in ("cpu", "cuda")]
    assert outs[0].shape == outs[1].shape
    assert_close(outs[1], outs[0], 1e-5, 1e-6, name="detections")
