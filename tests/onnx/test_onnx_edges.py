"""Edge nets written for the export: each exported with a dynamic batch axis and run by ONNX
Runtime at batch 1 and 7 against nbcaffe's forward (every blob, relative error <= 1e-5). Types
nbcaffe does not run yet (runner.registry.known_types()) are compared against the numpy forward
of Caffe's source in tests/onnx/caffe_ref.py instead; the same case switches to nbcaffe's forward
once the layer is registered. Cases with a Caffe rounding rule also pin the output size.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from netdef.errors import ExportError

pytest.importorskip("onnxruntime")

from netdef.graph import build_graph  # noqa: E402
from netdef.prototxt import read_net  # noqa: E402
from proto import caffe_pb2 as pb  # noqa: E402
from runner import Net  # noqa: E402
from runner.onnx_export import build_model  # noqa: E402
from runner.registry import known_types  # noqa: E402
from tests.onnx import caffe_ref  # noqa: E402
from tests.onnx.nets import layer, net_text  # noqa: E402
from tests.onnx.oracle import (  # noqa: E402
    RTOL,
    compare_net,
    randomize,
    rel_err,
    run,
    with_blob_outputs,
)


def check(text: str, tmp_path, make=None, expect: dict | None = None, init=None, batches=(1, 7),
          batch="dynamic"):
    """Export ``text`` and compare (see the module docstring). ``expect``: {output: trailing dims}
    the model must declare; ``init(net)`` sets parameters after the random ones; ``make(name,
    shape)`` builds an input (None: standard normal); ``batch`` N exports a fixed batch (then
    ``batches`` is (N,))."""
    param = read_net(text)
    if {lp.type for lp in param.layer} <= set(known_types()):
        net = Net(param)
        randomize(net, np.random.default_rng(3))
        if init:
            init(net)
        model = compare_net(net, tmp_path, batches=batches, make=make, batch=batch)
    else:
        model = _check_numpy(param, make, batches, batch)
    for name, dims in (expect or {}).items():
        out = {o.name: o for o in model.graph.output}[name]
        got = tuple(d.dim_value for d in out.type.tensor_type.shape.dim)[-len(dims):]
        assert got == tuple(dims), f"output {name!r} declares trailing dims {got}, Caffe gives {dims}"
    return model


def _check_numpy(param: pb.NetParameter, make, batches, batch) -> onnx.ModelProto:
    graph = build_graph(param)
    rng = np.random.default_rng(4)
    params = {n.name: [rng.standard_normal(s).astype(np.float32) for s in n.param_shapes]
              for n in graph.layers}
    model, info = build_model(param, graph, params, batch=batch)
    blobs = [b for b in graph.blob_shapes if b not in info.inputs]
    checked = with_blob_outputs(model, blobs)
    for b in batches:
        feeds = {}
        for t in graph.inputs:
            shape = (b,) + graph.blob_shapes[t][1:]
            x = make(t, shape) if make else None
            feeds[t] = (x if x is not None else rng.standard_normal(shape)).astype(np.float32)
        ours = run(checked, {t: v for t, v in feeds.items() if t in info.inputs})
        ref = caffe_ref.forward(graph.layers, feeds, params)
        for name, got in ours.items():
            err = rel_err(got, ref[info.blobs.get(name, name)])
            assert err <= RTOL, f"blob {name!r} at batch {b}: ONNX Runtime vs numpy Caffe {err:.3g}"
    return model


D = {"data": (2, 3, 5, 5)}


# ---------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_ceil_pool_drops_the_last_window(pool, tmp_path):
    # H = 5, kernel 2, stride 2, pad 1: ceil gives 4 windows, the 4th starts in the padding and
    # Caffe drops it: 3
    body = layer("pool", "Pooling", "data", "pool",
                 f"pooling_param {{ pool: {pool} kernel_size: 2 stride: 2 pad: 1 }}")
    check(net_text(D, body), tmp_path, expect={"pool": (3, 3)})


@pytest.mark.parametrize("shape,params,out", [
    ((2, 2, 6, 7), "kernel_size: 3 stride: 2", (3, 3)),          # last window clipped at H
    ((2, 2, 8, 8), "kernel_size: 3 stride: 2 pad: 1", (5, 5)),    # clipped at H + pad
    ((2, 3, 6, 6), "kernel_size: 3 stride: 1 pad: 1", (6, 6)),    # padded: padding counts
    ((2, 3, 7, 5), "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1", (4, 2)),
])
def test_average_pool_divisor(shape, params, out, tmp_path):
    body = layer("pool", "Pooling", "data", "pool", f"pooling_param {{ pool: AVE {params} }}")
    check(net_text({"data": shape}, body), tmp_path, expect={"pool": out})


@pytest.mark.parametrize("params,out", [
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", (4, 4)),
    ("pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR", (3, 3)),
    ("pool: AVE global_pooling: true", (1, 1)),
    ("pool: MAX global_pooling: true", (1, 1)),
])
def test_pool_floor_and_global(params, out, tmp_path):
    body = layer("pool", "Pooling", "data", "pool", f"pooling_param {{ {params} }}")
    check(net_text({"data": (2, 3, 7, 7)}, body), tmp_path, expect={"pool": out})


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("shape,params", [((2, 2, 4, 6), "kernel_size: 1 stride: 2"),
                                          ((2, 2, 5, 5), "kernel_h: 1 kernel_w: 2 stride: 3")])
def test_pool_window_wholly_past_the_image(pool, shape, params, tmp_path):
    # kernel < stride, ceil rounding, no pad: Caffe keeps a last window with no pixel in it and
    # outputs -FLT_MAX (MAX) or 0 / its size, NaN or -0 (AVE), there
    body = layer("pool", "Pooling", "data", "pool", f"pooling_param {{ pool: {pool} {params} }}")
    model = check(net_text({"data": shape}, body), tmp_path)
    y = run(model, {"data": np.ones((1,) + shape[1:], np.float32)})["pool"]
    edge = y[..., -1, :]
    if pool == "MAX":
        assert (edge == -np.finfo(np.float32).max).all()
    else:
        assert np.isnan(edge).any() or (np.signbit(edge) & (edge == 0)).any()


def test_max_pool_mask_top(tmp_path):
    body = layer("pool", "Pooling", "data", ["pool", "mask"],
                 "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }")
    check(net_text({"data": (2, 3, 8, 6)}, body), tmp_path, expect={"mask": (5, 4)})


# ---------------------------------------------------------------------------- arithmetic

@pytest.mark.parametrize("params", ["operation: SUM coeff: 1 coeff: -0.5", "operation: SUM",
                                    "operation: PROD", "operation: MAX"])
def test_eltwise(params, tmp_path):
    ins = {"a": (2, 3, 4, 4), "b": (2, 3, 4, 4), "c": (2, 3, 4, 4)}
    bottoms = ["a", "b"] if "coeff" in params else ["a", "b", "c"]
    body = layer("elt", "Eltwise", bottoms, "elt", f"eltwise_param {{ {params} }}")
    check(net_text(ins, body), tmp_path)


def _scale_factor(value):
    def init(net):
        bn = net.layer_dict["bn"]
        f = value if value else 1.0
        bn.blobs[0].data = bn.blobs[0].data / 7.0 * f
        bn.blobs[1].data = bn.blobs[1].data / 7.0 * f
        bn.blobs[2].data = np.full((1,), value, np.float32)
    return init


@pytest.mark.parametrize("shape,extra,sf", [
    ((2, 4, 3, 3), "", 7.0),        # stored sums divided by the scale factor 7
    ((2, 4, 3, 3), "", 0.0),        # scale factor 0: mean = var = 0 (Caffe's 0 -> 0)
    ((2, 5), "batch_norm_param { eps: 0.01 }", 7.0),
    ((5,), "", 7.0),                # a 1-D bottom is one channel
    ((3, 4, 2, 3), "batch_norm_param { use_global_stats: false }", 7.0),  # the batch's statistics
])
def test_batch_norm(shape, extra, sf, tmp_path):
    body = layer("bn", "BatchNorm", "data", "data", extra)
    if len(shape) > 1:
        body += layer("sc", "Scale", "data", "data", "scale_param { bias_term: true }")
    batches = (2, 7) if "use_global_stats" in extra else (1, 7)
    check(net_text({"data": shape}, body), tmp_path, init=_scale_factor(sf), batches=batches)


SCALE_BIAS = [  # params, inputs (a second input is the operand)
    ("axis: 1 num_axes: 2", {"data": (2, 3, 4, 5)}),
    ("axis: 0 num_axes: 0", {"data": (2, 3, 4, 5)}),
    ("axis: -2 num_axes: -1", {"data": (2, 3, 4, 5)}),
    ("axis: 1", {"data": (2, 3, 4, 5), "s": (3,)}),           # a fixed operand: a static input
    ("axis: 2", {"data": (2, 3, 4, 5), "s": (4,)}),
    ("axis: 1", {"data": (2, 3, 4, 5), "s": (3, 4)}),
    ("axis: 0", {"data": (2, 3, 4, 5), "s": (2, 3)}),         # batch-shaped: scales with it
    ("axis: 0", {"data": (2, 3, 4, 5), "s": (2, 3, 4, 5)}),
]


@pytest.mark.parametrize("params,inputs", SCALE_BIAS)
@pytest.mark.parametrize("type_", ["Scale", "ScaleBias", "Bias"])
def test_scale_and_bias(type_, params, inputs, tmp_path):
    if type_ == "Bias":
        text = f"bias_param {{ {params} }}"
    else:
        text = f"scale_param {{ {params} {'bias_term: true' if type_ == 'ScaleBias' else ''} }}"
    body = layer("sb", type_.replace("ScaleBias", "Scale"), list(inputs), "y", text)
    if type_ == "ScaleBias" and "s" in inputs and "axis: 0" in params:
        # Caffe sizes this bias by bottom 1's axes, here the batch axis among them: a parameter
        # that follows the batch has no dynamic-batch ONNX form
        with pytest.raises(ExportError, match="parameter shapes depend on the batch size"):
            check(net_text(inputs, body), tmp_path)
        return
    model = check(net_text(inputs, body), tmp_path)
    dims = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
    if "s" in dims:   # the operand's first axis is the batch only when it has the data's
        assert bool(dims["s"][0].dim_param) == (inputs["s"][0] == 2)


# ---------------------------------------------------------------------------- LRN

@pytest.mark.parametrize("params", [
    "local_size: 5 alpha: 0.1 beta: 0.75 k: 2",
    "local_size: 3 alpha: 1 beta: 0.5 k: 1",
    "norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 beta: 0.75",
    "norm_region: WITHIN_CHANNEL local_size: 5 alpha: 2 beta: 0.6 k: 3",   # k unused, as in Caffe
])
def test_lrn(params, tmp_path):
    body = layer("lrn", "LRN", "data", "lrn", f"lrn_param {{ {params} }}")
    check(net_text({"data": (2, 7, 5, 6)}, body), tmp_path)


# ---------------------------------------------------------------------------- conv / ip

@pytest.mark.parametrize("params,shape,out", [
    ("num_output: 6 group: 2 kernel_size: 3 stride: 2 pad: 1", (2, 4, 3, 3), (5, 5)),
    ("num_output: 4 group: 4 kernel_size: 4 stride: 3", (2, 4, 3, 2), (10, 7)),
    ("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 dilation: 2 "
     "bias_term: false", (2, 3, 3, 4), (9, 6)),
])
def test_deconvolution(params, shape, out, tmp_path):
    body = layer("up", "Deconvolution", "data", "up", f"convolution_param {{ {params} }}")
    check(net_text({"data": shape}, body), tmp_path, expect={"up": out})


@pytest.mark.parametrize("params", [
    "num_output: 6 group: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 "
    "dilation: 2",
    "num_output: 5 kernel_size: 1",
    "num_output: 4 kernel_size: 3 pad: 2 stride: 3 bias_term: false",
])
def test_convolution(params, tmp_path):
    body = layer("conv", "Convolution", "data", "conv", f"convolution_param {{ {params} }}")
    check(net_text({"data": (2, 4, 7, 7)}, body), tmp_path)


def test_convolution_channel_axis_2(tmp_path):
    body = layer("conv", "Convolution", "data", "conv",
                 "convolution_param { num_output: 3 kernel_size: 2 axis: 2 }")
    check(net_text({"data": (2, 2, 3, 5, 5)}, body), tmp_path, expect={"conv": (2, 3, 4, 4)})


def test_convolution_two_bottoms_share_weights(tmp_path):
    body = layer("conv", "Convolution", ["a", "b"], ["ya", "yb"],
                 "convolution_param { num_output: 3 kernel_size: 3 }")
    model = check(net_text({"a": (2, 2, 5, 5), "b": (2, 2, 5, 5)}, body), tmp_path)
    assert len(model.graph.initializer) == 2       # one weight, one bias for both nodes


@pytest.mark.parametrize("params,out", [("num_output: 6 axis: 2", (2, 3, 6)),
                                        ("num_output: 6 axis: 2 transpose: true", (2, 3, 6)),
                                        ("num_output: 4", (2, 4)),
                                        ("num_output: 4 axis: -1 bias_term: false", (2, 3, 4, 4))])
def test_inner_product(params, out, tmp_path):
    body = layer("ip", "InnerProduct", "data", "ip", f"inner_product_param {{ {params} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path, expect={"ip": out[1:]})


def test_embed(tmp_path):
    body = layer("emb", "Embed", "data", "emb", "embed_param { num_output: 5 input_dim: 7 }")
    rng = np.random.default_rng(5)
    check(net_text({"data": (2, 3)}, body), tmp_path, expect={"emb": (3, 5)},
          make=lambda name, shape: rng.integers(0, 7, shape))


# ---------------------------------------------------------------------------- structure

def test_crop_with_offsets(tmp_path):
    body = layer("crop", "Crop", ["data", "ref"], "crop", "crop_param { axis: 2 offset: 1 offset: 3 }")
    body += layer("crop1", "Crop", ["data", "ref1"], "crop1", "crop_param { axis: 1 offset: 1 }")
    body += layer("crop0", "Crop", ["data", "ref0"], "crop0", "crop_param { axis: 0 offset: 0 "
                  "offset: 1 offset: 2 offset: 3 }")  # along the batch axis: its end read at run time
    inputs = {"data": (2, 4, 8, 9), "ref": (2, 4, 5, 4), "ref1": (2, 2, 6, 6), "ref0": (2, 3, 5, 5)}
    check(net_text(inputs, body), tmp_path, expect={"crop": (5, 4), "crop1": (2, 6, 6),
                                                    "crop0": (3, 5, 5)})


def test_slice_with_slice_points(tmp_path):
    body = layer("sl", "Slice", "data", ["s0", "s1", "s2"],
                 "slice_param { axis: 1 slice_point: 2 slice_point: 5 }")
    body += layer("sl2", "Slice", "s2", ["t0", "t1"], "slice_param { axis: 3 }")
    check(net_text({"data": (2, 7, 3, 4)}, body), tmp_path,
          expect={"s0": (2, 3, 4), "s1": (3, 3, 4), "t1": (2, 3, 2)})


@pytest.mark.parametrize("params,out", [
    ("shape { dim: 0 dim: -1 dim: 4 }", (15, 4)),
    ("shape { dim: -1 } axis: 1 num_axes: 2", (12, 5)),
    ("shape { dim: 0 dim: 2 dim: -1 dim: 2 dim: 5 }", (2, 3, 2, 5)),
    ("shape { dim: 2 dim: 10 } axis: 2", (3, 2, 10)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (3, 4, 5, 1)),
    ("shape { dim: -1 dim: 5 }", (5,)),                  # the batch folded into axis 0
])
def test_reshape(params, out, tmp_path):
    body = layer("rs", "Reshape", "data", "rs", f"reshape_param {{ {params} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path, expect={"rs": out})


@pytest.mark.parametrize("params,out", [("", (60,)), ("axis: 1 end_axis: 2", (12, 5)),
                                        ("axis: 2", (3, 20))])
def test_flatten(params, out, tmp_path):
    body = layer("fl", "Flatten", "data", "fl", f"flatten_param {{ {params} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path, expect={"fl": out})


def test_concat_axes(tmp_path):
    body = layer("c1", "Concat", ["a", "b"], "c1", "concat_param { axis: 2 }")
    body += layer("c0", "Concat", ["a", "b"], "c0", "concat_param { axis: 0 }")
    check(net_text({"a": (2, 3, 4), "b": (2, 3, 1)}, body.replace("axis: 0", "axis: -1")), tmp_path)


def test_tile(tmp_path):
    body = layer("tile", "Tile", "data", "tile", "tile_param { axis: 1 tiles: 3 }")
    check(net_text({"data": (2, 2, 3)}, body), tmp_path, expect={"tile": (6, 3)})


def test_parameter(tmp_path):
    body = layer("p", "Parameter", [], "p", "parameter_param { shape { dim: 2 dim: 3 } }")
    body += layer("add", "Eltwise", ["p", "data"], "sum", "")
    check(net_text({"data": (2, 3)}, body), tmp_path, batch=2, batches=(2,))


def test_in_place_chain_split_and_silence(tmp_path):
    body = layer("conv", "Convolution", "data", "conv", "convolution_param { num_output: 4 kernel_size: 3 }")
    body += layer("relu", "ReLU", "conv", "conv")
    body += layer("drop", "Dropout", "conv", "conv")
    body += layer("pool", "Pooling", "conv", "pool", "pooling_param { pool: MAX kernel_size: 2 }")
    body += layer("sig", "Sigmoid", "conv", "side")
    body += layer("mute", "Silence", "side", [])
    body += layer("relu2", "ReLU", "pool", "pool")
    model = check(net_text({"data": (2, 3, 6, 6)}, body), tmp_path)
    assert [o.name for o in model.graph.output] == ["pool"]     # conv is read; side is silenced
    assert {"conv@relu", "conv@conv", "pool@pool"} <= {v.name for v in model.graph.value_info}


# ---------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("params,shape", [
    ("axis: 2", (2, 4, 3, 2)), ("axis: -1", (2, 4, 3, 2)), ("axis: 1 top_k: 2", (2, 4, 3, 2)),
    ("axis: 1 top_k: 2 out_max_val: true", (2, 4, 3, 2)), ("top_k: 3", (2, 4, 3, 2)),
    ("top_k: 2 out_max_val: true", (2, 4, 3, 2)), ("", (2, 4, 3, 2)), ("top_k: 2", (2, 6)),
    ("out_max_val: true", (2, 3, 4))])
def test_argmax_ties_go_to_the_higher_index(params, shape, tmp_path):
    body = layer("am", "ArgMax", "data", "am", f"argmax_param {{ {params} }}")
    rng = np.random.default_rng(6)
    check(net_text({"data": shape}, body), tmp_path,
          make=lambda name, shape: rng.integers(0, 3, shape).astype(np.float32))


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax_axis(axis, tmp_path):
    body = layer("sm", "Softmax", "data", "sm", f"softmax_param {{ axis: {axis} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path)


@pytest.mark.parametrize("params", ["operation: SUM axis: 1", "operation: ASUM axis: 2 coeff: 2",
                                    "operation: SUMSQ axis: -1", "operation: MEAN axis: 1 coeff: -0.5",
                                    "operation: SUM"])
def test_reduction(params, tmp_path):
    body = layer("red", "Reduction", "data", "red", f"reduction_param {{ {params} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path, batches=(1, 7) if "axis" in params else (2,))


@pytest.mark.parametrize("params,shape", [("", (2, 3, 4, 5)), ("across_channels: true", (2, 3, 4, 5)),
                                          ("normalize_variance: false", (2, 3, 4, 5)),
                                          ("eps: 0.01", (2, 3))])
def test_mvn(params, shape, tmp_path):
    body = layer("mvn", "MVN", "data", "mvn", f"mvn_param {{ {params} }}")
    check(net_text({"data": shape}, body), tmp_path)


# ---------------------------------------------------------------------------- elementwise

@pytest.mark.parametrize("type_,params", [
    ("ReLU", ""), ("ReLU", "relu_param { negative_slope: 0.1 }"), ("ELU", "elu_param { alpha: 0.5 }"),
    ("Sigmoid", ""), ("TanH", ""), ("AbsVal", ""), ("BNLL", ""),
    ("Power", "power_param { power: 2 scale: 0.5 shift: 1 }"),
    ("Power", "power_param { power: 3 }"), ("Power", "power_param { power: 0 scale: 3 }"),
    ("Power", "power_param { power: 2 scale: 0 shift: 3 }"),
    ("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }"), ("Exp", ""),
    ("Log", "log_param { base: 10 scale: 2 shift: 30 }"), ("Log", "log_param { shift: 30 }"),
    ("Dropout", "dropout_param { dropout_ratio: 0.3 }"),
    ("Threshold", "threshold_param { threshold: 0.3 }"),
    ("Clip", "clip_param { min: -0.5 max: 1 }"), ("Clip", "clip_param { min: 1 max: -0.5 }"),
    ("Swish", ""), ("Swish", "swish_param { beta: 1.5 }"),
    ("PReLU", ""), ("PReLU", "prelu_param { channel_shared: true }"),
])
def test_elementwise(type_, params, tmp_path):
    body = layer("f", type_, "data", "y", params)
    rng = np.random.default_rng(7)
    # large magnitudes reach BNLL's and Exp's overflow-prone ranges
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path,
          make=lambda name, shape: rng.standard_normal(shape) * (30 if type_ == "BNLL" else 3))


# ---------------------------------------------------------------------------- SSD layers

def _needs(field: str) -> None:
    if field not in pb.LayerParameter.DESCRIPTOR.fields_by_name:
        pytest.skip(f"caffe.proto has no {field} yet (the SSD fork's messages land with branch i12-ssd)")


@pytest.mark.parametrize("params", ["", "across_spatial: false", "channel_shared: false",
                                    "across_spatial: false channel_shared: false eps: 0.001"])
def test_normalize(params, tmp_path):
    _needs("norm_param")
    body = layer("norm", "Normalize", "data", "norm", f"norm_param {{ {params} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path)


@pytest.mark.parametrize("order,out", [("order: 0 order: 2 order: 3 order: 1", (4, 5, 3)),
                                       ("order: 0 order: 3", (5, 3, 4))])
def test_permute(order, out, tmp_path):
    _needs("permute_param")
    body = layer("perm", "Permute", "data", "perm", f"permute_param {{ {order} }}")
    check(net_text({"data": (2, 3, 4, 5)}, body), tmp_path, expect={"perm": out})


def test_prior_box_is_nbcaffe_forward_as_a_constant(tmp_path):
    _needs("prior_box_param")
    if "PriorBox" not in known_types():
        pytest.skip("nbcaffe has no PriorBox layer yet (it lands with branch i12-ssd)")
    body = layer("pb", "PriorBox", ["feat", "data"], "priors",
                 "prior_box_param { min_size: 4 max_size: 9 aspect_ratio: 2 flip: true clip: true "
                 "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 }")
    model = check(net_text({"feat": (2, 3, 4, 5), "data": (2, 3, 16, 20)}, body), tmp_path)
    assert any(n.op_type == "Constant" for n in model.graph.node)


# ---------------------------------------------------------------------------- structured layers

def _positive(rng):
    return lambda name, shape: rng.uniform(0.0, 2.0, shape)


@pytest.mark.parametrize("shape,params", [
    ((2, 3, 6, 6), "kernel_size: 3 stride: 2"),        # ceil: the last window clipped at H
    ((2, 2, 5, 7), "kernel_h: 2 kernel_w: 3 stride: 2"),
    ((2, 2, 4, 6), "kernel_size: 1 stride: 2"),        # a last window wholly past the image
    ((2, 3, 5, 5), "global_pooling: true"),
])
def test_stochastic_pooling_at_test(shape, params, tmp_path):
    # TEST: sum(x^2) / (FLT_MIN + sum(x)) over each window
    body = layer("pool", "Pooling", "data", "pool", f"pooling_param {{ pool: STOCHASTIC {params} }}")
    check(net_text({"data": shape}, body), tmp_path, make=_positive(np.random.default_rng(8)))


@pytest.mark.parametrize("pool", ["MAX", "AVE", "STOCHASTIC"])
@pytest.mark.parametrize("height", [1, 2, 3])
def test_spp(pool, height, tmp_path):
    body = layer("spp", "SPP", "data", "spp", f"spp_param {{ pool: {pool} pyramid_height: {height} }}")
    hw = (8, 8) if pool == "STOCHASTIC" else (7, 7)     # 7 x 7: padded levels (MAX and AVE only)
    check(net_text({"data": (2, 3) + hw}, body), tmp_path, make=_positive(np.random.default_rng(9)))


@pytest.mark.parametrize("type_,params,shape", [
    ("Convolution", "num_output: 4 kernel_size: 3 pad: 1 stride: 2", (2, 3, 9)),          # 1-D
    ("Convolution", "num_output: 4 group: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 "
     "dilation: 2 pad: 1", (2, 4, 5, 6, 5)),                                              # 3-D
    ("Convolution", "num_output: 3 kernel_size: 3 force_nd_im2col: true", (2, 2, 6, 5)),
    ("Deconvolution", "num_output: 4 group: 2 kernel_size: 3 stride: 2 pad: 1", (2, 2, 3, 4, 3)),
])
def test_nd_convolution(type_, params, shape, tmp_path):
    body = layer("conv", type_, "data", "conv", f"convolution_param {{ {params} }}")
    check(net_text({"data": shape}, body), tmp_path)


def test_lstm_unit(tmp_path):
    body = layer("unit", "LSTMUnit", ["c_prev", "gates", "cont"], ["c", "h"])
    rng = np.random.default_rng(10)
    inputs = {"c_prev": (1, 3, 4), "gates": (1, 3, 16), "cont": (1, 3)}
    check(net_text(inputs, body), tmp_path, batch=1, batches=(1,),
          make=lambda name, shape: rng.integers(0, 2, shape) if name == "cont" else None)


@pytest.mark.parametrize("type_", ["RNN", "LSTM"])
@pytest.mark.parametrize("static,expose", [(False, False), (True, False), (False, True), (True, True)])
def test_recurrent_carries_its_state_like_caffe(type_, static, expose, tmp_path):
    t, n, h = 3, 2, 4
    inputs = {"x": (t, n, 3, 2), "cont": (t, n)}
    if static:
        inputs["xs"] = (n, 5)
    tops = ["y"]
    if expose:
        states = ["h0", "c0"] if type_ == "LSTM" else ["h0"]
        inputs.update({s: (1, n, h) for s in states})
        tops += ["hT", "cT"] if type_ == "LSTM" else ["hT"]
    body = layer("rec", type_, list(inputs), tops,
                 f"recurrent_param {{ num_output: {h} expose_hidden: {str(expose).lower()} }}")
    net = Net(read_net(net_text(inputs, body)))
    randomize(net, np.random.default_rng(11))
    info = net.to_onnx(tmp_path / "rec.onnx", batch=t)
    model = onnx.load(str(tmp_path / "rec.onnx"))
    rng = np.random.default_rng(12)
    state = {}
    for call, cont0 in enumerate((0, 1)):     # the second forward continues the first's sequences
        feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}
        feeds["cont"] = rng.integers(0, 2, (t, n)).astype(np.float32)
        feeds["cont"][0] = cont0
        ours = net.forward(**feeds)
        onnx_feeds = dict(feeds)
        for name in info.inputs:
            if name not in feeds:                # the carried state: zeros for a fresh net
                onnx_feeds[name] = state.get(name, np.zeros((1, n, h), np.float32))
        got = run(model, onnx_feeds)
        for top in tops:
            assert rel_err(got[top], ours[top] if top in ours else net.blobs[top].data) <= RTOL, \
                (call, top)
        state = {name.replace("_T", "_0"): got[name] for name in got if name.endswith("_T")}
    if not expose:
        assert any("carries its state" in note for note in info.notes)
        assert sorted(info.inputs) == sorted(["x", "cont"] + (["xs"] if static else [])
                                             + [f"rec/{s}_0" for s in ("hc" if type_ == "LSTM" else "h")])


def test_recurrent_needs_a_fixed_first_axis(tmp_path):
    body = layer("rec", "LSTM", ["x", "cont"], "y", "recurrent_param { num_output: 2 }")
    net = Net(read_net(net_text({"x": (3, 2, 4), "cont": (3, 2)}, body)))
    with pytest.raises(Exception, match=r"layer 'rec' \(LSTM\): it runs as a net unrolled over the 3 "
                       r"time steps.*--batch 3"):
        net.to_onnx(tmp_path / "x.onnx")


def _needs_rule(type_: str) -> None:
    from netdef.shapes import RULES
    if type_ not in RULES:
        pytest.skip(f"netdef has no shape rule for {type_} yet (it lands with branch i12-layers)")


@pytest.mark.parametrize("params,shape", [
    ("kernel_size: 3", (2, 2, 5, 6)),
    ("kernel_h: 2 kernel_w: 3 stride: 2 pad: 1 dilation: 2", (2, 3, 6, 7)),
    ("kernel_size: 2 stride: 2", (2, 2, 5)),                                  # 1-D
    ("kernel_size: 2 axis: 2", (2, 2, 3, 4, 4)),                              # channel axis 2
])
def test_im2col(params, shape, tmp_path):
    _needs_rule("Im2col")
    body = layer("cols", "Im2col", "data", "cols", f"convolution_param {{ {params} }}")
    check(net_text({"data": shape}, body), tmp_path)


def test_batch_reindex(tmp_path):
    _needs_rule("BatchReindex")
    body = layer("ri", "BatchReindex", ["data", "index"], "ri")
    rng = np.random.default_rng(13)
    # the index blob has its own first axis (5 picks of the 2 items)
    check(net_text({"data": (2, 3, 4), "index": (5,)}, body), tmp_path,
          make=lambda name, shape: rng.integers(0, 2, shape) if name == "index" else None,
          batch=2, batches=(2,))


def test_filter_keeps_a_data_dependent_number_of_items(tmp_path):
    _needs_rule("Filter")
    body = layer("f", "Filter", ["data", "aux", "sel"], ["kept", "kept_aux"])
    body += layer("relu", "ReLU", "kept", "kept_relu")
    inputs = {"data": (4, 3, 2), "aux": (4, 5), "sel": (4, 1)}
    param = read_net(net_text(inputs, body))
    net = Net(param)
    path = tmp_path / "filter.onnx"
    info = net.to_onnx(path)
    model = onnx.load(str(path))
    out = {o.name: o for o in model.graph.output}["kept_relu"]
    assert not out.type.tensor_type.shape.dim[0].dim_param     # not "batch": a count of its own
    rng = np.random.default_rng(14)
    for sel in ([1, 0, 2.5, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0, 0, 1, 1]):
        b = len(sel)
        feeds = {"data": rng.standard_normal((b, 3, 2)).astype(np.float32),
                 "aux": rng.standard_normal((b, 5)).astype(np.float32),
                 "sel": np.asarray(sel, np.float32).reshape(b, 1)}
        got = run(model, feeds)
        net.forward(**feeds)
        for name in info.outputs:
            assert rel_err(got[name], net.blobs[name].data) <= RTOL, (sel, name)
    with pytest.raises(Exception, match=r"layer 'f' \(Filter\): .*data-dependent"):
        net.to_onnx(tmp_path / "fixed.onnx", batch=4)


def _ssd_head(with_detection: bool) -> str:
    body = layer("conv", "Convolution", "data", "feat", "convolution_param { num_output: 8 "
                 "kernel_size: 3 pad: 1 stride: 2 }")
    body += layer("relu", "ReLU", "feat", "feat")
    body += layer("norm", "Normalize", "feat", "feat_norm",
                  "norm_param { across_spatial: false channel_shared: false }")
    for head, per in (("loc", 4), ("conf", 3)):
        body += layer(f"{head}", "Convolution", "feat_norm", head,
                      f"convolution_param {{ num_output: {2 * per} kernel_size: 3 pad: 1 }}")
        body += layer(f"{head}_perm", "Permute", head, f"{head}_perm",
                      "permute_param { order: 0 order: 2 order: 3 order: 1 }")
        body += layer(f"{head}_flat", "Flatten", f"{head}_perm", f"{head}_flat")
    body += layer("priors", "PriorBox", ["feat_norm", "data"], "priors",
                  "prior_box_param { min_size: 6 aspect_ratio: 2 flip: false clip: true "
                  "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 }")
    if with_detection:
        body += layer("conf_prob", "Softmax", "conf_flat", "conf_prob")
        body += layer("det", "DetectionOutput", ["loc_flat", "conf_prob", "priors"], "det",
                      "detection_output_param { num_classes: 3 nms_param { nms_threshold: 0.45 } "
                      "keep_top_k: 10 confidence_threshold: 0.01 }")
    return net_text({"data": (2, 3, 16, 16)}, body)


def test_ssd_head(tmp_path):
    _needs("norm_param")
    if "PriorBox" not in known_types():
        pytest.skip("nbcaffe has no PriorBox layer yet (it lands with branch i12-ssd)")
    model = check(_ssd_head(False), tmp_path)
    assert {o.name for o in model.graph.output} == {"loc_flat", "conf_flat", "priors"}
    net = Net(read_net(_ssd_head(True)))
    with pytest.raises(Exception, match=r"layer 'det' \(DetectionOutput\): .*NonMaxSuppression"):
        net.to_onnx(tmp_path / "det.onnx")
