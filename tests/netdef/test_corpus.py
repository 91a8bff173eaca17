"""Every file of ../shared/caffe-models loads, in each phase it declares; deploy nets' shapes equal
OpenCV's; Caffe-trained LeNet weights load into the LeNet graph by name."""
from __future__ import annotations

import numpy as np
import pytest

from netdef.graph import build_graph
from netdef.prototxt import read_net, read_solver, solver_nets
from netdef.weights import copy_trained_layers, read_caffemodel, write_caffemodel
from proto import caffe_pb2 as pb
from tests.netdef.corpus import DEPLOY_NETS, aliases, declared_states, input_shapes_for


def _files(models, solvers: bool):
    return sorted(p for p in models.glob("*.prototxt") if ("solver" in p.name) == solvers)


def test_every_net_loads_in_each_declared_phase(caffe_models):
    nets = _files(caffe_models, solvers=False)
    assert len(nets) == 18
    for path in nets:
        net = read_net(path)
        assert len(net.layer) and not len(net.layers), path.name
        for phase, stages in declared_states(net):
            g = build_graph(net, phase, stages, 0, input_shapes_for(net, phase, stages))
            assert g.layers and g.outputs, (path.name, phase, stages)
            for node in g.layers:
                assert len(node.top_shapes) == len(node.tops)
                for t, s in zip(node.tops, node.top_shapes):
                    assert g.blob_shapes[t] == s and all(d > 0 for d in s), (path.name, node.name)


def test_every_solver_loads_with_its_nets(caffe_models):
    al = aliases(caffe_models)
    solvers = _files(caffe_models, solvers=True)
    assert len(solvers) == 19
    for path in solvers:
        solver = read_solver(path)
        assert solver.type in ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
        nets = solver_nets(solver, str(path), al)
        for net in [nets.train] + nets.tests:
            phase = pb.Phase.Name(net.state.phase)
            stages = tuple(net.state.stage)
            g = build_graph(net, input_shapes=input_shapes_for(net, phase, stages))
            assert g.phase == net.state.phase and g.stages == stages
            assert any(n.is_loss for n in g.layers), (path.name, phase)
        assert len(nets.tests) == len(solver.test_iter)


def test_consolidated_solver_inline_v1_net_and_stages(caffe_models):
    path = caffe_models / "lenet_consolidated_solver.prototxt"
    nets = solver_nets(read_solver(path), str(path))
    types = {lp.name: lp.type for lp in nets.train.layer}
    assert types["conv1"] == "Convolution" and types["loss"] == "SoftmaxWithLoss"
    conv1 = next(lp for lp in nets.train.layer if lp.name == "conv1")
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    train = build_graph(nets.train, input_shapes={"data": (64, 1, 28, 28)})
    assert [n.name for n in train.layers if n.type == "Data"] == ["mnist"]
    assert train.layer("mnist").param.data_param.source == "examples/mnist/mnist_train_lmdb"
    assert [tuple(t.state.stage) for t in nets.tests] == [("test-on-test-set",),
                                                           ("test-on-train-set",)]
    sources = []
    for net in nets.tests:
        g = build_graph(net, input_shapes={"data": (100, 1, 28, 28)})
        data = [n for n in g.layers if n.type == "Data"]
        assert len(data) == 1
        sources.append(data[0].param.data_param.source)
        assert data[0].param.transform_param.scale == pytest.approx(0.00390625)
    assert sources == ["examples/mnist/mnist_test_lmdb", "examples/mnist/mnist_train_lmdb"]


def test_lenet_train_graph_matches_caffe(caffe_models):
    net = read_net(caffe_models / "lenet_train_test.prototxt")
    g = build_graph(net, "TEST", input_shapes={"data": (100, 1, 28, 28)})
    assert [n.name for n in g.layers] == [
        "mnist", "label_mnist_1_split", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
        "ip2_ip2_0_split", "accuracy", "loss"]
    assert g.layer("loss").bottoms == ["ip2_ip2_0_split_1", "label_mnist_1_split_1"]
    assert g.blob_shapes["pool2"] == (100, 50, 4, 4) and g.blob_shapes["ip1"] == (100, 500)
    assert g.layer("relu1").in_place
    assert g.layer("loss").loss_weights == [1.0] and g.layer("accuracy").loss_weights == [0.0]
    assert not g.layer("accuracy").need_backward and g.layer("loss").need_backward
    assert g.layer("loss").propagate_down == [True, False]
    assert g.layer("conv1").propagate_down == [False] and g.layer("conv1").need_backward
    assert g.num_params == 431080
    assert g.layer("conv1").param_specs[1].lr_mult == 2.0


def _random_weights(g, rng):
    """Random-looking weights for every parameter blob (a random vector tiled: shapes are what
    is tested, and drawing 60M numbers for AlexNet would dominate the test time)."""
    base = rng.random(10007, dtype=np.float32) - 0.5
    return {n.name: (n.type, [np.resize(base, s) for s in n.param_shapes])
            for n in g.layers if n.param_shapes}


@pytest.mark.parametrize("name", DEPLOY_NETS)
def test_deploy_shapes_equal_opencv(caffe_models, tmp_path, name):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed")
    proto = caffe_models / f"{name}.prototxt"
    net = read_net(proto)
    inp = next(lp for lp in net.layer if lp.type == "Input")
    shape = (1,) + tuple(inp.input_param.shape[0].dim)[1:]
    g = build_graph(net, "TEST", input_shapes={inp.top[0]: shape})
    model = tmp_path / "random.caffemodel"
    rng = np.random.default_rng(0)
    write_caffemodel(model, _random_weights(g, rng), net)
    cvnet = cv2.dnn.readNetFromCaffe(str(proto), str(model))
    model.unlink()  # up to 240 MB; pytest keeps old tmp dirs
    cvnet.setInput(rng.random(shape, dtype=np.float32))
    names = list(cvnet.getLayerNames())
    outs = cvnet.forward(names)
    compared = 0
    for layer_name, out in zip(names, outs):
        node = g.layer(layer_name)  # every layer OpenCV exposes is one of ours
        assert tuple(out.shape) == node.top_shapes[0], (layer_name, node.type)
        compared += 1
    assert compared >= len([n for n in g.layers if n.type not in ("Input", "Split")]) // 2


def test_caffe_trained_lenet_weights_load(shared_dir, caffe_models):
    files = sorted((shared_dir / "data" / "lenet-caffe").glob("*.caffemodel"))
    if len(files) != 3:
        pytest.skip("Caffe-trained LeNet weights not present")
    g = build_graph(read_net(caffe_models / "lenet_train_test.prototxt"), "TEST",
                    input_shapes={"data": (100, 1, 28, 28)})
    kinds = []
    for f in files:
        raw = pb.NetParameter.FromString(f.read_bytes())
        kinds.append("V1" if len(raw.layers) else "V2")
        net = read_caffemodel(f)
        assert not len(net.layers) and len(net.layer) >= 9
        w = copy_trained_layers(g, f)
        assert sorted(w) == ["conv1", "conv2", "ip1", "ip2"]
        for name, arrays in w.items():
            assert [a.shape for a in arrays] == g.layer(name).param_shapes
            assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays)
        assert float(np.abs(w["conv1"][0]).max()) > 0.05  # trained, not zeros
    assert sorted(kinds) == ["V1", "V1", "V2"]
