"""``nbcaffe export-onnx`` end to end (Caffe's flag spellings, --batch, --opset, notes), the
opsets the exporter writes, and every refusal: one line, rc 1, naming the layer and why, and no
file left behind."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

from netdef.errors import ExportError  # noqa: E402
from netdef.graph import build_graph  # noqa: E402
from netdef.prototxt import read_net  # noqa: E402
from runner import Net  # noqa: E402
from runner.cli import main  # noqa: E402
from runner.onnx_export import build_model, mapped_types, opset_range  # noqa: E402
from tests.onnx.nets import layer, net_text  # noqa: E402
from tests.onnx.oracle import compare_net, randomize, rel_err, run  # noqa: E402


def _write(tmp_path, text: str, name: str = "net.prototxt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _weights(tmp_path, text: str) -> str:
    net = Net(read_net(text))
    randomize(net, np.random.default_rng(0))
    path = tmp_path / "w.caffemodel"
    net.save(path)
    return str(path)


SMALL = net_text({"data": (4, 3, 8, 8)},
                 layer("conv", "Convolution", "data", "conv",
                       "convolution_param { num_output: 4 kernel_size: 3 }")
                 + layer("relu", "ReLU", "conv", "conv")
                 + layer("pool", "Pooling", "conv", "pool",
                         "pooling_param { pool: AVE kernel_size: 3 stride: 2 }")
                 + layer("ip", "InnerProduct", "pool", "ip", "inner_product_param { num_output: 5 }")
                 + layer("prob", "Softmax", "ip", "prob"))


def test_export_onnx_cli(tmp_path, capsys):
    model = _write(tmp_path, SMALL)
    weights = _weights(tmp_path, SMALL)
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", model, "-weights", weights, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"wrote {out}: ONNX opset 19; inputs data (batch, 3, 8, 8); outputs prob (batch, 5)")
    assert not os.path.exists(str(out) + ".tmp")
    net = Net(model, weights=weights)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert rel_err(run(str(out), {"data": x})["prob"], net.forward(data=x)["prob"]) <= 1e-5

    fixed = tmp_path / "fixed.onnx"
    assert main(["export-onnx", model, f"--weights={weights}", "-o", str(fixed), "--batch", "2",
                 "--opset", str(opset_range().stop - 1)]) == 0
    m = onnx.load(str(fixed))
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 8, 8]
    assert m.opset_import[0].version == opset_range().stop - 1
    x2 = x[:2]
    assert rel_err(run(m, {"data": x2})["prob"], net.forward(data=x2)["prob"]) <= 1e-5
    capsys.readouterr()
    assert main(["export-onnx", model, "-o", str(tmp_path / "init.onnx")]) == 0
    assert "note: no -weights given: the parameters are the fillers' initial values" in \
        capsys.readouterr().err


def test_export_test_phase_of_train_test_net(caffe_models, shared_dir, tmp_path, capsys):
    weights = shared_dir / "data" / "lenet-caffe" / "everpeace_lenet_iter_10000.caffemodel"
    if not weights.exists():
        pytest.skip(f"{weights} not present")
    out = tmp_path / "lenet.onnx"
    assert main(["export-onnx", str(caffe_models / "lenet_train_test.prototxt"), "-weights",
                 str(weights), "-o", str(out), "-phase", "TEST", "--input-shape",
                 "data=100,1,28,28"]) == 0
    cap = capsys.readouterr()
    assert "outputs ip2 (batch, 10)" in cap.out
    assert "nbcaffe: note: dropped layer 'loss' (SoftmaxWithLoss)" in cap.err
    assert "nbcaffe: note: dropped layer 'accuracy' (Accuracy)" in cap.err
    # the same weights through the deploy net: ip2 is the deploy net's ip2
    deploy = Net(str(caffe_models / "lenet_deploy.prototxt"), weights=str(weights))
    x = np.random.default_rng(2).random((7, 1, 28, 28), dtype=np.float32)
    deploy.forward(data=x)
    assert rel_err(run(str(out), {"data": x})["ip2"], deploy.blobs["ip2"].data) <= 1e-5


def test_export_at_every_opset(tmp_path):
    body = (layer("bn", "BatchNorm", "data", "bn") + layer("lrn", "LRN", "bn", "lrn",
                                                          "lrn_param { norm_region: WITHIN_CHANNEL }")
            + layer("pool", "Pooling", "lrn", "pool", "pooling_param { pool: AVE kernel_size: 3 stride: 2 }")
            + layer("am", "ArgMax", "pool", "am", "argmax_param { axis: 1 top_k: 2 }")
            + layer("rs", "Reshape", "pool", "rs", "reshape_param { shape { dim: 0 dim: -1 } }")
            + layer("up", "Deconvolution", "lrn", "up",
                    "convolution_param { num_output: 2 kernel_size: 2 stride: 2 }"))
    net = Net(read_net(net_text({"data": (2, 3, 6, 6)}, body)))
    randomize(net, np.random.default_rng(3))
    for opset in (opset_range().start, opset_range().stop - 1):
        model = compare_net(net, tmp_path, opset=opset, batches=(1, 2))
        assert model.opset_import[0].version == opset


def _refused(tmp_path, capsys, text: str, *flags: str) -> str:
    model = _write(tmp_path, text)
    out = tmp_path / "refused.onnx"
    rc = main(["export-onnx", model, "-o", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 1, err
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")
    assert err.startswith("nbcaffe: error: ") and "\n" not in err, err
    return err


def test_python_and_detection_output_layers_are_refused(tmp_path, capsys):
    text = net_text({"data": (1, 3, 4, 4)}, layer("py", "Python", "data", "y",
                                                   'python_param { module: "m" layer: "L" }'))
    err = _refused(tmp_path, capsys, text)
    assert "layer 'py' (Python): its forward is arbitrary Python code" in err
    text = net_text({"loc": (1, 16), "conf": (1, 8), "priors": (1, 2, 16)},
                    layer("det", "DetectionOutput", ["loc", "conf", "priors"], "det"))
    err = _refused(tmp_path, capsys, text)
    assert "layer 'det' (DetectionOutput): " in err and "NonMaxSuppression" in err


def test_refusals_name_the_layer_and_why(tmp_path, capsys):
    base = net_text({"data": (2, 3, 4, 4)}, "")
    # a TRAIN-phase dropout draws a random mask
    err = _refused(tmp_path, capsys, base + layer("drop", "Dropout", "data", "y"), "-phase", "TRAIN")
    assert "layer 'drop' (Dropout): in phase TRAIN dropout draws a random mask" in err
    # a reshape that fixes the batch: not with a dynamic batch axis (fine with --batch 2)
    fixed = base + layer("rs", "Reshape", "data", "y", "reshape_param { shape { dim: 2 dim: 48 } }")
    err = _refused(tmp_path, capsys, fixed)
    assert "layer 'rs' (Reshape)" in err and "--batch N" in err
    assert main(["export-onnx", _write(tmp_path, fixed), "-o", str(tmp_path / "ok.onnx"),
                 "--batch", "2"]) == 0
    assert "outputs y (2, 48)" in capsys.readouterr().out
    # a slice along the batch axis
    err = _refused(tmp_path, capsys, base + layer("sl", "Slice", "data", ["a", "b"],
                                                  "slice_param { axis: 0 slice_point: 1 }"))
    assert "'sl' (Slice)" in err and "--batch N" in err
    # an exported layer reading a dropped loss layer's top
    loss = net_text({"data": (2, 5), "label": (2,)},
                    layer("loss", "SoftmaxWithLoss", ["data", "label"], ["loss", "prob"])
                    + layer("sq", "Power", "prob", "sq", "power_param { power: 2 }"))
    err = _refused(tmp_path, capsys, loss)
    assert "layer 'sq' (Power) reads 'prob', a top of layer 'loss' (SoftmaxWithLoss)" in err
    # only loss layers: nothing to export
    only = net_text({"data": (2, 5), "label": (2,)},
                    layer("loss", "SoftmaxWithLoss", ["data", "label"], "loss"))
    assert "nothing to export" in _refused(tmp_path, capsys, only)
    # opsets before 19 cannot express Caffe's pooling
    err = _refused(tmp_path, capsys, base + layer("r", "ReLU", "data", "y"), "--opset", "18")
    assert "opset 18 is not supported" in err
    # STOCHASTIC pooling draws random elements in TRAIN (TEST's weighted average is exported)
    err = _refused(tmp_path, capsys, base + layer("p", "Pooling", "data", "y",
                                                  "pooling_param { pool: STOCHASTIC kernel_size: 2 }"),
                   "-phase", "TRAIN")
    assert "layer 'p' (Pooling): STOCHASTIC pooling draws a random element per window" in err


def test_api_refusal_without_a_net(tmp_path):
    # PriorBox is computed by nbcaffe's forward: a bare graph cannot give it
    param = read_net(net_text({"data": (2, 3)}, layer("r", "ReLU", "data", "y")))
    graph = build_graph(param)
    graph.layers[1].type = "PriorBox"
    with pytest.raises(ExportError, match=r"layer 'r' \(PriorBox\): .*no runner Net"):
        build_model(param, graph, {}, batch=2)
    with pytest.raises(ExportError, match="--batch must be >= 1"):
        build_model(param, build_graph(param), {}, batch=0)


def test_every_layer_type_nbcaffe_runs_has_an_export_rule():
    from runner.onnx_export.plan import DATA_TYPES, DROPPED_TYPES
    from runner.onnx_export.table import MAPPINGS, REFUSED
    from runner.registry import known_types

    mapped_types()
    handled = set(MAPPINGS) | set(REFUSED) | DATA_TYPES | set(DROPPED_TYPES) | {"Split", "Silence"}
    missing = sorted(set(known_types()) - handled)
    assert not missing, f"layer types with no ONNX mapping, refusal or drop rule: {missing}"
