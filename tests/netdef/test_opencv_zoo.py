"""Shape rules vs OpenCV's Caffe importer (an independent implementation) on a net using many
layer types and parameter spellings, and on random convolution / pooling configurations. Weights
come from netdef.weights.write_caffemodel, so OpenCV also checks our parameter shapes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from netdef.graph import build_graph
from netdef.prototxt import read_net
from netdef.weights import write_caffemodel
from tests.sizes import MAX_CHANNELS, MAX_SPATIAL

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed")
ZOO = Path(__file__).parent / "data" / "zoo.prototxt"


def _compare(text_or_path, tmp: Path, input_shape):
    net = read_net(text_or_path)
    g = build_graph(net)
    proto = tmp / "net.prototxt"
    proto.write_text(Path(text_or_path).read_text() if isinstance(text_or_path, Path)
                     else text_or_path)
    rng = np.random.default_rng(0)
    w = {n.name: (n.type, [rng.random(s, dtype=np.float32) + 0.1 for s in n.param_shapes])
         for n in g.layers if n.param_shapes}
    write_caffemodel(tmp / "net.caffemodel", w, net)
    cvnet = cv2.dnn.readNetFromCaffe(str(proto), str(tmp / "net.caffemodel"))
    cvnet.setInput(rng.random(input_shape, dtype=np.float32))
    names = list(cvnet.getLayerNames())
    for name, out in zip(names, cvnet.forward(names)):
        assert tuple(out.shape) == g.layer(name).top_shapes[0], name
    return names


def test_zoo_matches_opencv(tmp_path):
    names = _compare(ZOO, tmp_path, (1, 4, 13, 11))
    assert len(names) == 24


@given(h=st.integers(1, MAX_SPATIAL * 3), w=st.integers(1, MAX_SPATIAL * 3),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       g=st.integers(1, 2), c=st.integers(1, MAX_CHANNELS), pool=st.sampled_from(["MAX", "AVE"]))
def test_random_conv_and_pool_match_opencv(tmp_path_factory, h, w, k, s, p, d, g, c, pool):
    text = (f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 '
            f'dim: {c * g} dim: {h} dim: {w} }} }} }}\n'
            f'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" '
            f'convolution_param {{ num_output: {2 * g} kernel_size: {k} stride: {s} pad: {p} '
            f'dilation: {d} group: {g} }} }}\n'
            f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" '
            f'pooling_param {{ pool: {pool} kernel_size: {k} stride: {s} pad: {min(p, k - 1)} }} }}')
    try:
        build_graph(read_net(text))
    except ShapeError as e:  # the kernel does not fit: both rules say so
        assert "larger than the padded input" in str(e)
        assert h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1 or \
            h + 2 * min(p, k - 1) < k or w + 2 * min(p, k - 1) < k
        return
    _compare(text, tmp_path_factory.mktemp("cv"), (1, c * g, h, w))
