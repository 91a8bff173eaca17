"""OpenCV 4's Caffe importer (``cv2.dnn.readNetFromCaffe``) as an independent forward oracle for a
small net: our Net writes the .caffemodel (its parameters as they are), OpenCV loads the prototxt
and that file, both run the same inputs, and the named output must agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runner import Net


def opencv_forward_matches(text: str, feed: dict, out: str, tmp_path: Path, set_params=None,
                           rtol: float = 1e-5) -> np.ndarray:
    """Run ``text`` (a deploy prototxt) on our cpu Net and in OpenCV; ``set_params(net)`` may set
    parameter values first. Asserts max |ours - theirs| <= rtol * max(|theirs|, 1) and returns ours."""
    cv2 = pytest.importorskip("cv2")
    proto = tmp_path / "net.prototxt"
    proto.write_text(text)
    net = Net(str(proto), seed=3)
    if set_params is not None:
        set_params(net)
    weights = tmp_path / "net.caffemodel"
    net.save(weights)
    ours = net.forward(**feed)[out]
    cv_net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    cv_net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cv_net.enableFusion(False)
    for name, value in feed.items():
        cv_net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
    writer = [name for name, tops in net.top_names.items() if out in tops][-1]   # OpenCV names layers
    theirs = np.asarray(cv_net.forward(writer)).reshape(ours.shape)
    scale = max(float(np.abs(theirs).max()), 1.0)
    err = float(np.abs(ours - theirs).max()) / scale
    assert err <= rtol, f"{out}: differs from OpenCV: max |diff| / max(|OpenCV|, 1) = {err:.3g}"
    return ours
