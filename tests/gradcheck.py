"""Caffe's GradientChecker for nbcaffe layers (central differences, kink skip, seed reset).

    layer, bottoms, tops = make_layer('type: "ReLU"', [(2, 3, 4, 5)])
    check_gradient(layer, bottoms, tops, kink=0.0, kink_range=1e-2)

The objective is a fixed random projection of every top, f = sum_t sum(r_t * top_t), so the top
diffs are r_t and one backward gives the gradient of f for every bottom and parameter element; each
element is then perturbed by +-step and f re-evaluated (two forwards per element). Runs on the cpu
backend in float64 by default, so step 1e-3 and a 1e-3 threshold are tight. Caffe's rules:
- the tolerance is ``threshold * max(|computed|, |estimated|, 1)``;
- an element whose *input value* lies within ``kink_range`` of ``kink`` (ReLU at 0, AbsVal at 0)
  is skipped, as Caffe does;
- layers that draw random numbers in forward (Dropout) have their stream reset before every
  forward (``get_rng_state`` / ``set_rng_state``);
- bottoms are restored before every forward, so in-place layers are checked too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf import text_format

from proto import caffe_pb2 as pb
from runner.backend import get_backend
from runner.blob import Blob
from runner.registry import get_layer_class


def make_layer(layer_text: str, bottom_shapes: Sequence[Sequence[int]], phase: str = "TRAIN",
               dtype=np.float64, seed: int = 0, bottom_values: Sequence[np.ndarray] | None = None,
               in_place: bool = False, device: str = "cpu"):
    """(layer, bottoms, tops) for one layer given as LayerParameter text (``type: ...`` plus
    params; bottom/top names are added when missing). Bottoms hold N(0, 1) values unless
    ``bottom_values`` is given; ``in_place`` makes top 0 the bottom 0 blob."""
    lp = pb.LayerParameter()
    text_format.Parse(layer_text, lp)
    if not lp.name:
        lp.name = "layer"
    if not len(lp.bottom):
        lp.bottom.extend(f"b{i}" for i in range(len(bottom_shapes)))
    if not len(lp.top):
        lp.top.append("b0" if in_place else "t0")
    be = get_backend(device, dtype)
    rng = np.random.default_rng(seed)
    bottoms = []
    for i, s in enumerate(bottom_shapes):
        b = Blob(be, s, lp.bottom[i])
        if bottom_values is not None and bottom_values[i] is not None:
            b.data = np.asarray(bottom_values[i])
        else:
            b.data = rng.standard_normal(s)
        bottoms.append(b)
    tops = []
    for j, t in enumerate(lp.top):
        if j < len(lp.bottom) and lp.bottom[j] == t:
            tops.append(bottoms[j])
        else:
            tops.append(Blob(be, (), t))
    cls = get_layer_class(lp.type, lp.name)
    layer = cls(lp, be, phase=phase, rng=np.random.default_rng(seed + 1))
    layer.loss_weights = [0.0] * len(tops)
    layer.setup(bottoms, tops)
    layer.reshape(bottoms, tops)
    return layer, bottoms, tops


def _objective(tops: Sequence[Blob], weights: Sequence[np.ndarray]) -> float:
    return float(sum(np.sum(np.asarray(t.host_data(), dtype=np.float64) * w)
                     for t, w in zip(tops, weights)))


def check_gradient(layer, bottoms: Sequence[Blob], tops: Sequence[Blob], *, step: float = 1e-3,
                   threshold: float = 1e-3, kink: float = 0.0, kink_range: float = -1.0,
                   check_bottoms: Sequence[int] | None = None, check_params: bool = True,
                   seed: int = 7) -> int:
    """Compare the layer's backward with central differences; raises AssertionError naming the
    blob, the element, both values. Returns the number of elements checked."""
    rng = np.random.default_rng(seed)
    if check_bottoms is None:
        check_bottoms = range(len(bottoms))
    check_bottoms = list(check_bottoms)
    saved = [np.array(b.host_data(), dtype=np.float64) for b in bottoms]
    rng_state = layer.get_rng_state()

    def run_forward() -> float:
        for b, v in zip(bottoms, saved):
            b.data = v
        layer.set_rng_state(rng_state)
        layer.reshape(list(bottoms), list(tops))
        layer.forward(list(bottoms), list(tops))
        return _objective(tops, weights)

    # analytic gradient
    for b, v in zip(bottoms, saved):
        b.data = v
    layer.set_rng_state(rng_state)
    layer.reshape(list(bottoms), list(tops))
    layer.forward(list(bottoms), list(tops))
    weights = [rng.standard_normal(t.shape) if t.count else np.zeros(t.shape) for t in tops]
    for t, w in zip(tops, weights):
        t.diff = w
    for p in layer.blobs:
        p.diff = np.zeros(p.shape)
    propagate = [i in check_bottoms for i in range(len(bottoms))]
    layer.backward(list(tops), propagate, list(bottoms))
    computed = [(f"bottom[{i}]", bottoms[i], np.array(bottoms[i].host_diff(), dtype=np.float64), i)
                for i in check_bottoms]
    if check_params:
        computed += [(f"param[{j}]", p, np.array(p.host_diff(), dtype=np.float64), None)
                     for j, p in enumerate(layer.blobs) if layer.param_propagate_down[j]]

    checked = 0
    for what, blob, grad, bi in computed:
        for idx in np.ndindex(*blob.shape) if blob.shape else [()]:
            if bi is not None:
                value = saved[bi][idx]
            else:
                value = float(np.asarray(blob.host_data())[idx])
            if kink_range > 0 and abs(value - kink) < kink_range:
                continue
            if bi is not None:
                saved[bi][idx] = value + step
                fp = run_forward()
                saved[bi][idx] = value - step
                fm = run_forward()
                saved[bi][idx] = value
            else:
                arr = np.array(blob.host_data())
                arr[idx] = value + step
                blob.data = arr
                fp = run_forward()
                arr[idx] = value - step
                blob.data = arr
                fm = run_forward()
                arr[idx] = value
                blob.data = arr
            est = (fp - fm) / (2 * step)
            got = grad[idx]
            scale = max(abs(got), abs(est), 1.0)
            if not abs(got - est) <= threshold * scale:
                raise AssertionError(f"{layer.type} '{layer.name}' {what}{list(idx)}: backward gives "
                                     f"{got!r}, finite differences {est!r} (value {value!r}, "
                                     f"threshold {threshold} x {scale:.3g})")
            checked += 1
    # leave the bottoms as they were
    for b, v in zip(bottoms, saved):
        b.data = v
    return checked
