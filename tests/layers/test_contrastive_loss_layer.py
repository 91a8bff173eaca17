import numpy as np
import pytest

from tests.helpers import assert_close
from tests.layers._common import check_gradient, forward, make_layer


def _data():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 3, 1, 1)) * 0.5, rng.standard_normal((6, 3, 1, 1)) * 0.5
    sim = np.array([1, 0, 1, 0, 0, 1], np.float64)
    return a, b, sim


@pytest.mark.parametrize("legacy", [False, True])
def test_forward(legacy):
    a, b, sim = _data()
    text = f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1.5 legacy_version: {str(legacy).lower()} }}'  # noqa: E501
    _, (loss,) = forward(text, [a, b, sim], dtype=np.float64)
    d2 = ((a - b) ** 2).reshape(6, -1).sum(1)
    dis = np.maximum(1.5 - d2, 0) if legacy else np.maximum(1.5 - np.sqrt(d2), 0) ** 2
    assert_close(loss, np.array(np.where(sim > 0, d2, dis).sum() / 12), 1e-10, 0)


@pytest.mark.parametrize("legacy", [False, True])
def test_gradient(legacy):
    a, b, sim = _data()
    text = f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1.5 legacy_version: {str(legacy).lower()} }}'  # noqa: E501
    layer, bl, t = make_layer(text, [a.shape, b.shape, sim.shape], bottom_values=[a, b, sim])
    # the non-legacy gradient has Caffe's +1e-4 in its denominator: compare loosely
    check_gradient(layer, bl, t, check_bottoms=[0, 1], threshold=1e-3 if legacy else 2e-3)
