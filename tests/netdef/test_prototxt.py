"""Parsing prototxt (errors with file:line:col) and upgrading legacy nets and solvers."""
from __future__ import annotations

import pytest

from netdef.errors import NetDefinitionError, ParseError, SolverError
from netdef.prototxt import read_net, read_solver, resolve_net_path, solver_nets
from netdef.upgrade import upgrade_net
from proto import caffe_pb2 as pb

LENET_V2 = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


def test_read_net_from_text_file_and_path(tmp_path):
    net = read_net(LENET_V2)
    assert [lp.name for lp in net.layer] == ["data", "conv"]
    f = tmp_path / "tiny.prototxt"
    f.write_text(LENET_V2)
    assert read_net(f) == net and read_net(str(f)) == net


@pytest.mark.parametrize("text, line, col, expect", [
    ('name: "x"\nlayer { name: "a" type: "ReLU" botom: "x" }\n', 2, 31, 'no field named "botom"'),
    ('layer {\n  name: "a"\n  convolution_param { num_output: 4 \n}\n', 4, 1, 'Expected "}"'),
    ('layer { name: "a" }\nlayer { name: "b" type: ReLU }', 2, 25, "Expected string"),
    ('layer { name: "a" include { phase: TRAINING } }', 1, 36, "TRAINING"),
])
def test_syntax_errors_report_file_line_col(tmp_path, text, line, col, expect):
    f = tmp_path / "bad.prototxt"
    f.write_text(text)
    with pytest.raises(ParseError) as ei:
        read_net(f)
    e = ei.value
    assert (e.path, e.line) == (str(f), line)
    assert e.column is not None and abs(e.column - col) <= 2, e
    assert str(e).startswith(f"{f}:{line}:{e.column}: ") and expect in str(e)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ParseError, match="no such file"):
        read_net(tmp_path / "absent.prototxt")
    b = tmp_path / "weights.prototxt"
    b.write_bytes(b"\n\x05LeNet\xff\xfe\x00\x01")
    with pytest.raises(ParseError, match="binary"):
        read_net(b)


V1_NET = """
name: "v1"
layers { name: "mnist" type: DATA top: "data" top: "label"
  data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m.binaryproto" crop_size: 3
               mirror: true }
  include: { phase: TRAIN } }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 param: "w" param: "b"
  blob_share_mode: PERMISSIVE
  convolution_param { num_output: 2 kernel_size: 3 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" bottom: "label" top: "loss"
  loss_weight: 2 exclude { phase: TEST } }
"""


def test_v1_upgrade():
    net = read_net(V1_NET)
    assert not len(net.layers)
    data, conv, loss = net.layer
    assert (data.type, conv.type, loss.type) == ("Data", "Convolution", "SoftmaxWithLoss")
    t = data.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "m.binaryproto", 3, True)
    assert not data.data_param.HasField("scale") and not data.data_param.HasField("crop_size")
    assert data.data_param.source == "db" and data.include[0].phase == pb.TRAIN
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [("w", 1, 1), ("b", 2, 0)]
    assert conv.param[0].share_mode == pb.ParamSpec.PERMISSIVE
    assert conv.convolution_param.num_output == 2
    assert list(loss.loss_weight) == [2] and loss.exclude[0].phase == pb.TEST


def test_every_v1_type_name():
    expect = {"CONVOLUTION": "Convolution", "SOFTMAX_LOSS": "SoftmaxWithLoss", "RELU": "ReLU",
              "INNER_PRODUCT": "InnerProduct", "TANH": "TanH", "BNLL": "BNLL", "ABSVAL": "AbsVal",
              "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "HDF5_DATA": "HDF5Data",
              "IMAGE_DATA": "ImageData", "DUMMY_DATA": "DummyData", "LRN": "LRN", "MVN": "MVN"}
    for enum, name in expect.items():
        net = read_net(f'layers {{ name: "x" type: {enum} }}')
        assert net.layer[0].type == name


V0_NET = """
name: "v0"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 biasterm: false
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 } bottom: "norm1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""


def test_v0_upgrade_with_padding_layer_and_input_dims():
    net = read_net(V0_NET)
    assert [lp.type for lp in net.layer] == ["Input", "Convolution", "Pooling", "LRN",
                                             "InnerProduct", "Softmax"]
    inp, conv, pool, lrn, fc, _ = net.layer
    assert inp.name == "input" and list(inp.top) == ["data"]
    assert list(inp.input_param.shape[0].dim) == [1, 3, 9, 9]
    assert list(conv.bottom) == ["data"]  # the padding layer is folded in
    c = conv.convolution_param
    assert (list(c.pad), list(c.kernel_size), list(c.stride), c.bias_term) == ([2], [3], [2], False)
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert pool.pooling_param.pool == pb.PoolingParameter.AVE
    assert (lrn.lrn_param.local_size, lrn.lrn_param.alpha) == (3, 0.5)
    assert fc.inner_product_param.num_output == 10
    assert not len(net.input) and not len(net.input_dim)


def test_input_shape_upgrade_and_legacy_weights_input():
    net = read_net('input: "a" input_shape { dim: 1 dim: 2 } input: "b" input_shape { dim: 3 }\n'
                   'layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "c" }')
    assert net.layer[0].type == "Input" and list(net.layer[0].top) == ["a", "b"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [3]]
    legacy = upgrade_net(pb.NetParameter(input=["data"], layer=[pb.LayerParameter(name="x")]))
    assert [lp.name for lp in legacy.layer] == ["x"] and not len(legacy.input)
    with pytest.raises(NetDefinitionError, match="input_dim"):
        read_net('input: "a" input_dim: 1 input_dim: 2')


def test_mixing_layer_and_layers_is_an_error():
    with pytest.raises(NetDefinitionError, match="mixes 'layer'.*'layers'"):
        read_net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')


def test_batchnorm_upgrade_zeroes_lr():
    net = read_net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 name: "m" } '
                   'param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 1 } }\n'
                   'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } }')
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3
    assert net.layer[0].param[0].name == "m"
    assert net.layer[1].param[0].lr_mult == 1  # only the old 3-param form is upgraded


def test_solver_type_upgrade(tmp_path):
    s = read_solver('solver_type: ADAM base_lr: 0.1 net: "x.prototxt"')
    assert s.type == "Adam" and not s.HasField("solver_type")
    assert read_solver('solver_type: NESTEROV').type == "Nesterov"
    with pytest.raises(SolverError, match="solver_type"):
        read_solver('solver_type: SGD type: "Adam"')


def test_solver_net_resolution(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "train.prototxt").write_text(LENET_V2)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "examples/mine/nets/train.prototxt"\ntest_iter: 1 test_interval: 5\n'
                      'train_state { stage: "s" level: 2 }')
    with pytest.raises(SolverError, match="not found.*tried"):
        solver_nets(read_solver(solver), str(solver))
    solver.write_text('net: "nets/train.prototxt"\ntest_iter: 1 test_interval: 5\n'
                      'train_state { stage: "s" level: 2 }')
    nets = solver_nets(read_solver(solver), str(solver))
    assert nets.train.state.phase == pb.TRAIN and list(nets.train.state.stage) == ["s"]
    assert nets.train.state.level == 2
    assert len(nets.tests) == 1 and nets.tests[0].state.phase == pb.TEST
    (tmp_path / "train.prototxt").write_text(LENET_V2)
    assert resolve_net_path("far/away/train.prototxt", str(solver)) == str(tmp_path /
                                                                          "train.prototxt")


def test_solver_net_counts():
    with pytest.raises(SolverError, match="train net"):
        solver_nets(read_solver("base_lr: 1"))
    with pytest.raises(SolverError, match="more than once"):
        solver_nets(read_solver(f"net_param {{ {LENET_V2} }} train_net_param {{ {LENET_V2} }}"))
    with pytest.raises(SolverError, match="test_iter"):
        solver_nets(read_solver(f"train_net_param {{ {LENET_V2} }} "
                                f"test_net_param {{ {LENET_V2} }}"))
    with pytest.raises(SolverError, match="test_state"):
        solver_nets(read_solver(f"net_param {{ {LENET_V2} }} test_iter: 1 test_interval: 1 "
                                "test_state {} test_state {}"))
    nets = solver_nets(read_solver(
        f"train_net_param {{ {LENET_V2} }} test_net_param {{ {LENET_V2} state {{ level: 3 }} }} "
        "test_iter: 1 test_interval: 1 test_state { stage: 'x' }"))
    t = nets.tests[0].state
    assert (t.phase, t.level, list(t.stage)) == (pb.TEST, 3, ["x"])


def test_net_and_solver_mixed_up_get_a_hint(tmp_path):
    s = tmp_path / "solver.prototxt"
    s.write_text('net: "x.prototxt"\nbase_lr: 0.1\n')
    with pytest.raises(ParseError, match=r"solver.prototxt:1:1: .*\"net\".*is this a solver"):
        read_net(s)
    with pytest.raises(ParseError, match="is this a net prototxt"):
        read_solver(LENET_V2)


def test_v1_upgrade_copies_every_param_message():
    """Every *_param of V1LayerParameter lands in the same-named LayerParameter field."""
    from google.protobuf.descriptor import FieldDescriptor

    v1 = pb.V1LayerParameter(name="all", type=pb.V1LayerParameter.RELU)
    names = [f.name for f in v1.DESCRIPTOR.fields
             if f.name.endswith("_param") and f.type == FieldDescriptor.TYPE_MESSAGE]
    assert len(names) == 30
    for name in names:
        msg = getattr(v1, name)
        f = msg.DESCRIPTOR.fields[0]
        if f.type == f.TYPE_MESSAGE:
            if f.is_repeated:
                getattr(msg, f.name).add()
            else:
                getattr(msg, f.name).SetInParent()
            continue
        value = {f.TYPE_FLOAT: 0.25, f.TYPE_STRING: "s", f.TYPE_BOOL: True,
                 f.TYPE_ENUM: 1}.get(f.type, 7)
        if f.is_repeated:
            getattr(msg, f.name).append(value)
        else:
            setattr(msg, f.name, value)
    net = pb.NetParameter()
    net.layers.add().CopyFrom(v1)
    up = upgrade_net(net).layer[0]
    for name in names:
        assert up.HasField(name), name
        assert getattr(up, name) == getattr(v1, name), name
