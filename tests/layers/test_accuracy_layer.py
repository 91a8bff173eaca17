import numpy as np

from tests.helpers import assert_close
from tests.layers._common import forward


def _ref(x, lab, k, ignore=None):
    correct = count = 0
    for n in range(x.shape[0]):
        if ignore is not None and lab[n] == ignore:
            continue
        count += 1
        correct += int((x[n] >= x[n, int(lab[n])]).sum() - 1 < k)
    return correct / count


def test_top1_top3_ignore_and_per_class():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    lab = rng.integers(0, 6, 20).astype(np.float32)
    for k in (1, 3):
        _, (acc,) = forward(f'type: "Accuracy" accuracy_param {{ top_k: {k} }}', [x, lab])
        assert_close(acc, np.array(_ref(x, lab, k)), 1e-6, 0)
    _, (acc, pc) = forward('type: "Accuracy" top: "a" top: "pc" accuracy_param { ignore_label: 2 }', [x, lab])
    assert_close(acc, np.array(_ref(x, lab, 1, ignore=2)), 1e-6, 0)
    pred = x.argmax(1)
    for c in range(6):
        sel = lab == c
        want = 0.0 if c == 2 or not sel.any() else (pred[sel] == c).mean()
        assert abs(pc[c] - want) < 1e-6


def test_ties_count_against():
    x = np.array([[1.0, 1.0, 0.0]], np.float32)
    _, (acc,) = forward('type: "Accuracy"', [x, np.array([1.0], np.float32)])
    assert acc == 0.0   # Caffe 1.0: another class with an equal score beats the label at top-1


def test_spatial_axis():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    lab = rng.integers(0, 4, (2, 3)).astype(np.float32)
    _, (acc,) = forward('type: "Accuracy"', [x, lab])
    assert_close(acc, np.array((x.argmax(1) == lab).mean()), 1e-6, 0)
