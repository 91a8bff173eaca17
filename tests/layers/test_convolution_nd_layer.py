"""N-D Convolution and Deconvolution (Caffe's im2col_nd path: any number of spatial axes but 2,
or force_nd_im2col): forward against direct N-D loops (tests/reference/conv_nd.py), ONNX Runtime's
Conv / ConvTranspose as an independent oracle for 3-D (OpenCV 4's Caffe importer reads 2-D
kernels only), force_nd_im2col against the 2-D path, gradients (float64 checker), hypothesis draws
of 3-D shapes and parameters, and the error for a convolution without spatial axes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import CaffeError
from netdef.geometry import ConvNdGeometry
from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer
from tests.reference.conv_nd import conv_nd_ref, deconv_nd_ref

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'

# (conv params, input shape, kernel, stride, pad, dilation, group)
CASES = [
    ("kernel_size: 3 pad: 1 stride: 2", (2, 3, 5, 4, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), 1),
    ("kernel_size: 2 kernel_size: 3 kernel_size: 1 stride: 1 stride: 2 stride: 1 pad: 0 pad: 1 pad: 0 "
     "dilation: 2 dilation: 1 dilation: 1 group: 2", (1, 4, 5, 5, 3), (2, 3, 1), (1, 2, 1), (0, 1, 0),
     (2, 1, 1), 2),
    ("kernel_size: 3 stride: 2 pad: 1", (2, 2, 9), (3,), (2,), (1,), (1,), 1),            # 1-D
    ("kernel_size: 2 pad: 1", (1, 2, 3, 2, 3, 2), (2,) * 4, (1,) * 4, (1,) * 4, (1,) * 4, 1),  # 4-D
]


def _text(kind, params, num_output=4, bias=True):
    return (f'type: "{kind}" convolution_param {{ num_output: {num_output} {params} '
            f'bias_term: {"true" if bias else "false"} {FILL} }}')


@pytest.mark.parametrize("params,shape,kernel,stride,pad,dil,group", CASES)
def test_convolution_matches_direct_loops(params, shape, kernel, stride, pad, dil, group):
    x = np.random.default_rng(1).standard_normal(shape)
    layer, (y,) = forward(_text("Convolution", params), [x], dtype=np.float64)
    assert isinstance(layer.geom, ConvNdGeometry)
    w, b = (np.array(p.data) for p in layer.blobs)
    assert w.shape == (4, shape[1] // group) + kernel
    assert_close(y, conv_nd_ref(x, w, b, pad, stride, dil, group), 1e-10, 1e-10, name="y")


@pytest.mark.parametrize("params,shape,kernel,stride,pad,dil,group", CASES[:3])
def test_deconvolution_matches_direct_loops(params, shape, kernel, stride, pad, dil, group):
    x = np.random.default_rng(2).standard_normal(shape)
    layer, (y,) = forward(_text("Deconvolution", params), [x], dtype=np.float64)
    w, b = (np.array(p.data) for p in layer.blobs)
    assert w.shape == (shape[1], 4 // group) + kernel
    assert_close(y, deconv_nd_ref(x, w, b, pad, stride, dil, group), 1e-10, 1e-10, name="y")


def _onnx_run(op: str, x, w, b, pad, stride, dil, group, out_shape):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node(op, ["x", "w", "b"], ["y"], pads=list(pad) * 2, strides=list(stride),
                            dilations=list(dil), group=group)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("kind,op", [("Convolution", "Conv"), ("Deconvolution", "ConvTranspose")])
@pytest.mark.parametrize("params,shape,kernel,stride,pad,dil,group", CASES[:2])
def test_3d_against_onnxruntime(kind, op, params, shape, kernel, stride, pad, dil, group):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    layer, (y,) = forward(_text(kind, params), [x])
    w, b = (np.array(p.data) for p in layer.blobs)
    theirs = _onnx_run(op, x, w, b, pad, stride, dil, group, y.shape)
    assert_close(y, theirs, 1e-4, 1e-5, name=f"{kind} vs ONNX Runtime {op}")


def test_force_nd_im2col_equals_the_2d_path():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    params = "kernel_size: 3 stride: 2 pad: 1 dilation: 1 group: 1"
    l2, b2, t2 = make_layer(_text("Convolution", params), [x.shape], bottom_values=[x])
    lnd, bnd, tnd = make_layer(_text("Convolution", params + " force_nd_im2col: true"), [x.shape],
                               bottom_values=[x])
    assert not isinstance(l2.geom, ConvNdGeometry) and isinstance(lnd.geom, ConvNdGeometry)
    for p2, pnd in zip(l2.blobs, lnd.blobs):
        pnd.data = p2.data
    dy = np.random.default_rng(5).standard_normal(t2[0].shape)
    for layer, b, t in ((l2, b2, t2), (lnd, bnd, tnd)):
        layer.forward(b, t)
        t[0].diff = dy
        for p in layer.blobs:
            p.diff = np.zeros(p.shape)
        layer.backward(t, [True], b)
    assert_close(tnd[0].data, t2[0].data, 1e-12, 1e-12, name="y")
    assert_close(bnd[0].diff, b2[0].diff, 1e-12, 1e-12, name="dx")
    for p2, pnd in zip(l2.blobs, lnd.blobs):
        assert_close(pnd.diff, p2.diff, 1e-12, 1e-12, name="dparam")


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_gradient(kind):
    params = "kernel_size: 2 kernel_size: 3 kernel_size: 2 stride: 2 stride: 1 stride: 1 pad: 1 group: 2"
    layer, b, t = make_layer(_text(kind, params, num_output=2), [(1, 2, 3, 3, 2)])
    check_gradient(layer, b, t)


@given(n=st.integers(1, 2), c=st.integers(1, 3), d=st.integers(1, 4), h=st.integers(1, 4),
       w=st.integers(1, 4), k=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 1),
       dil=st.integers(1, 2), deconv=st.booleans())
def test_hypothesis_3d(n, c, d, h, w, k, s, p, dil, deconv):
    ext = dil * (k - 1) + 1
    if not deconv and min(d, h, w) + 2 * p < ext:
        return                                   # the kernel does not fit (a ShapeError)
    x = np.random.default_rng(n + c + d).standard_normal((n, c, d, h, w))
    params = f"kernel_size: {k} stride: {s} pad: {p} dilation: {dil}"
    kind = "Deconvolution" if deconv else "Convolution"
    if deconv and min(s * (v - 1) + ext - 2 * p for v in (d, h, w)) <= 0:
        return
    layer, (y,) = forward(_text(kind, params, num_output=2), [x], dtype=np.float64)
    wt, b = (np.array(q.data) for q in layer.blobs)
    ref = deconv_nd_ref if deconv else conv_nd_ref
    assert_close(y, ref(x, wt, b, (p,) * 3, (s,) * 3, (dil,) * 3), 1e-10, 1e-10, name="y")


def test_no_spatial_axis_is_an_error():
    with pytest.raises(CaffeError, match="at least 1 spatial axis"):
        make_layer(_text("Convolution", "kernel_size: 1"), [(2, 3)])
