"""kernels/detection.py: prior boxes and box decoding against the loops of tests/reference/ssd.py
(written from the SSD fork's C++), hypothesis-drawn geometry and code types."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import detection as K
from tests.helpers import assert_close
from tests.reference.ssd import decode_ref, prior_box_ref

f32 = np.float32


def _sizes(min_sizes, max_sizes, ars):
    """Box sizes per cell in the fork's order (integer sizes, flipped ratios)."""
    ws, hs = [], []
    for s, mn in enumerate(min_sizes):
        ws.append(float(mn))
        hs.append(float(mn))
        if max_sizes:
            side = float(f32(math.sqrt(mn * max_sizes[s])))
            ws.append(side)
            hs.append(side)
        for ar in ars:
            r = f32(math.sqrt(f32(ar)))
            ws.append(float(f32(mn) * r))
            hs.append(float(f32(mn) / r))
    return np.asarray(ws, f32), np.asarray(hs, f32)


@given(lh=st.integers(1, 4), lw=st.integers(1, 4), img=st.integers(8, 40), mn=st.integers(1, 12),
       with_max=st.booleans(), clip=st.booleans(), offset=st.sampled_from([0.0, 0.5, 0.25]),
       four=st.booleans())
def test_prior_box(lh, lw, img, mn, with_max, clip, offset, four):
    max_sizes = [mn + 5] if with_max else []
    ars = [2.0, 0.5]                                   # aspect_ratio 2 with flip
    var = (0.1, 0.1, 0.2, 0.2) if four else (0.1,) * 4
    ws, hs = _sizes([mn], max_sizes, ars)
    dim = lh * lw * len(ws) * 4
    y = cuda.device_array(2 * dim, np.float32)
    step_h, step_w = float(f32(img) / f32(lh)), float(f32(img + 3) / f32(lw))
    K.prior_box_fwd(y, cuda.to_device(ws), cuda.to_device(hs), lh, lw, img, img + 3, step_h,
                    step_w, offset, clip, var)
    want = prior_box_ref(lh, lw, img, img + 3, [mn], max_sizes, [2.0], True, clip,
                         var if four else (0.1,), offset=offset)
    assert_close(y.copy_to_host().reshape(2, dim), want, rtol=1e-6, atol=1e-7, name="priors")


@given(n=st.integers(1, 2), p=st.integers(1, 5), nloc=st.integers(1, 3),
       code=st.sampled_from([1, 2, 3]), vet=st.booleans(), clip=st.booleans(),
       seed=st.integers(0, 2**16))
def test_bbox_decode(n, p, nloc, code, vet, clip, seed):
    rng = np.random.default_rng(seed)
    loc = (rng.standard_normal((n, p * nloc * 4)) * 0.5).astype(np.float32)
    c = rng.uniform(0.2, 0.8, (p, 2))
    s = rng.uniform(0.05, 0.4, (p, 2))
    prior = np.stack([np.concatenate([c - s / 2, c + s / 2], 1).reshape(-1),
                      np.tile([0.1, 0.1, 0.2, 0.2], p)]).astype(np.float32)[None]
    boxes = cuda.device_array(loc.size, np.float32)
    K.bbox_decode(cuda.to_device(loc), cuda.to_device(prior), boxes, p, nloc, code, vet, clip)
    lv = loc.reshape(n, p, nloc, 4)
    want = np.array([[[decode_ref(lv[i, q, k], prior[0, 0, q * 4:q * 4 + 4],
                                  prior[0, 1, q * 4:q * 4 + 4], code, vet, clip)
                       for k in range(nloc)] for q in range(p)] for i in range(n)], np.float32)
    assert_close(boxes.copy_to_host(), want.reshape(-1), rtol=1e-5, atol=1e-6, name="boxes")
