"""build_graph: NetState filtering, split insertion, in-place, param sharing, loss weights and
backward flags, against Caffe's Net::Init behaviour."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError, ShapeError
from netdef.graph import build_graph, state_meets_rule
from netdef.prototxt import read_net
from proto import caffe_pb2 as pb

INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


def g_of(body: str, **kw):
    return build_graph(read_net(INPUT + body), **kw)


def test_state_rules():
    st = pb.NetState(phase=pb.TRAIN, level=2, stage=["a", "b"])
    assert state_meets_rule(st, pb.NetStateRule(phase=pb.TRAIN))
    assert not state_meets_rule(st, pb.NetStateRule(phase=pb.TEST))
    assert state_meets_rule(st, pb.NetStateRule(min_level=2, max_level=2))
    assert not state_meets_rule(st, pb.NetStateRule(min_level=3))
    assert not state_meets_rule(st, pb.NetStateRule(max_level=1))
    assert state_meets_rule(st, pb.NetStateRule(stage=["a", "b"]))
    assert not state_meets_rule(st, pb.NetStateRule(stage=["a", "c"]))
    assert not state_meets_rule(st, pb.NetStateRule(not_stage=["b"]))
    assert state_meets_rule(st, pb.NetStateRule(not_stage=["c"]))


def test_filter_include_exclude():
    body = ('layer { name: "tr" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }\n'
            'layer { name: "te" type: "Sigmoid" bottom: "x" top: "y" include { phase: TEST } }\n'
            'layer { name: "deep" type: "TanH" bottom: "y" top: "z" include { min_level: 1 } }\n'
            'layer { name: "nos" type: "AbsVal" bottom: "y" top: "w" exclude { stage: "s" } }\n')
    assert [n.name for n in g_of(body, phase="TRAIN").layers] == ["in", "tr", "nos"]
    assert [n.name for n in g_of(body, phase="TEST", level=1).layers] == [
        "in", "te", "y_te_0_split", "deep", "nos"]
    assert [n.name for n in g_of(body, phase="TEST", stages=["s"]).layers] == ["in", "te"]
    with pytest.raises(NetDefinitionError, match="either include rules or exclude"):
        g_of('layer { name: "b" type: "ReLU" bottom: "x" top: "x" include { phase: TRAIN } '
             'exclude { phase: TEST } }')


def test_state_defaults_come_from_the_net():
    net = read_net(INPUT + 'state { phase: TRAIN stage: "s" }\n'
                   'layer { name: "a" type: "ReLU" bottom: "x" top: "x" include { stage: "s" '
                   'phase: TRAIN } }')
    g = build_graph(net)
    assert g.phase == pb.TRAIN and g.stages == ("s",) and [n.name for n in g.layers] == ["in", "a"]
    assert [n.name for n in build_graph(net, "TEST").layers] == ["in"]


def test_split_naming_and_consumers():
    g = g_of('layer { name: "a" type: "ReLU" bottom: "x" top: "a" }\n'
             'layer { name: "b" type: "Sigmoid" bottom: "x" top: "b" }\n'
             'layer { name: "c" type: "Eltwise" bottom: "a" bottom: "b" bottom: "x" top: "c" }\n')
    split = g.layers[1]
    assert (split.name, split.type, split.bottoms) == ("x_in_0_split", "Split", ["x"])
    assert split.tops == [f"x_in_0_split_{k}" for k in range(3)]
    assert g.layer("a").bottoms == ["x_in_0_split_0"] and g.layer("b").bottoms == ["x_in_0_split_1"]
    assert g.layer("c").bottoms == ["a", "b", "x_in_0_split_2"]
    assert g.blob_shapes["x_in_0_split_2"] == (2, 3)
    assert g.outputs == ["c"] and g.inputs == ["x"]


def test_split_carries_loss_weight():
    g = g_of('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "f" loss_weight: 2 '
             'inner_product_param { num_output: 4 } }\n'
             'layer { name: "r" type: "ReLU" bottom: "f" top: "g" }\n')
    split = g.layer("f_ip_0_split")
    assert split.tops == ["f_ip_0_split_0", "f_ip_0_split_1"]
    assert split.loss_weights == [2.0, 0.0]
    assert g.layer("ip").loss_weights == [0.0]        # moved onto the split
    assert g.layer("r").bottoms == ["f_ip_0_split_1"]  # split top 0 is the loss
    assert "f_ip_0_split_0" in g.outputs


def test_in_place_and_multiple_sources():
    g = g_of('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    assert g.layer("r").in_place and g.outputs == ["x"]
    with pytest.raises(NetDefinitionError, match="'x' produced by multiple sources"):
        g_of('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
             'layer { name: "s" type: "ReLU" bottom: "y" top: "x" }')
    with pytest.raises(NetDefinitionError, match="'y' produced by multiple sources"):
        g_of('layer { name: "s" type: "Slice" bottom: "x" top: "y" top: "y" }')
    with pytest.raises(NetDefinitionError, match=r"layer 's' \(ReLU\): unknown bottom blob 'q'"):
        g_of('layer { name: "s" type: "ReLU" bottom: "q" top: "y" }')


def test_param_sharing_strict_and_permissive():
    g = g_of('layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } '
             'inner_product_param { num_output: 4 bias_term: false } }\n'
             'layer { name: "b" type: "InnerProduct" bottom: "x" top: "b" param { name: "w" '
             'lr_mult: 3 } inner_product_param { num_output: 4 bias_term: false } }\n')
    a, b = g.layer("a").param_specs[0], g.layer("b").param_specs[0]
    assert a.owner is None and b.owner == ("a", 0) and b.shared
    assert a.lr_mult == b.lr_mult == 3  # the owner had no explicit lr_mult: the sharer's wins
    assert g.num_params == 12
    strict = ('layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } '
              'inner_product_param { num_output: 6 bias_term: false } }\n'
              'layer { name: "c" type: "InnerProduct" bottom: "x" top: "c" param { name: "w" %s } '
              'inner_product_param { num_output: 3 axis: 0 bias_term: false } }\n')
    with pytest.raises(ShapeError, match=r"cannot share param 'w' owned by layer 'a'.*\(6, 3\).*"
                                         r"\(3, 6\)"):
        g_of(strict % "")
    g = g_of(strict % "share_mode: PERMISSIVE")  # (6, 3) and (3, 6): same count
    assert g.layer("c").param_specs[0].owner == ("a", 0)
    with pytest.raises(NetDefinitionError, match="mismatched lr_mult"):
        g_of('layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" '
             'lr_mult: 1 } inner_product_param { num_output: 4 bias_term: false } }\n'
             'layer { name: "b" type: "InnerProduct" bottom: "x" top: "b" param { name: "w" '
             'lr_mult: 2 } inner_product_param { num_output: 4 bias_term: false } }\n')
    with pytest.raises(NetDefinitionError, match="too many params"):
        g_of('layer { name: "a" type: "ReLU" bottom: "x" top: "a" param { lr_mult: 1 } }')


def test_loss_weights_and_backward():
    body = ('layer { name: "lab" type: "Input" top: "y" input_param { shape { dim: 2 } } }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "f" '
            'inner_product_param { num_output: 5 } }\n'
            'layer { name: "frozen" type: "InnerProduct" bottom: "x" top: "h" param { lr_mult: 0 } '
            'param { lr_mult: 0 } inner_product_param { num_output: 5 } }\n'
            'layer { name: "acc" type: "Accuracy" bottom: "f" bottom: "y" top: "acc" }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "f" bottom: "y" top: "loss" }\n'
            'layer { name: "aux" type: "EuclideanLoss" bottom: "h" bottom: "f" top: "aux" '
            'loss_weight: 0.5 propagate_down: true propagate_down: false }\n')
    g = g_of(body)
    assert g.layer("loss").loss_weights == [1.0] and g.layer("acc").loss_weights == [0.0]
    assert g.layer("aux").loss_weights == [0.5]
    assert g.layer("ip").need_backward and not g.layer("acc").need_backward
    assert g.layer("loss").propagate_down == [True, False]
    assert g.layer("aux").propagate_down == [True, False]  # explicit propagate_down wins
    assert not g.layer("frozen").need_backward
    assert not g.layer("in").need_backward and g.layer("ip").propagate_down == [False]
    assert g.blob_need_backward["f"] and not g.blob_need_backward["h"]
    forced = build_graph(read_net(INPUT + "force_backward: true\n" + body))
    assert forced.layer("ip").propagate_down == [True]
    assert forced.layer("loss").propagate_down == [True, False]  # labels never (AllowForceBackward)
    with pytest.raises(NetDefinitionError, match="loss_weight must be unspecified or specified "
                                                 "once per top"):
        g_of('layer { name: "r" type: "ReLU" bottom: "x" top: "r" loss_weight: 1 loss_weight: 2 }')
    with pytest.raises(NetDefinitionError, match="propagate_down"):
        g_of('layer { name: "r" type: "ReLU" bottom: "x" top: "r" propagate_down: 1 '
             'propagate_down: 0 }')


def test_input_shapes_for_data_layers():
    net = read_net('layer { name: "d" type: "Data" top: "data" top: "label" data_param { '
                   'source: "nowhere_lmdb" batch_size: 8 backend: LMDB } }\n'
                   'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                   'inner_product_param { num_output: 2 } }')
    with pytest.raises(ShapeError, match=r"layer 'd' \(Data\).*'data'.*'nowhere_lmdb'"):
        build_graph(net)
    g = build_graph(net, input_shapes={"data": (8, 1, 4, 4)})
    assert g.blob_shapes == {"data": (8, 1, 4, 4), "label": (8,), "ip": (8, 2)}
    with pytest.raises(NetDefinitionError, match="input_shapes names 'nope'"):
        build_graph(net, input_shapes={"data": (8, 1, 4, 4), "nope": (1,)})
    g = build_graph(read_net(INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }'),
                    input_shapes={"x": (5, 3)})  # override an Input layer's shape
    assert g.blob_shapes["x"] == (5, 3)


def test_legacy_layers_rejected_by_build_graph():
    net = pb.NetParameter()
    net.layers.add(name="a")
    with pytest.raises(NetDefinitionError, match="read_net"):
        build_graph(net)


@st.composite
def _random_dag(draw):
    """Random nets of Input, ReLU (sometimes in place), Eltwise and loss-weighted tops."""
    lines = [INPUT.strip()]
    blobs = ["x"]
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["relu", "inplace", "eltwise"]))
        if kind == "eltwise" and len(blobs) >= 2:
            bs = draw(st.lists(st.sampled_from(blobs), min_size=2, max_size=3))
            bottoms = " ".join(f'bottom: "{b}"' for b in bs)
            lines.append(f'layer {{ name: "e{i}" type: "Eltwise" {bottoms} top: "e{i}" }}')
            blobs.append(f"e{i}")
        elif kind == "inplace":
            b = draw(st.sampled_from(blobs))
            lines.append(f'layer {{ name: "p{i}" type: "ReLU" bottom: "{b}" top: "{b}" }}')
        else:
            b = draw(st.sampled_from(blobs))
            lw = draw(st.sampled_from(["", "loss_weight: 1", "loss_weight: 0"]))
            lines.append(f'layer {{ name: "r{i}" type: "ReLU" bottom: "{b}" top: "r{i}" {lw} }}')
            blobs.append(f"r{i}")
    return "\n".join(lines)


@given(text=_random_dag())
def test_splits_preserve_dataflow(text):
    """After split insertion every blob version feeds at most one reader (a loss weight counts as
    one), and every layer still reads, through splits, the producer it read before."""
    net = read_net(text)
    try:
        g = build_graph(net)
    except NetDefinitionError as e:
        # Caffe's rule too: an in-place layer reading a blob that another layer also reads gets a
        # split top as bottom, so its top re-declares the blob
        assert "produced by multiple sources" in str(e)
        return
    expect, last = {}, {}  # the original net's dataflow: layer -> producers of its bottoms
    for lp in net.layer:
        expect[lp.name] = [last[b] for b in lp.bottom]
        for t in lp.top:
            last[t] = lp.name
    producer = {}          # blob -> original producing layer (following splits), in order
    for node in g.layers:
        if node.type == "Split":
            for t in node.tops:
                producer[t] = producer[node.bottoms[0]]
            continue
        assert [producer[b] for b in node.bottoms] == expect[node.name], node.name
        for t in node.tops:
            producer[t] = node.name
    reads: dict[tuple[str, int], int] = {}
    version: dict[str, int] = {}
    for node in g.layers:
        for b in node.bottoms:
            key = (b, version.get(b, 0))
            reads[key] = reads.get(key, 0) + 1
        for t, w in zip(node.tops, node.loss_weights):
            version[t] = version.get(t, -1) + 1
            if w and node.type != "Split" and node.param.loss_weight:
                reads[(t, version[t])] = reads.get((t, version[t]), 0) + 1
    assert all(n <= 1 for n in reads.values()), reads


def test_batchnorm_statistics_are_never_learned():
    g = g_of('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }')
    assert [p.lr_mult for p in g.layer("bn").param_specs] == [0.0, 0.0, 0.0]
    assert g.layer("bn").param_shapes == [(3,), (3,), (1,)]
    with pytest.raises(NetDefinitionError, match="cannot configure batch normalization statistics"):
        g_of('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 1 } }')


def test_layer_shapes_hook_answers_first_and_python_layers_need_one():
    """build_graph asks ``layer_shapes`` before Caffe's rules (runner sets Python layers up this
    way); without a hook a Python layer's shapes are a clear ShapeError."""
    from netdef.shapes import LayerShapes
    net = read_net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
                   'layer { name: "py" type: "Python" bottom: "x" top: "y" '
                   'python_param { module: "m" layer: "L" } }\n'
                   'layer { name: "relu" type: "ReLU" bottom: "y" top: "z" }')
    asked = []

    def hook(lp, bottom_shapes):
        asked.append((lp.name, list(bottom_shapes)))
        return LayerShapes([(2, 5)], [(5,)]) if lp.type == "Python" else None

    g = build_graph(net, layer_shapes=hook)
    assert asked == [("in", []), ("py", [(2, 3)]), ("relu", [(2, 5)])]
    assert g.blob_shapes == {"x": (2, 3), "y": (2, 5), "z": (2, 5)}
    assert g.layer("py").param_shapes == [(5,)] and g.num_params == 5
    with pytest.raises(ShapeError, match=r"layer 'py' \(Python\).*m\.L.*running its setup"):
        build_graph(net)
