"""HingeLoss (L1 and L2): hand-computed loss and gradient (margins at 0 give 0), the division by
N (no normalization modes in Caffe's layer), the loss weight, bad labels and no gradient to the
labels, gradient (float64, off the margin kinks), cpu-vs-cuda parity, hypothesis draws against
tests/reference/caffe_extra.py. OpenCV's Caffe importer has no loss layers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers._parity import check_parity, layer_text
from tests.layers._run import forward_backward
from tests.reference import caffe_extra as ref

X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
LAB = np.array([0.0, 1.0])
# margins max(0, 1 + s*x), s = -1 at the label: row 0 (0, 0, 1.5), row 1 (1, 0, 0)


@pytest.mark.parametrize("norm,loss,grad", [
    ("L1", (1.5 + 1) / 2, [[0, 0, 0.5], [0.5, 0, 0]]),                 # sign(m) * s / N
    ("L2", (1.5 ** 2 + 1) / 2, [[0, 0, 1.5], [1.0, 0, 0]]),            # 2 * m * s / N
])
def test_hand_computed(norm, loss, grad):
    _, (y,), (dx, _) = forward_backward(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', [X, LAB],
                                        [1.0], propagate=[True, False])
    assert float(y) == pytest.approx(loss)
    np.testing.assert_allclose(dx, grad)
    _, _, (dx2, _) = forward_backward(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', [X, LAB],
                                      [3.0], propagate=[True, False])
    np.testing.assert_allclose(dx2, 3 * np.array(grad))                 # the loss weight scales


def test_label_at_the_negative_side():
    # the label's own score below 1 counts: x = (0.2, -5) with label 0 -> margin 0.8 at j = 0
    _, (y,), (dx, _) = forward_backward('type: "HingeLoss"', [np.array([[0.2, -5.0]]), np.array([0.0])],
                                        [1.0], propagate=[True, False])
    assert float(y) == pytest.approx(0.8)
    np.testing.assert_allclose(dx, [[-1.0, 0.0]])


def test_bad_label_and_refusal():
    with pytest.raises(NetDefinitionError, match="label 3 outside .0, 3."):
        forward_backward('type: "HingeLoss"', [X, np.array([0.0, 3.0])])
    with pytest.raises(NetDefinitionError, match="cannot backpropagate to label inputs"):
        forward_backward('type: "HingeLoss"', [X, LAB], [1.0])


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_gradient(norm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    lab = np.array([0.0, 3.0, 1.0])
    s = np.ones_like(x)
    s[np.arange(3), lab.astype(int)] = -1
    near = np.abs(1 + s * x) < 0.05                  # off the kink at margin 0
    x[near] += 0.2 * s[near]
    layer, b, t = make_layer(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', [x.shape, lab.shape],
                             bottom_values=[x, lab])
    check_gradient(layer, b, t, check_bottoms=[0])


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_parity(norm):
    rng = np.random.default_rng(18)
    feed = {"x": rng.standard_normal((3, 4)).astype(np.float32), "l": np.array([0, 3, 1], np.float32)}
    check_parity(layer_text(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', bottoms=("x", "l"),
                            tops=("loss",)), {"x": (3, 4), "l": (3,)}, feed)


@given(num=st.integers(1, 4), rest=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       norm=st.sampled_from(["L1", "L2"]), seed=st.integers(0, 2**31 - 1))
def test_against_reference(num, rest, norm, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, *rest)) * 2
    dim = int(np.prod(rest))
    lab = rng.integers(0, dim, num).astype(np.float64)
    _, (y,), (dx, _) = forward_backward(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', [x, lab],
                                        [0.5], propagate=[True, False])
    loss_ref, _ = ref.hinge_ref(x, lab, norm)
    assert float(y) == pytest.approx(loss_ref)
    assert_close(dx, ref.hinge_grad_ref(x, lab, norm, 0.5), 1e-12, 1e-12)
