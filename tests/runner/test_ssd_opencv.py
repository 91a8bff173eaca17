"""OpenCV 4's dnn (``cv2.dnn.readNetFromCaffe``) as the independent oracle for the SSD fork's layers:
each layer alone on nets written here (random weights saved as .caffemodel files by ``Net.save``),
and an SSD-style deploy net (a small backbone, three multibox heads with
Normalize/Permute/Flatten/Concat/PriorBox, softmax over the classes, DetectionOutput) whose every
intermediate blob and detections must equal OpenCV's, on the cpu and cuda backends.

Where OpenCV departs from the fork (these tests avoid or undo it; docs/layers.md lists them):
- DetectionOutput: OpenCV returns a fixed (1, 1, N * keep_top_k, 7) with the detections first, each
  image's sorted by confidence, then zero rows; the fork groups each image's rows by label
  (ascending) and returns exactly the kept rows. The comparison sorts ours by confidence within
  each image (a stable sort) and checks OpenCV's extra rows are zero. OpenCV crashes for
  keep_top_k -1 and ignores eta, so both stay at the fork's defaults or positive values here.
- PriorBox: OpenCV's clip defaults to true (the fork's to false), it keeps fractional min/max
  sizes (the fork truncates them to integers), needs a variance, and ignores img_size, img_h and
  img_w (it always divides by the image bottom's size): the nets give clip, integer sizes and a
  variance, and no image size (those and the defaults are pinned by hand-computed numbers in
  tests/layers/test_prior_box_layer.py).
- Normalize with across_spatial and a per-channel scale fails in OpenCV: checked against the
  reference of the fork's equations in tests/layers/test_normalize_layer.py instead.
"""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from runner import Net  # noqa: E402

TOL = 1e-4


def _input(name: str, shape) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def _layer(name, type_, bottoms, top, body=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    return f'layer {{ name: "{name}" type: "{type_}" {b} top: "{top}" {body} }}\n'


def _opencv(proto, weights, feed: dict, outputs: list[str]):
    net = cv2.dnn.readNetFromCaffe(str(proto), str(weights)) if weights else \
        cv2.dnn.readNetFromCaffe(str(proto))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.enableFusion(False)
    for k, v in feed.items():
        net.setInput(v, k)
    return [np.asarray(o) for o in net.forward(outputs)]


def _randomize(net: Net, rng, std=0.5) -> None:
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data = rng.standard_normal(blob.shape) * std


def _close(mine, theirs, what: str) -> None:
    theirs = np.asarray(theirs).reshape(mine.shape)
    scale = max(float(np.abs(theirs).max()), 1e-6)
    err = float(np.abs(mine - theirs).max()) / scale
    assert err <= TOL, f"{what}: max |diff| / max = {err:.3g}"


def _compare_blobs(net: Net, theirs: dict, what: str) -> int:
    """Every blob against OpenCV's output of the last layer writing it (in-place layers overwrite
    their bottom), DetectionOutput aside. Returns the number compared."""
    writer = {}
    for layer in net.layers:
        if layer.type not in ("Split", "Input", "DetectionOutput"):
            for t in net.top_names[layer.name]:
                writer[t] = layer.name
    for blob, lname in writer.items():
        _close(net.blobs[blob].host_data(), theirs[lname], f"{what}: blob {blob!r}")
    return len(writer)


def _check_detections(mine: np.ndarray, theirs: np.ndarray, what: str) -> int:
    """Our (1, 1, K, 7) rows against OpenCV's (1, 1, R, 7): the same detections in OpenCV's order
    (per image by descending confidence) with OpenCV's remaining rows zero. Returns K."""
    rows = mine.reshape(-1, 7)
    theirs = theirs.reshape(-1, 7)
    for i in np.unique(rows[:, 0]):     # tied confidences would make both orders unspecified
        scores = rows[rows[:, 0] == i, 2]
        assert len(np.unique(scores)) == len(scores), f"{what}: tied confidences in the test data"
    assert rows.shape[0] <= theirs.shape[0], f"{what}: {rows.shape[0]} rows, OpenCV {theirs.shape[0]}"
    order = sorted(range(len(rows)), key=lambda r: (rows[r, 0], -rows[r, 2]))
    mine_sorted = rows[order]
    k = len(rows)
    np.testing.assert_array_equal(mine_sorted[:, :2], theirs[:k, :2], err_msg=f"{what}: image/label")
    np.testing.assert_allclose(mine_sorted[:, 2:], theirs[:k, 2:], atol=TOL, rtol=0,
                               err_msg=f"{what}: confidence/box")
    assert not np.any(theirs[k:]), f"{what}: OpenCV has more detections"
    # ours, per image: labels ascending, then confidence descending (the fork's order)
    for i in np.unique(rows[:, 0]):
        r = rows[rows[:, 0] == i]
        assert all((a[1], -a[2]) <= (b[1], -b[2]) for a, b in zip(r, r[1:])), f"{what}: order"
    return k


# ----------------------------------------------------------------------------- layers alone

@pytest.mark.parametrize("across,shared", [(True, True), (False, True), (False, False)])
def test_normalize(tmp_path, across, shared):
    text = _input("x", (2, 3, 4, 5)) + _layer(
        "norm", "Normalize", ["x"], "y", f"norm_param {{ across_spatial: {str(across).lower()} "
        f"channel_shared: {str(shared).lower()} eps: 1e-6 }}")
    proto = tmp_path / "n.prototxt"
    proto.write_text(text)
    net = Net(str(proto))
    _randomize(net, np.random.default_rng(1), std=3.0)
    net.save(tmp_path / "n.caffemodel")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    (theirs,) = _opencv(proto, tmp_path / "n.caffemodel", {"x": x}, ["norm"])
    _close(net.forward(x=x)["y"], theirs, "Normalize")


@pytest.mark.parametrize("order", [(0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 3, 2), (1, 0, 2, 3)])
def test_permute(tmp_path, order):
    body = "permute_param { " + " ".join(f"order: {o}" for o in order) + " }"
    proto = tmp_path / "p.prototxt"
    proto.write_text(_input("x", (2, 3, 4, 5)) + _layer("perm", "Permute", ["x"], "y", body))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    (theirs,) = _opencv(proto, None, {"x": x}, ["perm"])
    mine = Net(str(proto)).forward(x=x)["y"]
    assert tuple(theirs.shape) == mine.shape
    np.testing.assert_array_equal(mine, theirs)


PRIORS = [
    "min_size: 4 max_size: 9 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 "
    "variance: 0.2 variance: 0.2",
    "min_size: 3 aspect_ratio: 2 aspect_ratio: 3 flip: false clip: true variance: 0.1",
    "min_size: 5 max_size: 10 step: 6 offset: 0.3 clip: false variance: 0.2",
    "min_size: 4 step_h: 7 step_w: 5 clip: false variance: 0.1",
    "min_size: 3 min_size: 6 max_size: 5 max_size: 11 aspect_ratio: 2 clip: true variance: 0.1 "
    "variance: 0.1 variance: 0.2 variance: 0.2",
]


@pytest.mark.parametrize("params", PRIORS)
def test_prior_box(tmp_path, params):
    proto = tmp_path / "pb.prototxt"
    proto.write_text(_input("f", (1, 2, 3, 4)) + _input("img", (1, 3, 20, 24)) +
                     _layer("prior", "PriorBox", ["f", "img"], "y", f"prior_box_param {{ {params} }}"))
    feed = {"f": np.zeros((1, 2, 3, 4), np.float32), "img": np.zeros((1, 3, 20, 24), np.float32)}
    (theirs,) = _opencv(proto, None, feed, ["prior"])
    mine = Net(str(proto)).forward(**feed)["y"]
    assert tuple(theirs.shape) == mine.shape
    np.testing.assert_allclose(mine, theirs, atol=1e-6, rtol=0)


def _det_inputs(n, p, c, nloc, seed, edge=False):
    """loc, conf (softmax), prior for n images, p priors, c classes; ``edge``: priors reaching
    past the image border (so that clipping changes boxes)."""
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0.0, 1.0, (p, 2)) if edge else rng.uniform(0.25, 0.75, (p, 2))
    size = rng.uniform(0.3, 0.8, (p, 2)) if edge else rng.uniform(0.15, 0.5, (p, 2))
    boxes = np.concatenate([ctr - size / 2, ctr + size / 2], 1).reshape(-1)
    logits = rng.standard_normal((n, p, c)) * 2
    return {"loc": (rng.standard_normal((n, p * nloc * 4)) * 0.5).astype(np.float32),
            "conf": (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
            .reshape(n, -1),
            "prior": np.stack([boxes, np.tile([.1, .1, .2, .2], p)]).astype(np.float32)[None]}


@pytest.mark.parametrize("code,share,extra", [
    ("CENTER_SIZE", True, "keep_top_k: 200"),
    ("CORNER", True, "keep_top_k: 10"),
    ("CENTER_SIZE", False, "keep_top_k: 30 confidence_threshold: 0.2"),
    ("CENTER_SIZE", True, "keep_top_k: 7 background_label_id: 2"),
    ("CENTER_SIZE", True, "keep_top_k: 40 clip: true"),      # OpenCV's face detector sets clip
])
def test_detection_output(tmp_path, code, share, extra):
    c = 4
    clip = "clip" in extra
    feed = _det_inputs(2, 24, c, 1 if share else c, seed=len(extra), edge=clip)
    bg = "" if "background_label_id" in extra else "background_label_id: 0 "   # OpenCV needs it
    body = (f"detection_output_param {{ num_classes: {c} share_location: {str(share).lower()} "
            f"{bg}nms_param {{ nms_threshold: 0.45 top_k: 15 }} code_type: {code} {extra} }}")
    proto = tmp_path / "d.prototxt"
    proto.write_text("".join(_input(k, v.shape) for k, v in feed.items()) +
                     _layer("det", "DetectionOutput", ["loc", "conf", "prior"], "y", body))
    (theirs,) = _opencv(proto, None, feed, ["det"])
    mine = Net(str(proto)).forward(**feed)["y"]
    k = _check_detections(mine, theirs, f"{code} {extra}")
    assert k > 2
    if clip:       # the data puts boxes past the border: clipped coordinates are exactly 0 or 1
        assert np.isin(mine[..., 3:], [0.0, 1.0]).sum() > 5


# ----------------------------------------------------------------------------- SSD deploy net

NUM_CLASSES = 3
HEADS = [  # (source blob, min_size, max_size, aspect ratios, flip)
    ("conv2_norm", 4, 8, [2], True),
    ("conv3", 8, 12, [2, 3], True),
    ("conv4", 12, 16, [2], False),
]


def _num_priors(ars, flip):
    return 2 + len(ars) * (2 if flip else 1)


def ssd_deploy(batch=2, size=16, width=8) -> str:
    """A small SSD300-style deploy net: conv/pool backbone, Normalize on the first source, three
    heads, Concat of loc/conf/priors, conf softmax over the classes, DetectionOutput."""
    conv = 'convolution_param {{ num_output: {} kernel_size: {} pad: {} }}'
    pool = 'pooling_param { pool: MAX kernel_size: 2 stride: 2 }'
    t = _input("data", (batch, 3, size, size))
    t += _layer("conv1", "Convolution", ["data"], "conv1", conv.format(width, 3, 1))
    t += _layer("relu1", "ReLU", ["conv1"], "conv1")
    t += _layer("pool1", "Pooling", ["conv1"], "pool1", pool)
    t += _layer("conv2", "Convolution", ["pool1"], "conv2", conv.format(width, 3, 1))
    t += _layer("relu2", "ReLU", ["conv2"], "conv2")
    t += _layer("conv2_norm", "Normalize", ["conv2"], "conv2_norm",
                'norm_param { across_spatial: false channel_shared: false '
                'scale_filler { type: "constant" value: 20 } }')
    t += _layer("pool2", "Pooling", ["conv2"], "pool2", pool)
    t += _layer("conv3", "Convolution", ["pool2"], "conv3", conv.format(width, 3, 1))
    t += _layer("relu3", "ReLU", ["conv3"], "conv3")
    t += _layer("pool3", "Pooling", ["conv3"], "pool3", pool)
    t += _layer("conv4", "Convolution", ["pool3"], "conv4", conv.format(width, 1, 0))
    t += _layer("relu4", "ReLU", ["conv4"], "conv4")
    locs, confs, priors = [], [], []
    for src, mn, mx, ars, flip in HEADS:
        p = _num_priors(ars, flip)
        for kind, n_out in (("loc", p * 4), ("conf", p * NUM_CLASSES)):
            t += _layer(f"{src}_mbox_{kind}", "Convolution", [src], f"{src}_mbox_{kind}",
                        conv.format(n_out, 3, 1))
            t += _layer(f"{src}_mbox_{kind}_perm", "Permute", [f"{src}_mbox_{kind}"],
                        f"{src}_mbox_{kind}_perm",
                        "permute_param { order: 0 order: 2 order: 3 order: 1 }")
            t += _layer(f"{src}_mbox_{kind}_flat", "Flatten", [f"{src}_mbox_{kind}_perm"],
                        f"{src}_mbox_{kind}_flat", "flatten_param { axis: 1 }")
        locs.append(f"{src}_mbox_loc_flat")
        confs.append(f"{src}_mbox_conf_flat")
        ar = " ".join(f"aspect_ratio: {a}" for a in ars)
        t += _layer(f"{src}_mbox_priorbox", "PriorBox", [src, "data"], f"{src}_mbox_priorbox",
                    f"prior_box_param {{ min_size: {mn} max_size: {mx} {ar} flip: "
                    f"{str(flip).lower()} clip: false variance: 0.1 variance: 0.1 variance: 0.2 "
                    "variance: 0.2 offset: 0.5 }")
        priors.append(f"{src}_mbox_priorbox")
    t += _layer("mbox_loc", "Concat", locs, "mbox_loc", "concat_param { axis: 1 }")
    t += _layer("mbox_conf", "Concat", confs, "mbox_conf", "concat_param { axis: 1 }")
    t += _layer("mbox_priorbox", "Concat", priors, "mbox_priorbox", "concat_param { axis: 2 }")
    t += _layer("mbox_conf_reshape", "Reshape", ["mbox_conf"], "mbox_conf_reshape",
                f"reshape_param {{ shape {{ dim: 0 dim: -1 dim: {NUM_CLASSES} }} }}")
    t += _layer("mbox_conf_softmax", "Softmax", ["mbox_conf_reshape"], "mbox_conf_softmax",
                "softmax_param { axis: 2 }")
    t += _layer("mbox_conf_flatten", "Flatten", ["mbox_conf_softmax"], "mbox_conf_flatten",
                "flatten_param { axis: 1 }")
    t += _layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                "detection_out",
                f"include {{ phase: TEST }} detection_output_param {{ num_classes: {NUM_CLASSES} "
                "share_location: true background_label_id: 0 nms_param { nms_threshold: 0.45 "
                "top_k: 40 } code_type: CENTER_SIZE keep_top_k: 25 confidence_threshold: 0.35 }")
    return t


#: (batch, input size, backbone width) per backend: the simulator runs every CUDA thread in Python
SIZES = {"cpu": (2, 16, 8), "cuda": (1, 8, 4)}


def _ssd_model(tmp, batch, size, width):
    """(prototxt, caffemodel, input, OpenCV's blobs by layer name) for the SSD deploy net."""
    proto = tmp / "ssd_deploy.prototxt"
    proto.write_text(ssd_deploy(batch, size, width))
    net = Net(str(proto), seed=0)
    rng = np.random.default_rng(7)
    for layer in net.layers:
        for j, blob in enumerate(layer.blobs):
            if layer.type == "Normalize":
                blob.data = rng.uniform(5, 20, blob.shape)
            elif j == 0:      # heads smaller: moderate logits (no tied confidences) and offsets
                fan_in = blob.count // blob.shape[0]
                gain = 0.3 if "mbox" in layer.name else 2.0
                blob.data = rng.standard_normal(blob.shape) * np.sqrt(gain / fan_in)
            else:
                blob.data = rng.standard_normal(blob.shape) * 0.1
    weights = tmp / "ssd.caffemodel"
    net.save(weights)
    x = rng.standard_normal(net.blobs["data"].shape).astype(np.float32)
    names = [layer.name for layer in net.layers if layer.type not in ("Split", "Input")]
    outs = _opencv(proto, weights, {"data": x}, names)
    return proto, weights, x, dict(zip(names, outs))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.slow)])
def test_ssd_deploy_net_matches_opencv(tmp_path, device):
    batch, size, width = SIZES[device]
    proto, weights, x, theirs = _ssd_model(tmp_path, batch, size, width)
    net = Net(str(proto), weights=str(weights), device=device)
    out = net.forward(data=x)["detection_out"]
    assert _compare_blobs(net, theirs, device) >= 30
    k = _check_detections(out, theirs["detection_out"], device)
    n_priors = sum(_num_priors(a, f) * (size // s) ** 2 for (_, _, _, a, f), s in zip(HEADS, (2, 4, 8)))
    assert net.blobs["mbox_priorbox"].shape == (1, 2, n_priors * 4)
    # the detections exercise every stage: every image, both classes, NMS and keep_top_k
    assert set(out[0, 0, :, 0]) == set(range(batch)) and set(out[0, 0, :, 1]) == {1, 2}
    assert k == batch * 25


# OpenCV's face detector (res10_300x300_ssd, samples/dnn/face_detector/deploy.prototxt): its six
# heads' prior geometry at 300x300 and its DetectionOutput parameters (2 classes, clip: 1), on a
# cheap backbone that produces the same 38/19/10/5/3/1 feature maps
RES10_HEADS = [  # (name, stride, kernel, pad, min_size, max_size, aspect ratios, step)
    ("conv4_3", 8, 3, 1, 30, 60, [2], 8), ("fc7", 2, 3, 1, 60, 111, [2, 3], 16),
    ("conv6_2", 2, 3, 1, 111, 162, [2, 3], 32), ("conv7_2", 2, 3, 1, 162, 213, [2, 3], 64),
    ("conv8_2", 2, 3, 1, 213, 264, [2], 100), ("conv9_2", 1, 3, 0, 264, 315, [2], 300),
]


def res10_like() -> str:
    t = _input("data", (1, 3, 300, 300))
    src = "data"
    locs, confs, priors = [], [], []
    for name, stride, k, pad, mn, mx, ars, step in RES10_HEADS:
        t += _layer(name, "Convolution", [src], name,
                    f"convolution_param {{ num_output: 4 kernel_size: {k} pad: {pad} stride: {stride} }}")
        t += _layer(f"{name}_relu", "ReLU", [name], name)
        src = head = name
        if name == "conv4_3":
            t += _layer("conv4_3_norm", "Normalize", [name], "conv4_3_norm",
                        'norm_param { across_spatial: false scale_filler { type: "constant" value: 20 } '
                        "channel_shared: false }")
            head = "conv4_3_norm"
        p = 2 + 2 * len(ars)
        for kind, n_out in (("loc", p * 4), ("conf", p * 2)):
            t += _layer(f"{head}_mbox_{kind}", "Convolution", [head], f"{head}_mbox_{kind}",
                        f"convolution_param {{ num_output: {n_out} kernel_size: 3 pad: 1 }}")
            t += _layer(f"{head}_mbox_{kind}_perm", "Permute", [f"{head}_mbox_{kind}"],
                        f"{head}_mbox_{kind}_perm", "permute_param { order: 0 order: 2 order: 3 order: 1 }")
            t += _layer(f"{head}_mbox_{kind}_flat", "Flatten", [f"{head}_mbox_{kind}_perm"],
                        f"{head}_mbox_{kind}_flat", "flatten_param { axis: 1 }")
        locs.append(f"{head}_mbox_loc_flat")
        confs.append(f"{head}_mbox_conf_flat")
        ar = " ".join(f"aspect_ratio: {a}" for a in ars)
        t += _layer(f"{head}_mbox_priorbox", "PriorBox", [head, "data"], f"{head}_mbox_priorbox",
                    f"prior_box_param {{ min_size: {mn}.0 max_size: {mx}.0 {ar} flip: true clip: false "
                    f"variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: {step} offset: 0.5 }}")
        priors.append(f"{head}_mbox_priorbox")
    t += _layer("mbox_loc", "Concat", locs, "mbox_loc", "concat_param { axis: 1 }")
    t += _layer("mbox_conf", "Concat", confs, "mbox_conf", "concat_param { axis: 1 }")
    t += _layer("mbox_priorbox", "Concat", priors, "mbox_priorbox", "concat_param { axis: 2 }")
    t += _layer("mbox_conf_reshape", "Reshape", ["mbox_conf"], "mbox_conf_reshape",
                "reshape_param { shape { dim: 0 dim: -1 dim: 2 } }")
    t += _layer("mbox_conf_softmax", "Softmax", ["mbox_conf_reshape"], "mbox_conf_softmax",
                "softmax_param { axis: 2 }")
    t += _layer("mbox_conf_flatten", "Flatten", ["mbox_conf_softmax"], "mbox_conf_flatten",
                "flatten_param { axis: 1 }")
    t += _layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                "detection_out", "include { phase: TEST } detection_output_param { num_classes: 2 "
                "share_location: true background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 400 } "
                "code_type: CENTER_SIZE keep_top_k: 200 confidence_threshold: 0.2 clip: 1 }")
    return t


def test_res10_face_detector_geometry_matches_opencv(tmp_path):
    """8732-style prior bank at 300x300 (here 38*38*4 + 19*19*6 + 10*10*6 + 5*5*6 + 3*3*4 + 1*4 =
    8732 priors), Normalize, two classes, clip: 1: every blob and the detections equal OpenCV's."""
    proto = tmp_path / "res10_like.prototxt"
    proto.write_text(res10_like())
    net = Net(str(proto), seed=0)
    rng = np.random.default_rng(3)
    for layer in net.layers:
        for j, blob in enumerate(layer.blobs):
            if layer.type == "Normalize":
                blob.data = rng.uniform(1, 3, blob.shape)
            elif j == 0:      # heads small: confidences well inside (0, 1), none tied
                gain = 0.02 if "mbox" in layer.name else 2.0
                blob.data = rng.standard_normal(blob.shape) * np.sqrt(gain / (blob.count // blob.shape[0]))
            else:
                blob.data = rng.standard_normal(blob.shape) * 0.1
    net.save(tmp_path / "res10_like.caffemodel")
    x = rng.uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
    out = net.forward(data=x)["detection_out"]
    assert net.blobs["mbox_priorbox"].shape == (1, 2, 8732 * 4)
    names = [layer.name for layer in net.layers if layer.type not in ("Split", "Input")]
    theirs = dict(zip(names, _opencv(proto, tmp_path / "res10_like.caffemodel", {"data": x}, names)))
    assert _compare_blobs(net, theirs, "res10") >= 40
    assert _check_detections(out, theirs["detection_out"], "res10") == 200
