"""InfogainLoss (Caffe's, with its internal softmax): with H = I it is SoftmaxWithLoss; H from
bottom[2] and from the infogain_loss_param.source BlobProto file agree; ignore_label with each
normalization mode and the infogain axis against tests/reference/caffe_extra.py (hypothesis);
Caffe's refusals (the deprecated ``normalize``, a missing source, a wrong-sized H, gradients to
the labels or to H); gradient (float64), the probability top, cpu-vs-cuda parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError, ShapeError
from netdef.weights import write_binaryproto
from runner import Net
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text, net_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
LAB = np.array([1.0, 2.0])


def test_identity_h_is_softmax_with_loss():
    _, (y, p), (dx, _, _) = forward_backward('type: "InfogainLoss" top: "loss" top: "prob"',
                                             [X, LAB, np.eye(3)], [1.0, np.zeros((2, 3))],
                                             propagate=[True, False, False])
    _, (y2,), (dx2, _) = forward_backward('type: "SoftmaxWithLoss"', [X, LAB], [1.0],
                                          propagate=[True, False])
    e = np.exp(X - X.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    assert float(y) == pytest.approx(-(math.log(prob[0, 1]) + math.log(prob[1, 2])) / 2)
    assert float(y) == pytest.approx(float(y2))
    np.testing.assert_allclose(p, prob)
    np.testing.assert_allclose(dx, dx2, atol=1e-12)


def test_h_from_source_file(tmp_path):
    h = np.array([[1.0, 0.5, 0.0], [0.25, 1.0, 0.375], [0.0, 0.0, 2.0]])    # exact in float32
    path = tmp_path / "H.binaryproto"
    write_binaryproto(path, h.reshape(1, 1, 3, 3), legacy_4d=True)      # Caffe's (1, 1, C, C) blob
    dy = [0.7]
    text = f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }}'
    _, (y,), (dx, _) = forward_backward(text, [X, LAB], dy, propagate=[True, False])
    _, (y3,), (dx3, _, _) = forward_backward('type: "InfogainLoss"', [X, LAB, h], dy,
                                             propagate=[True, False, False])
    assert float(y) == pytest.approx(float(y3))
    np.testing.assert_allclose(dx, dx3)
    loss_ref, _ = ref.infogain_ref(X, LAB, h)
    assert float(y) == pytest.approx(loss_ref)
    assert_close(dx, ref.infogain_grad_ref(X, LAB, h, loss_weight=0.7), 1e-12, 1e-12)


def test_refusals(tmp_path):
    with pytest.raises(NetDefinitionError, match="normalize is deprecated"):
        make_layer('type: "InfogainLoss" loss_param { normalize: true }', [(2, 3), (2,), (3, 3)])
    with pytest.raises(NetDefinitionError, match="infogain matrix source must be specified"):
        make_layer('type: "InfogainLoss"', [(2, 3), (2,)])
    with pytest.raises(NetDefinitionError, match="infogain matrix: .*no such binaryproto file"):
        make_layer(f'type: "InfogainLoss" infogain_loss_param {{ source: "{tmp_path}/none" }}',
                   [(2, 3), (2,)])
    path = tmp_path / "H2.binaryproto"
    write_binaryproto(path, np.eye(2))
    with pytest.raises(NetDefinitionError, match=r"has 4 values, expected 3x3 = 9 for 3 classes"):
        make_layer(f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }}', [(2, 3), (2,)])
    text = net_text(layer_text('type: "InfogainLoss"', bottoms=("x", "l", "h"), tops=("loss",)),
                    {"x": (2, 3), "l": (2,), "h": (2, 2)})
    with pytest.raises(ShapeError, match="must have 3x3 = 9 values"):
        Net(text)
    for prop, what in (([True, True, False], "label inputs"), ([True, False, True], "infogain matrix")):
        with pytest.raises(NetDefinitionError, match=f"cannot backpropagate to .*{what}"):
            forward_backward('type: "InfogainLoss"', [X, LAB, np.eye(3)], [1.0], propagate=prop)


def test_bad_label():
    with pytest.raises(NetDefinitionError, match="label 3 outside .0, 3."):
        forward_backward('type: "InfogainLoss"', [X, np.array([0.0, 3.0]), np.eye(3)])


def test_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2))
    lab = np.array([[0.0, 2.0], [1.0, 1.0]])
    layer, b, t = make_layer('type: "InfogainLoss" loss_param { ignore_label: 2 normalization: FULL }',
                             [x.shape, lab.shape, (3, 3)], bottom_values=[x, lab, rng.random((3, 3))])
    check_gradient(layer, b, t, check_bottoms=[0])


def test_parity(tmp_path):
    rng = np.random.default_rng(20)
    path = tmp_path / "H.binaryproto"
    write_binaryproto(path, rng.random((3, 3)))
    feed = {"x": rng.standard_normal((2, 3, 2)).astype(np.float32),
            "l": np.array([[0, 2], [1, 1]], np.float32)}
    check_parity(layer_text(f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }} '
                            'loss_param { ignore_label: 2 }', bottoms=("x", "l"), tops=("loss", "prob")),
                 {"x": (2, 3, 2), "l": (2, 2)}, feed)
    # H as bottom[2]: force_backward would ask for its gradient (Caffe refuses), so a learned Scale
    # before the layer gives bottom 0 its gradient instead
    layer = layer_text('type: "Scale" scale_param { filler { type: "gaussian" } }', tops=("xs",), name="pre")
    layer += layer_text('type: "InfogainLoss" infogain_loss_param { axis: 2 } loss_param { '
                        'normalization: BATCH_SIZE }', bottoms=("xs", "l2", "h"), tops=("loss",))
    feed = {"x": feed["x"], "l2": np.array([[0, 1, 1], [1, 0, 0]], np.float32),
            "h": rng.random((2, 2)).astype(np.float32)}
    check_parity(layer, {"x": (2, 3, 2), "l2": (2, 3), "h": (2, 2)}, feed, force_backward=False)


@given(outer=st.integers(1, 3), c=st.integers(1, 4), inner=st.integers(1, 3),
       ignore=st.sampled_from([None, 0, 1]), mode=st.sampled_from(["FULL", "VALID", "BATCH_SIZE", "NONE"]),
       axis_last=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_against_reference(outer, c, inner, ignore, mode, axis_last, seed):
    rng = np.random.default_rng(seed)
    if axis_last:              # axis -1 of (outer, inner, C): positions are outer * inner
        x = rng.standard_normal((outer, inner, c))
        axis, lab_shape = -1, (outer, inner)
    else:
        x = rng.standard_normal((outer, c, inner))
        axis, lab_shape = 1, (outer, inner)
    lab = rng.integers(0, c, lab_shape).astype(np.float64)
    h = rng.random((c, c))
    params = f"infogain_loss_param {{ axis: {axis} }} loss_param {{ normalization: {mode} "
    params += "" if ignore is None else f"ignore_label: {ignore} "
    params += "}"
    _, (y,), (dx, _, _) = forward_backward(f'type: "InfogainLoss" {params}', [x, lab, h], [1.5],
                                           propagate=[True, False, False])
    loss_ref, _ = ref.infogain_ref(x, lab, h, axis, ignore, mode)
    assert float(y) == pytest.approx(loss_ref)
    assert_close(dx, ref.infogain_grad_ref(x, lab, h, axis, ignore, mode, 1.5), 1e-12, 1e-12)
