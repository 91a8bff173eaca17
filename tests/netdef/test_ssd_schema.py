"""The SSD fork's messages in proto/caffe.proto read the fork's files: a .caffemodel encoded here
by hand (field numbers and wire types written out, independent of caffe_pb2) with the fork's
numbers, including training-only fork fields our schema does not name, parses; an SSD deploy
prototxt with every detection parameter parses into a graph with Caffe-SSD's defaults."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from netdef.errors import ParseError
from netdef.prototxt import read_net
from netdef.weights import caffemodel_blobs, read_caffemodel
from proto import caffe_pb2 as pb


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _f32(field: int, v: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", v)


def _vint(field: int, v: int) -> bytes:
    return _key(field, 0) + _varint(v)


def _s(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def test_fork_layer_parameter_numbers():
    """The numbers a .caffemodel written by the SSD fork carries (weiliu89/caffe, branch ssd)."""
    f = pb.LayerParameter.DESCRIPTOR.fields_by_name
    assert {n: f[n].number for n in ("permute_param", "prior_box_param", "detection_output_param",
                                     "norm_param")} == {
        "permute_param": 202, "prior_box_param": 203, "detection_output_param": 204,
        "norm_param": 206}
    assert f["norm_param"].message_type.name == "NormalizeParameter"


def test_hand_encoded_fork_caffemodel_parses(tmp_path):
    scale = np.array([20.0, 10.0, 5.0], dtype=np.float32)
    blob = (_len(7, _len(1, _varint(3)))                          # shape { dim: 3 } (packed)
            + _len(5, scale.tobytes()))                           # data (packed floats)
    norm = _len(100, _s(1, "conv4_3_norm") + _s(2, "Normalize") + _s(3, "conv4_3") + _s(4, "n")
                + _len(7, blob)
                + _len(206, _vint(1, 0) + _vint(3, 0) + _f32(4, 1e-8)))
    prior = _len(100, _s(1, "pb") + _s(2, "PriorBox") + _s(3, "n") + _s(3, "data") + _s(4, "p")
                 + _len(203, _f32(1, 30.0) + _f32(2, 60.0) + _f32(3, 2.0) + _vint(4, 1)
                        + _vint(5, 0) + _f32(6, 0.1) + _f32(6, 0.1) + _f32(6, 0.2) + _f32(6, 0.2)
                        + _vint(8, 300) + _vint(9, 200) + _f32(10, 8.0) + _f32(13, 0.5)))
    permute = _len(100, _s(1, "perm") + _s(2, "Permute") + _s(3, "n") + _s(4, "q")
                   + _len(202, _vint(1, 0) + _vint(1, 2) + _vint(1, 3) + _vint(1, 1)))
    det = _len(100, _s(1, "detection_out") + _s(2, "DetectionOutput")
               + _len(204, _vint(1, 21) + _vint(2, 1) + _vint(3, 0)
                      + _len(4, _f32(1, 0.45) + _vint(2, 400) + _f32(3, 1.0))
                      + _len(5, _s(1, "out/") + _s(3, "VOC") + _vint(6, 4952)
                             + _len(7, _f32(1, 1.0) + _vint(2, 1) + _vint(3, 300) + _vint(4, 300)
                                    + _vint(7, 1) + _vint(7, 3)))
                      + _vint(6, 2) + _vint(7, 200) + _vint(8, 0) + _f32(9, 0.01)))
    # training-side fork fields this schema does not name: annotated_data_param (200) with a
    # batch_sampler, multibox_loss_param (201), transform_param.resize_param (8) -- kept as
    # unknown fields, as protobuf does
    data = _len(100, _s(1, "data") + _s(2, "AnnotatedData") + _s(4, "data")
                + _len(100, _f32(1, 1.0) + _len(8, _f32(1, 1.0) + _vint(3, 300)))
                + _len(200, _len(1, _vint(5, 50)) + _s(2, "labelmap_voc.prototxt")))
    loss = _len(100, _s(1, "mbox_loss") + _s(2, "MultiBoxLoss")
                + _len(201, _vint(1, 1) + _vint(4, 21) + _f32(12, 3.0)))
    raw = _s(1, "VGG_VOC0712_SSD_300x300_train") + data + norm + prior + permute + det + loss
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(raw)

    net = read_caffemodel(path)
    layers = {layer.name: layer for layer in net.layer}
    n = layers["conv4_3_norm"].norm_param
    assert (n.across_spatial, n.channel_shared) == (False, False)
    assert n.eps == pytest.approx(1e-8)
    np.testing.assert_array_equal(caffemodel_blobs(net)["conv4_3_norm"][1][0], scale)
    p = layers["pb"].prior_box_param
    assert list(p.min_size) == [30.0] and list(p.max_size) == [60.0] and list(p.aspect_ratio) == [2]
    assert p.flip and not p.clip and list(p.variance) == pytest.approx([0.1, 0.1, 0.2, 0.2])
    assert (p.img_h, p.img_w, p.step, p.offset) == (300, 200, 8.0, 0.5)
    assert not p.HasField("img_size") and not p.HasField("step_h")
    assert list(layers["perm"].permute_param.order) == [0, 2, 3, 1]
    d = layers["detection_out"].detection_output_param
    assert (d.num_classes, d.share_location, d.background_label_id) == (21, True, 0)
    assert d.nms_param.nms_threshold == pytest.approx(0.45) and d.nms_param.top_k == 400
    assert d.code_type == pb.PriorBoxParameter.CENTER_SIZE and d.keep_top_k == 200
    assert not d.variance_encoded_in_target and d.confidence_threshold == pytest.approx(0.01)
    s = d.save_output_param
    assert (s.output_directory, s.output_format, s.num_test_image) == ("out/", "VOC", 4952)
    r = s.resize_param
    assert (r.resize_mode, r.height, r.width) == (pb.ResizeParameter.WARP, 300, 300)
    assert list(r.interp_mode) == [pb.ResizeParameter.LINEAR, pb.ResizeParameter.NEAREST]
    assert layers["mbox_loss"].type == "MultiBoxLoss"   # the unknown fork fields were skipped


def test_defaults_are_the_forks():
    d = pb.DetectionOutputParameter()
    assert d.share_location and d.background_label_id == 0 and d.keep_top_k == -1
    assert d.code_type == pb.PriorBoxParameter.CORNER and not d.variance_encoded_in_target
    assert not d.HasField("confidence_threshold")
    assert d.nms_param.nms_threshold == pytest.approx(0.3) and d.nms_param.eta == 1.0
    assert not d.nms_param.HasField("top_k")
    p = pb.PriorBoxParameter()
    assert p.flip and not p.clip and p.offset == 0.5
    n = pb.NormalizeParameter()
    assert n.across_spatial and n.channel_shared and n.eps == pytest.approx(1e-10)


SSD_HEAD = """
name: "ssd_head"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 4 } }
layer { name: "conv_norm" type: "Normalize" bottom: "conv" top: "conv_norm"
        norm_param { across_spatial: false scale_filler { type: "constant" value: 20 }
                     channel_shared: false } }
layer { name: "loc" type: "Convolution" bottom: "conv_norm" top: "loc"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "loc_perm" type: "Permute" bottom: "loc" top: "loc_perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "loc_flat" type: "Flatten" bottom: "loc_perm" top: "loc_flat"
        flatten_param { axis: 1 } }
layer { name: "conf" type: "Convolution" bottom: "conv_norm" top: "conf"
        convolution_param { num_output: 12 kernel_size: 3 pad: 1 } }
layer { name: "conf_perm" type: "Permute" bottom: "conf" top: "conf_perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "conf_flat" type: "Flatten" bottom: "conf_perm" top: "conf_flat"
        flatten_param { axis: 1 } }
layer { name: "prior" type: "PriorBox" bottom: "conv_norm" bottom: "data" top: "prior"
        prior_box_param { min_size: 8 max_size: 16 aspect_ratio: 2 flip: true clip: false
                          variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 4
                          offset: 0.5 } }
layer { name: "conf_reshape" type: "Reshape" bottom: "conf_flat" top: "conf_reshape"
        reshape_param { shape { dim: 0 dim: -1 dim: 3 } } }
layer { name: "conf_softmax" type: "Softmax" bottom: "conf_reshape" top: "conf_softmax"
        softmax_param { axis: 2 } }
layer { name: "conf_out" type: "Flatten" bottom: "conf_softmax" top: "conf_out" }
layer { name: "detection_out" type: "DetectionOutput" bottom: "loc_flat" bottom: "conf_out"
        bottom: "prior" top: "detection_out"
        include { phase: TEST }
        detection_output_param { num_classes: 3 share_location: true background_label_id: 0
          nms_param { nms_threshold: 0.45 top_k: 400 }
          save_output_param { label_map_file: "labelmap.prototxt" output_format: "VOC"
            resize_param { prob: 1 resize_mode: WARP height: 32 width: 32 interp_mode: LINEAR } }
          code_type: CENTER_SIZE keep_top_k: 200 confidence_threshold: 0.01 } }
"""


def test_ssd_deploy_prototxt_parses():
    net = read_net(SSD_HEAD)
    types = [layer.type for layer in net.layer]
    assert {"Normalize", "Permute", "PriorBox", "DetectionOutput"} <= set(types)
    d = net.layer[types.index("DetectionOutput")].detection_output_param
    assert d.code_type == pb.PriorBoxParameter.CENTER_SIZE
    assert d.save_output_param.resize_param.interp_mode[0] == pb.ResizeParameter.LINEAR


def test_misspelled_ssd_field_is_a_parse_error():
    with pytest.raises(ParseError, match="no field named \"min_sizes\""):
        read_net(SSD_HEAD.replace("min_size: 8", "min_sizes: 8"))


def test_ssd_deploy_graph_shapes():
    """netdef's shape rules (what `nbcaffe inspect` prints) for the SSD layers of SSD_HEAD."""
    from netdef.graph import build_graph
    g = build_graph(read_net(SSD_HEAD))
    shapes = {n.name: (n.top_shapes, n.param_shapes) for n in g.layers}
    assert shapes["conv_norm"] == ([(1, 4, 8, 8)], [(4,)])           # per-channel scale
    assert shapes["loc_perm"][0] == [(1, 8, 8, 16)]
    assert shapes["prior"][0] == [(1, 2, 8 * 8 * 4 * 4)]              # min, max, 2, 1/2
    assert shapes["detection_out"][0] == [(1, 1, 1, 7)]              # Caffe-SSD's placeholder
    shared = read_net(SSD_HEAD.replace("channel_shared: false", "channel_shared: true"))
    assert build_graph(shared).layer("conv_norm").param_shapes == [()]


def test_shared_normalize_scale_is_a_0_axis_blob(tmp_path):
    """The fork stores a channel-shared Normalize scale as a 0-axis blob (``Blob(vector<int>(0))``,
    which Blob::ToProto writes with no shape field): such a file loads, and Net.save writes the
    blob the same way (not as (1,); OpenCV reads it as a scalar too, tests/runner/test_ssd_opencv.py)."""
    from runner import Net
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 2 '
            'dim: 2 } } }\nlayer { name: "n" type: "Normalize" bottom: "x" top: "y" }')
    proto = tmp_path / "n.prototxt"
    proto.write_text(text)
    fork = _len(100, _s(1, "n") + _s(2, "Normalize")
                + _len(7, _len(5, np.float32(20).tobytes())))
    (tmp_path / "fork.caffemodel").write_bytes(fork)
    net = Net(str(proto), weights=str(tmp_path / "fork.caffemodel"))
    assert net.params["n"][0].shape == () and float(net.params["n"][0].data) == 20.0
    net.save(tmp_path / "ours.caffemodel")
    blob = [lp for lp in read_caffemodel(tmp_path / "ours.caffemodel").layer if lp.name == "n"][0].blobs[0]
    assert not blob.HasField("shape") and list(blob.data) == [20.0]
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(Net(str(proto), weights=str(tmp_path / "ours.caffemodel")).forward(x=x)["y"],
                               net.forward(x=x)["y"])
