import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def _ref(x, t, ignore=None):
    p = 1 / (1 + np.exp(-x))
    terms = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    valid = np.ones_like(t, bool) if ignore is None else t != ignore
    return terms[valid].sum(), valid.sum()


def test_forward_default_batch_normalization():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 4)) * 3, rng.integers(0, 2, (3, 4)).astype(np.float64)
    _, (loss,) = forward('type: "SigmoidCrossEntropyLoss"', [x, t], dtype=np.float64)
    assert_close(loss, np.array(_ref(x, t)[0] / 3), 1e-10, 0)


def test_ignore_label_valid_normalization():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 4)), rng.integers(0, 2, (3, 4)).astype(np.float64)
    t[0, 0] = t[2, 1] = -1
    _, (loss,) = forward('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 normalization: VALID }',  # noqa: E501
                         [x, t], dtype=np.float64)
    s, n = _ref(x, t, -1)
    assert_close(loss, np.array(s / n), 1e-10, 0)


@pytest.mark.parametrize("extra", ["", "loss_param { ignore_label: -1 normalization: VALID }"])
def test_gradient(extra):
    t = np.random.default_rng(2).integers(0, 2, (3, 4)).astype(np.float64)
    t[1, 1] = -1 if extra else 1
    layer, b, tops = make_layer(f'type: "SigmoidCrossEntropyLoss" {extra}', [(3, 4), (3, 4)],
                                bottom_values=[None, t])
    check_gradient(layer, b, tops, check_bottoms=[0])
