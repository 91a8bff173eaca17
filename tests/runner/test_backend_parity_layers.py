"""Layer parity: each layer type as a one-layer net (inline prototxt, Input layers for the bottoms,
``force_backward``) built on the cpu backend and on the cuda backend (Numba's simulator in CI) with
the same weights and inputs; forward + backward, then every blob's data and diff and every
parameter's data and diff must agree.

Top diffs of non-loss layers are set to the same random values on both nets; loss layers get
their loss weight from the Net. Shapes are tiny (the simulator runs every thread in Python).
Tolerances: 1e-4 relative + 1e-5 absolute elementwise (GEMM/convolution sums reorder).
"""
from __future__ import annotations

import numpy as np
import pytest

from runner import Net
from tests.helpers import assert_close

RTOL, ATOL = 1e-4, 1e-5


def _input(name: str, shape) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "in_{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def _net_text(layer: str, inputs: dict) -> str:
    return "force_backward: true\n" + "".join(_input(n, s) for n, s in inputs.items()) + layer


X4 = {"x": (2, 3, 4, 4)}
X2 = {"x": (3, 5)}
PAIR = {"a": (2, 3, 2, 3), "b": (2, 3, 2, 3)}
TRIPLE = {"a": (2, 3, 2, 2), "b": (2, 3, 2, 2), "c": (2, 3, 2, 2)}


def _L(body: str, bottoms=("x",), tops=("y",), name="L") -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" {b} {t} {body} }}\n'


# (id, layer text, inputs {name: shape}, integer-valued inputs {name: (low, high)}, phase)
CASES = [
    ("conv", _L('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 '
                'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } }'),
     X4, {}, "TRAIN"),
    ("conv_group_1x1", _L('type: "Convolution" convolution_param { num_output: 6 kernel_size: 1 group: 3 '
                          'weight_filler { type: "gaussian" std: 0.5 } bias_term: false }'),
     X4, {}, "TRAIN"),
    ("deconv", _L('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 '
                  'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } }'),
     {"x": (2, 3, 3, 3)}, {}, "TRAIN"),
    ("ip", _L('type: "InnerProduct" inner_product_param { num_output: 4 weight_filler { type: "gaussian" '
              'std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } }'), X4, {}, "TRAIN"),
    ("ip_transpose", _L('type: "InnerProduct" inner_product_param { num_output: 3 transpose: true '
                        'weight_filler { type: "gaussian" std: 0.5 } }'), X2, {}, "TRAIN"),
    ("maxpool", _L('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
                   tops=("y", "mask")), X4, {}, "TRAIN"),
    ("avepool", _L('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 stride: 2 }'), X4, {}, "TRAIN"),
    ("global_pool", _L('type: "Pooling" pooling_param { pool: AVE global_pooling: true }'), X4, {}, "TRAIN"),
    ("relu_inplace", _L('type: "ReLU"', tops=("x",)), X4, {}, "TRAIN"),
    ("leaky_relu", _L('type: "ReLU" relu_param { negative_slope: 0.2 }'), X4, {}, "TRAIN"),
    ("sigmoid", _L('type: "Sigmoid"'), X2, {}, "TRAIN"),
    ("tanh", _L('type: "TanH"'), X2, {}, "TRAIN"),
    ("absval", _L('type: "AbsVal"'), X2, {}, "TRAIN"),
    ("bnll", _L('type: "BNLL"'), X2, {}, "TRAIN"),
    ("elu", _L('type: "ELU" elu_param { alpha: 0.5 }'), X2, {}, "TRAIN"),
    ("power", _L('type: "Power" power_param { power: 2 scale: 0.5 shift: 2 }'), X2, {}, "TRAIN"),
    ("exp", _L('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }'), X2, {}, "TRAIN"),
    ("log", _L('type: "Log" log_param { shift: 10 }'), X2, {}, "TRAIN"),
    ("dropout", _L('type: "Dropout" dropout_param { dropout_ratio: 0.4 }'), X4, {}, "TRAIN"),
    ("dropout_test", _L('type: "Dropout"'), X2, {}, "TEST"),
    ("softmax", _L('type: "Softmax"'), X4, {}, "TRAIN"),
    ("softmax_loss", _L('type: "SoftmaxWithLoss" loss_param { ignore_label: 2 }', bottoms=("x", "label"),
                        tops=("loss",)), {"x": (2, 4, 2, 3), "label": (2, 1, 2, 3)}, {"label": (0, 4)},
     "TRAIN"),
    ("softmax_loss_probs", _L('type: "SoftmaxWithLoss"', bottoms=("x", "label"), tops=("loss", "prob")),
     {"x": (3, 5), "label": (3,)}, {"label": (0, 5)}, "TRAIN"),
    ("lrn_across", _L('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }'), X4, {},
     "TRAIN"),
    ("lrn_within", _L('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 '
                      'norm_region: WITHIN_CHANNEL }'), X4, {}, "TRAIN"),
    ("concat", _L('type: "Concat" concat_param { axis: 1 }', bottoms=("a", "b")), PAIR, {}, "TRAIN"),
    ("slice", _L('type: "Slice" slice_param { axis: 1 slice_point: 1 }', tops=("y", "z")), X4, {},
     "TRAIN"),
    ("eltwise_sum", _L('type: "Eltwise" eltwise_param { operation: SUM coeff: 2 coeff: -1 coeff: 0.5 }',
                       bottoms=("a", "b", "c")), TRIPLE, {}, "TRAIN"),
    ("eltwise_prod", _L('type: "Eltwise" eltwise_param { operation: PROD }', bottoms=("a", "b", "c")),
     TRIPLE, {}, "TRAIN"),
    ("eltwise_max", _L('type: "Eltwise" eltwise_param { operation: MAX }', bottoms=("a", "b", "c")),
     TRIPLE, {}, "TRAIN"),
    ("batchnorm", _L('type: "BatchNorm" batch_norm_param { use_global_stats: false }'), X4, {}, "TRAIN"),
    ("scale_bias", _L('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" std: 1 } '
                      'bias_filler { type: "gaussian" std: 1 } }'), X4, {}, "TRAIN"),
    ("scale_bottom", _L('type: "Scale" scale_param { axis: 0 }', bottoms=("a", "s")),
     {"a": (2, 3, 2), "s": (2, 3)}, {}, "TRAIN"),
    ("bias", _L('type: "Bias" bias_param { filler { type: "gaussian" std: 1 } }'), X4, {}, "TRAIN"),
    ("flatten", _L('type: "Flatten"'), X4, {}, "TRAIN"),
    ("reshape", _L('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }'), X4, {}, "TRAIN"),
    ("euclidean", _L('type: "EuclideanLoss"', bottoms=("a", "b"), tops=("loss",)), PAIR, {}, "TRAIN"),
    ("sigmoid_ce", _L('type: "SigmoidCrossEntropyLoss"', bottoms=("x", "t"), tops=("loss",)),
     {"x": (3, 4), "t": (3, 4)}, {"t": (0, 2)}, "TRAIN"),
    ("contrastive", _L('type: "ContrastiveLoss" contrastive_loss_param { margin: 2 }',
                       bottoms=("a", "b", "sim"), tops=("loss",)),
     {"a": (4, 3), "b": (4, 3), "sim": (4, 1, 1, 1)}, {"sim": (0, 2)}, "TRAIN"),
    ("accuracy", _L('type: "Accuracy" accuracy_param { top_k: 2 }', bottoms=("x", "label")),
     {"x": (5, 4), "label": (5,)}, {"label": (0, 4)}, "TEST"),
    ("argmax", _L('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }'), X2, {}, "TEST"),
    ("split", _L('type: "Split"', tops=("y", "z")), X2, {}, "TRAIN"),
    ("silence", _L('type: "Silence"', tops=()), X2, {}, "TRAIN"),
    ("dummy_data", _L('type: "DummyData" dummy_data_param { shape { dim: 2 dim: 3 } '
                      'data_filler { type: "gaussian" std: 2 } }', bottoms=(), tops=("d",)), X2, {}, "TRAIN"),
]


def _values(inputs: dict, ints: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in inputs.items():
        if name in ints:
            lo, hi = ints[name]
            out[name] = rng.integers(lo, hi, shape).astype(np.float32)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _compare(cnet: Net, gnet: Net, what: str) -> None:
    for name, cb in cnet.blobs.items():
        gb = gnet.blobs[name]
        assert gb.shape == cb.shape, f"{what}: blob {name!r} shape {gb.shape} != {cb.shape}"
        assert_close(gb.host_data(), cb.host_data(), RTOL, ATOL, name=f"{what}: blob {name!r} data")
        assert_close(gb.host_diff(), cb.host_diff(), RTOL, ATOL, name=f"{what}: blob {name!r} diff")
    for lname, blobs in cnet.params.items():
        for j, (cp, gp) in enumerate(zip(blobs, gnet.params[lname])):
            assert_close(gp.host_data(), cp.host_data(), RTOL, ATOL, name=f"{what}: {lname}[{j}] data")
            assert_close(gp.host_diff(), cp.host_diff(), RTOL, ATOL, name=f"{what}: {lname}[{j}] diff")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_parity(case):
    name, layer, inputs, ints, phase = case
    text = _net_text(layer, inputs)
    cnet = Net(text, phase=phase, device="cpu", seed=5)
    gnet = Net(text, phase=phase, device="cuda", seed=5)
    for lname, blobs in cnet.params.items():          # same weights (fillers drew on the host anyway)
        for cp, gp in zip(blobs, gnet.params[lname]):
            gp.data = cp.host_data()
    feed = _values(inputs, ints, seed=len(name))
    closs = cnet.forward_loss(**feed)
    gloss = gnet.forward_loss(**feed)
    assert gloss == pytest.approx(closs, rel=RTOL, abs=ATOL)
    rng = np.random.default_rng(1)
    loss_tops = {t.name for _, t, _ in cnet._loss_tops}
    for tname in cnet.top_names["L"]:
        blob = cnet.blobs[tname]
        if tname not in loss_tops:
            dy = rng.standard_normal(blob.shape).astype(np.float32)
            blob.diff = dy
            gnet.blobs[tname].diff = dy
    for net in (cnet, gnet):
        if phase == "TRAIN":
            net.backward()
    _compare(cnet, gnet, name)
    # a second iteration: parameter diffs accumulate, buffers are reused
    cnet.forward_loss(**feed)
    gnet.forward_loss(**feed)
    _compare(cnet, gnet, name + " (2nd forward)")


def test_reshape_smaller_batch_reuses_memory():
    """Feeding a smaller batch reshapes within capacity (no reallocation) on the cuda backend;
    the outputs match the cpu net."""
    text = _net_text(_L('type: "InnerProduct" inner_product_param { num_output: 3 weight_filler '
                        '{ type: "gaussian" std: 1 } }'), X2)
    cnet = Net(text, phase="TEST", device="cpu", seed=1)
    gnet = Net(text, phase="TEST", device="cuda", seed=1)
    gnet.params["L"][0].data = cnet.params["L"][0].host_data()
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    gnet.forward(x=x)
    buf = gnet.blobs["y"]._data.dev
    out = gnet.forward(x=x[:2])
    assert gnet.blobs["y"]._data.dev is buf
    assert_close(out["y"], cnet.forward(x=x[:2])["y"], RTOL, ATOL, name="y")
    assert isinstance(out["y"], np.ndarray) and out["y"].shape == (2, 3)
