import numpy as np
import pytest

from netdef.errors import NetDefinitionError
from tests.helpers import assert_close
from tests.layers._common import check_gradient, make_layer
from tests.layers.reference_layers import softmax_ref

X_SHAPE, L_SHAPE = (3, 4, 2), (3, 2)


def _run(extra, labels):
    x = np.random.default_rng(0).standard_normal(X_SHAPE)
    layer, b, t = make_layer(f'type: "SoftmaxWithLoss" top: "loss" top: "prob" {extra}', [X_SHAPE, L_SHAPE],
                             bottom_values=[x, labels])
    layer.forward(b, t)
    return x, layer, b, t


def _labels():
    return np.array([[0, 3], [1, 2], [2, 2]], dtype=np.float64)


@pytest.mark.parametrize("mode,norm", [("FULL", 6), ("VALID", 5), ("BATCH_SIZE", 3), ("NONE", 1)])
def test_forward_normalization_and_ignore(mode, norm):
    lab = _labels()
    x, layer, b, t = _run(f"loss_param {{ ignore_label: 3 normalization: {mode} }}", lab)
    p = softmax_ref(x, 1)
    terms = [-np.log(p[n, int(lab[n, i]), i]) for n in range(3) for i in range(2) if lab[n, i] != 3]
    assert_close(t[0].data, np.array(sum(terms) / norm), 1e-5, 1e-6)
    assert_close(t[1].data, p, 1e-5, 1e-6)


def test_legacy_normalize_false_is_batch_size():
    x, layer, b, t = _run("loss_param { normalize: false }", _labels())
    p = softmax_ref(x, 1)
    lab = _labels()
    ref = sum(-np.log(p[n, int(lab[n, i]), i]) for n in range(3) for i in range(2)) / 3
    assert_close(t[0].data, np.array(ref), 1e-5, 1e-6)


def test_gradient_with_loss_weight_and_ignore():
    layer, b, t = make_layer('type: "SoftmaxWithLoss" loss_param { ignore_label: 3 }', [X_SHAPE, L_SHAPE],
                             bottom_values=[None, _labels()])
    check_gradient(layer, b, t, check_bottoms=[0])


def test_bad_label_and_label_backward():
    with pytest.raises(NetDefinitionError, match="label 7"):
        _run("", np.full(L_SHAPE, 7.0))
    x, layer, b, t = _run("", _labels())
    with pytest.raises(NetDefinitionError, match="label inputs"):
        layer.backward(t, [True, True], b)
