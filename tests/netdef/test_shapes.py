"""Caffe's shape rules per layer type (netdef.shapes.infer), checked against hand-computed values
from Caffe's layer code, and the errors for impossible shapes."""
from __future__ import annotations

import pytest
from google.protobuf import text_format
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import ShapeError
from netdef.shapes import datum_top_shapes, infer, known_types, needs_data_shapes
from proto import caffe_pb2 as pb
from tests.sizes import MAX_SPATIAL


def L(text: str, tops: int = 1, bottoms: int = 1) -> pb.LayerParameter:
    lp = text_format.Parse(text, pb.LayerParameter())
    if not lp.name:
        lp.name = "L"
    if not len(lp.top):
        lp.top.extend(f"t{i}" for i in range(tops))
    if not len(lp.bottom):
        lp.bottom.extend(f"b{i}" for i in range(bottoms))
    return lp


def test_convolution_shapes_params_flops():
    lp = L('type: "Convolution" convolution_param { num_output: 20 kernel_size: 5 }')
    r = infer(lp, [(64, 1, 28, 28)])
    assert r.top_shapes == [(64, 20, 24, 24)] and r.param_shapes == [(20, 1, 5, 5), (20,)]
    assert r.flops == 2 * 64 * 20 * 24 * 24 * 25
    lp = L('type: "Convolution" convolution_param { num_output: 256 pad: 2 kernel_size: 5 '
           'group: 2 bias_term: false }')
    r = infer(lp, [(1, 96, 27, 27)])
    assert r.top_shapes == [(1, 256, 27, 27)] and r.param_shapes == [(256, 48, 5, 5)]
    lp = L('type: "Convolution" convolution_param { num_output: 96 kernel_size: 11 stride: 4 }')
    assert infer(lp, [(10, 3, 227, 227)]).top_shapes == [(10, 96, 55, 55)]
    # _h/_w, dilation, repeated per-axis values
    lp = L('type: "Convolution" convolution_param { num_output: 3 kernel_h: 3 kernel_w: 1 '
           'pad_h: 1 stride_h: 2 stride_w: 1 dilation: 2 }')
    assert infer(lp, [(1, 2, 9, 7)]).top_shapes == [(1, 3, 4, 7)]
    lp = L('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 kernel_size: 1 '
           'stride: 1 stride: 2 }')
    assert infer(lp, [(1, 2, 5, 5)]).top_shapes == [(1, 2, 3, 3)]
    # 3-D convolution and a non-default channel axis
    lp = L('type: "Convolution" convolution_param { num_output: 4 kernel_size: 2 }')
    r = infer(lp, [(1, 2, 3, 4, 5)])
    assert r.top_shapes == [(1, 4, 2, 3, 4)] and r.param_shapes[0] == (4, 2, 2, 2, 2)
    lp = L('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 axis: 2 }')
    assert infer(lp, [(2, 5, 3, 6)]).top_shapes == [(2, 5, 4, 4)]
    # several bottoms -> several tops
    lp = L('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 }', 2, 2)
    assert infer(lp, [(1, 1, 4, 4)] * 2).top_shapes == [(1, 4, 2, 2)] * 2


def test_deconvolution():
    lp = L('type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 2 '
           'pad: 1 group: 1 }')
    r = infer(lp, [(2, 6, 5, 5)])
    assert r.top_shapes == [(2, 3, 10, 10)] and r.param_shapes == [(6, 3, 4, 4), (3,)]


@given(h=st.integers(1, MAX_SPATIAL * 3), k=st.integers(1, 5), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 2))
def test_convolution_output_counts_window_positions(h, k, s, p, d):
    """The output size is the number of window starts (stride s from -pad) whose dilated extent
    stays inside the padded input."""
    extent = d * (k - 1) + 1
    lp = L(f'type: "Convolution" convolution_param {{ num_output: 1 kernel_size: {k} '
           f'stride: {s} pad: {p} dilation: {d} }}')
    starts = [x for x in range(-p, h + p) if (x + p) % s == 0 and x + extent <= h + p]
    if not starts:
        with pytest.raises(ShapeError, match="larger than the padded input"):
            infer(lp, [(1, 1, h, h)])
    else:
        assert infer(lp, [(1, 1, h, h)]).top_shapes[0][2:] == (len(starts), len(starts))


@pytest.mark.parametrize("h, k, s, p, expect", [
    (24, 2, 2, 0, 12),   # LeNet
    (32, 3, 2, 0, 16),   # cifar: ceil((32-3)/2)+1 = 16 (the last window hangs over)
    (55, 3, 2, 0, 27),   # AlexNet
    (6, 3, 2, 1, 4),     # ceil((6+2-3)/2)+1 = 4; (4-1)*2 = 6 < 6+1, kept
    (5, 2, 2, 1, 3),     # ceil((5+2-2)/2)+1 = 4; (4-1)*2 = 6 >= 5+1 -> clipped to 3
    (112, 3, 2, 1, 57),  # ceil(111/2)+1 = 57; (57-1)*2 = 112 < 112+1, kept
])
def test_pooling_ceil_and_clip(h, k, s, p, expect):
    lp = L(f'type: "Pooling" pooling_param {{ pool: MAX kernel_size: {k} stride: {s} pad: {p} }}')
    r = infer(lp, [(2, 3, h, h)])
    assert r.top_shapes == [(2, 3, expect, expect)]
    assert r.flops == 2 * 3 * expect * expect * k * k


def test_pooling_variants():
    lp = L('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR }')
    assert infer(lp, [(1, 1, 32, 32)]).top_shapes == [(1, 1, 15, 15)]
    lp = L('type: "Pooling" pooling_param { pool: AVE global_pooling: true }')
    assert infer(lp, [(1, 1024, 7, 7)]).top_shapes == [(1, 1024, 1, 1)]
    lp = L('type: "Pooling" pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 '
           'stride_w: 1 }', tops=2)
    assert infer(lp, [(1, 1, 6, 6)]).top_shapes == [(1, 1, 3, 4)] * 2  # MAX: optional mask top
    with pytest.raises(ShapeError, match="global_pooling"):
        infer(L('type: "Pooling" pooling_param { global_pooling: true kernel_size: 2 }'),
              [(1, 1, 4, 4)])
    with pytest.raises(ShapeError, match="pad .* smaller than the kernel"):
        infer(L('type: "Pooling" pooling_param { kernel_size: 2 pad: 2 }'), [(1, 1, 4, 4)])


def test_kernel_larger_than_input_names_layer_and_shapes():
    lp = L('name: "conv9" type: "Convolution" convolution_param { num_output: 1 kernel_size: 7 }')
    with pytest.raises(ShapeError) as e:
        infer(lp, [(1, 3, 5, 5)])
    assert "conv9" in str(e.value) and "(1, 3, 5, 5)" in str(e.value) and "kernel" in str(e.value)
    lp = L('name: "p" type: "Pooling" pooling_param { kernel_size: 7 }')
    with pytest.raises(ShapeError, match=r"'p'.*larger than the padded input"):
        infer(lp, [(1, 3, 5, 5)])
    with pytest.raises(ShapeError, match="multiple of group"):
        infer(L('type: "Convolution" convolution_param { num_output: 4 kernel_size: 1 group: 2 }'),
              [(1, 3, 5, 5)])


def test_inner_product():
    lp = L('type: "InnerProduct" inner_product_param { num_output: 500 }')
    r = infer(lp, [(64, 50, 4, 4)])
    assert r.top_shapes == [(64, 500)] and r.param_shapes == [(500, 800), (500,)]
    assert r.flops == 2 * 64 * 500 * 800
    lp = L('type: "InnerProduct" inner_product_param { num_output: 7 axis: 2 transpose: true '
           'bias_term: false }')
    r = infer(lp, [(2, 3, 4, 5)])
    assert r.top_shapes == [(2, 3, 7)] and r.param_shapes == [(20, 7)]


def test_same_shape_layers_and_lrn():
    for t in ("ReLU", "Sigmoid", "TanH", "AbsVal", "BNLL", "ELU", "Power", "Exp", "Log", "Dropout",
              "Softmax"):
        r = infer(L(f'type: "{t}"'), [(2, 3, 4, 5)])
        assert r.top_shapes == [(2, 3, 4, 5)] and r.param_shapes == [] and r.flops > 0, t
    assert infer(L('type: "LRN" lrn_param { local_size: 5 }'), [(1, 96, 55, 55)]).top_shapes == \
        [(1, 96, 55, 55)]
    with pytest.raises(ShapeError, match="odd"):
        infer(L('type: "LRN" lrn_param { local_size: 4 }'), [(1, 3, 5, 5)])


def test_losses_are_scalar_and_accuracy():
    assert infer(L('type: "SoftmaxWithLoss"', 1, 2), [(64, 10), (64,)]).top_shapes == [()]
    assert infer(L('type: "SoftmaxWithLoss"', 2, 2), [(4, 10, 2, 2), (4, 1, 2, 2)]).top_shapes \
        == [(), (4, 10, 2, 2)]
    with pytest.raises(ShapeError, match="number of labels"):
        infer(L('type: "SoftmaxWithLoss"', 1, 2), [(64, 10), (64, 2)])
    assert infer(L('type: "EuclideanLoss"', 1, 2), [(8, 3, 2), (8, 6)]).top_shapes == [()]
    assert infer(L('type: "SigmoidCrossEntropyLoss"', 1, 2), [(8, 5), (8, 5)]).top_shapes == [()]
    assert infer(L('type: "ContrastiveLoss"', 1, 3), [(8, 2), (8, 2), (8,)]).top_shapes == [()]
    with pytest.raises(ShapeError, match="same first dimension"):
        infer(L('type: "EuclideanLoss"', 1, 2), [(8, 3), (4, 6)])
    assert infer(L('type: "Accuracy"', 2, 2), [(100, 10), (100,)]).top_shapes == [(), (10,)]
    with pytest.raises(ShapeError, match="top_k"):
        infer(L('type: "Accuracy" accuracy_param { top_k: 11 }', 1, 2), [(100, 10), (100,)])


def test_concat_slice_split_flatten():
    assert infer(L('type: "Concat"', 1, 3), [(1, 64, 28, 28), (1, 128, 28, 28), (1, 32, 28, 28)]
                 ).top_shapes == [(1, 224, 28, 28)]
    assert infer(L('type: "Concat" concat_param { concat_dim: 0 }', 1, 2), [(2, 3), (5, 3)]
                 ).top_shapes == [(7, 3)]
    assert infer(L('type: "Concat" concat_param { axis: -1 }', 1, 2), [(2, 3), (2, 4)]
                 ).top_shapes == [(2, 7)]
    with pytest.raises(ShapeError, match=r"except at concat axis 1.*\(1, 64, 28, 28\).*\(1, 64, "
                                         r"14, 14\)"):
        infer(L('type: "Concat"', 1, 2), [(1, 64, 28, 28), (1, 64, 14, 14)])
    with pytest.raises(ShapeError, match="not both"):
        infer(L('type: "Concat" concat_param { axis: 1 concat_dim: 1 }', 1, 2), [(1, 1)] * 2)
    assert infer(L('type: "Slice" slice_param { slice_dim: 1 slice_point: 1 }', 2),
                 [(64, 2, 28, 28)]).top_shapes == [(64, 1, 28, 28)] * 2
    assert infer(L('type: "Slice" slice_param { axis: 0 slice_point: 1 slice_point: 4 }', 3),
                 [(6, 2)]).top_shapes == [(1, 2), (3, 2), (2, 2)]
    assert infer(L('type: "Slice"', 3), [(1, 9)]).top_shapes == [(1, 3)] * 3
    with pytest.raises(ShapeError, match="evenly divide"):
        infer(L('type: "Slice"', 2), [(1, 9)])
    assert infer(L('type: "Split"', 3), [(2, 3)]).top_shapes == [(2, 3)] * 3
    assert infer(L('type: "Flatten"'), [(2, 3, 4, 5)]).top_shapes == [(2, 60)]
    assert infer(L('type: "Flatten" flatten_param { axis: 1 end_axis: 2 }'), [(2, 3, 4, 5)]
                 ).top_shapes == [(2, 12, 5)]
    assert infer(L('type: "Silence"', 0, 2), [(2,), (3,)]).top_shapes == []


@pytest.mark.parametrize("param, bottom, top", [
    ("shape { dim: 0 dim: -1 }", (2, 3, 6, 5), (2, 90)),
    ("shape { dim: 0 dim: 2 dim: 3 dim: 0 }", (2, 6, 4, 5), None),  # (2, 2, 3, 5): count 60
    ("shape { dim: 6 dim: 5 } axis: 2", (2, 3, 30), (2, 3, 6, 5)),
    ("shape { dim: 1 dim: -1 } axis: 1 num_axes: 1", (2, 6, 4), (2, 1, 6, 4)),
    ("shape { dim: -1 } axis: -3 num_axes: 2", (2, 3, 4, 5), (2, 3, 20)),  # start = 4-3+1
    ("shape { } axis: 1 num_axes: 0", (2, 3), (2, 3)),
])
def test_reshape(param, bottom, top):
    lp = L(f'type: "Reshape" reshape_param {{ {param} }}')
    if top is None:
        with pytest.raises(ShapeError, match="count"):
            infer(lp, [bottom])
    else:
        assert infer(lp, [bottom]).top_shapes == [top]


def test_reshape_errors():
    with pytest.raises(ShapeError, match="multiple -1"):
        infer(L('type: "Reshape" reshape_param { shape { dim: -1 dim: -1 } }'), [(4,)])
    with pytest.raises(ShapeError, match="divisible"):
        infer(L('type: "Reshape" reshape_param { shape { dim: 7 dim: -1 } }'), [(4, 3)])
    with pytest.raises(ShapeError, match=r"output count must match input count.*\(4, 3\)"):
        infer(L('type: "Reshape" reshape_param { shape { dim: 5 } }'), [(4, 3)])


def test_eltwise_batchnorm_scale_bias_argmax():
    assert infer(L('type: "Eltwise"', 1, 3), [(1, 2, 3)] * 3).flops == 12
    with pytest.raises(ShapeError, match=r"bottom\[1\]"):
        infer(L('type: "Eltwise"', 1, 2), [(1, 2, 3), (1, 2, 4)])
    r = infer(L('type: "BatchNorm"'), [(10, 32, 8, 8)])
    assert r.top_shapes == [(10, 32, 8, 8)] and r.param_shapes == [(32,), (32,), (1,)]
    r = infer(L('type: "Scale" scale_param { bias_term: true }'), [(10, 32, 8, 8)])
    assert r.param_shapes == [(32,), (32,)]
    r = infer(L('type: "Scale" scale_param { axis: 0 num_axes: -1 }'), [(2, 3)])
    assert r.param_shapes == [(2, 3)]
    assert infer(L('type: "Scale"', 1, 2), [(2, 3, 4), (3, 4)]).param_shapes == []
    with pytest.raises(ShapeError, match="dimension mismatch"):
        infer(L('type: "Scale"', 1, 2), [(2, 3, 4), (3, 3)])
    assert infer(L('type: "Bias" bias_param { axis: 1 num_axes: 2 }'), [(2, 3, 4)]
                 ).param_shapes == [(3, 4)]
    assert infer(L('type: "ArgMax" argmax_param { top_k: 2 }'), [(5, 10)]).top_shapes == \
        [(5, 1, 2)]
    assert infer(L('type: "ArgMax" argmax_param { out_max_val: true }'), [(5, 10, 3, 3)]
                 ).top_shapes == [(5, 2, 1, 1)]
    assert infer(L('type: "ArgMax" argmax_param { axis: 1 top_k: 3 }'), [(5, 10, 3)]
                 ).top_shapes == [(5, 3, 3)]


def test_data_layers():
    lp = L('name: "mnist" type: "Data" data_param { source: "db" batch_size: 64 }', 2, 0)
    assert needs_data_shapes(lp)
    with pytest.raises(ShapeError, match=r"'mnist'.*depends on the data source 'db'.*input_shapes"):
        infer(lp, [])
    assert infer(lp, [], [(64, 1, 28, 28)]).top_shapes == [(64, 1, 28, 28), (64,)]
    lp.transform_param.crop_size = 227
    assert datum_top_shapes(lp, (3, 256, 256)) == [(64, 3, 227, 227), (64,)]
    with pytest.raises(ShapeError, match="crop_size"):
        datum_top_shapes(lp, (3, 200, 256))
    inp = L('type: "Input" input_param { shape { dim: 10 dim: 3 dim: 227 dim: 227 } }', 2, 0)
    assert not needs_data_shapes(inp)
    assert infer(inp, []).top_shapes == [(10, 3, 227, 227)] * 2
    assert infer(inp, [], [(1, 3, 9, 9), None]).top_shapes == [(1, 3, 9, 9), (10, 3, 227, 227)]
    dummy = L('type: "DummyData" dummy_data_param { num: 5 channels: 3 height: 2 width: 2 '
              'num: 5 channels: 1 height: 1 width: 1 }', 2, 0)
    assert infer(dummy, []).top_shapes == [(5, 3, 2, 2), (5, 1, 1, 1)]
    dummy = L('type: "DummyData" dummy_data_param { shape { dim: 4 dim: 7 } }', 2, 0)
    assert infer(dummy, []).top_shapes == [(4, 7), (4, 7)]
    mem = L('type: "MemoryData" memory_data_param { batch_size: 4 channels: 1 height: 2 '
            'width: 3 }', 2, 0)
    assert infer(mem, []).top_shapes == [(4, 1, 2, 3), (4,)]
    img = L('type: "ImageData" image_data_param { source: "l.txt" batch_size: 8 new_height: 32 '
            'new_width: 30 is_color: false } transform_param { crop_size: 28 }', 2, 0)
    assert not needs_data_shapes(img) and infer(img, []).top_shapes == [(8, 1, 28, 28), (8,)]
    h5 = L('type: "HDF5Data" hdf5_data_param { source: "l.txt" batch_size: 10 }', 2, 0)
    assert infer(h5, [], [(10, 4), (10,)]).top_shapes == [(10, 4), (10,)]


def test_unknown_type_lists_known_types():
    with pytest.raises(ShapeError) as e:
        infer(L('name: "mystery" type: "Convolutoin"'), [(1, 1, 1, 1)])
    msg = str(e.value)
    assert "'mystery'" in msg and "'Convolutoin'" in msg and "Convolution" in msg
    for t in ("Input", "Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "Convolution",
              "Deconvolution", "Pooling", "InnerProduct", "LRN", "ReLU", "Sigmoid", "TanH",
              "AbsVal", "BNLL", "ELU", "Power", "Exp", "Log", "Dropout", "Softmax",
              "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
              "Accuracy", "Concat", "Slice", "Split", "Flatten", "Reshape", "Eltwise", "BatchNorm",
              "Scale", "Bias", "Silence", "ArgMax"):
        assert t in known_types() and t in msg


def test_bottom_count_errors():
    with pytest.raises(ShapeError, match="takes 2 bottom"):
        infer(L('type: "EuclideanLoss"', 1, 1), [(2, 3)])
    with pytest.raises(ShapeError, match="produces 1 top"):
        infer(L('type: "ReLU"', 2), [(2, 3)])


@pytest.mark.parametrize("offsets, want", [("", (0, 0, 0, 0)), ("offset: 1", (0, 0, 1, 1)),
                                           ("offset: 2 offset: 1", (0, 0, 2, 1))])
def test_crop_geometry_is_the_offset_of_every_axis(offsets, want):
    """Caffe's CropLayer offset rule (none: 0, one: every cropped axis, else one per axis; 0 before
    ``axis``), written once here and read by the layer and the ONNX export."""
    lp = L(f'type: "Crop" crop_param {{ axis: 2 {offsets} }}', bottoms=2)
    r = infer(lp, [(2, 3, 8, 9), (1, 1, 5, 6)])
    assert r.top_shapes == [(2, 3, 5, 6)] and r.geometry == want
    with pytest.raises(ShapeError, match="invalid crop: axis 3"):
        infer(L('type: "Crop" crop_param { axis: 2 offset: 1 offset: 4 }', bottoms=2),
              [(2, 3, 8, 9), (1, 1, 5, 6)])
