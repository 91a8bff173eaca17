"""cpu vs cuda (Numba's simulator in CI) parity for N-D convolution, STOCHASTIC pooling, SPP and the
recurrent layers, with the one-layer-net harness of tests/runner/test_backend_parity_layers.py (same
weights and inputs, forward + backward twice, every blob's data and diff and every parameter's data
and diff compared): N-D convolution and deconvolution, STOCHASTIC pooling (TRAIN: the same picks
from the shared Philox stream; TEST), SPP, LSTMUnit and LSTM (static input and expose_hidden at
once: the unrolled net runs Slice, InnerProduct, Reshape, Scale, Eltwise, LSTMUnit, Split and Concat
on each backend; ~20 s in the simulator, marked slow). RNN runs the same machinery with TanH steps,
also slow.)"""
from __future__ import annotations

import pytest

from tests.runner.test_backend_parity_layers import _L
from tests.runner.test_backend_parity_layers import test_layer_parity as _parity

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'
REC = f'recurrent_param {{ num_output: 3 {FILL} }}'

# (id, layer text, inputs {name: shape}, integer-valued inputs {name: (low, high)}, phase)
CASES = [
    ("conv3d", _L(f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 3 pad: 1 '
                  f'stride: 2 {FILL} }}'), {"x": (1, 2, 3, 4, 3)}, {}, "TRAIN"),
    ("conv1d_group", _L(f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 '
                        f'dilation: 2 group: 2 {FILL} }}'), {"x": (2, 4, 7)}, {}, "TRAIN"),
    ("deconv3d", _L(f'type: "Deconvolution" convolution_param {{ num_output: 2 kernel_size: 2 '
                    f'stride: 2 pad: 1 {FILL} }}'), {"x": (2, 3, 2, 3, 2)}, {}, "TRAIN"),
    ("sto_pool_train", _L('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }'),
     {"x": (2, 3, 5, 5)}, {"x": (0, 5)}, "TRAIN"),
    ("sto_pool_test", _L('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }'),
     {"x": (2, 2, 4, 5)}, {}, "TEST"),
    ("spp_max", _L('type: "SPP" spp_param { pyramid_height: 3 pool: MAX }'), {"x": (2, 2, 6, 7)}, {},
     "TRAIN"),
    ("spp_ave", _L('type: "SPP" spp_param { pyramid_height: 2 pool: AVE }'), {"x": (2, 2, 5, 4)}, {},
     "TRAIN"),
    ("spp_sto", _L('type: "SPP" spp_param { pyramid_height: 3 pool: STOCHASTIC }'), {"x": (1, 2, 4, 4)},
     {"x": (1, 4)}, "TRAIN"),
    ("lstm_unit", _L('type: "LSTMUnit"', bottoms=("c", "g", "cont"), tops=("y", "h")),
     {"c": (1, 3, 2), "g": (1, 3, 8), "cont": (1, 3)}, {"cont": (0, 2)}, "TRAIN"),
    pytest.param(("lstm_static_exposed", _L(f'type: "LSTM" recurrent_param {{ num_output: 2 '
                                            f'expose_hidden: true {FILL} }}',
                                            bottoms=("x", "cont", "xs", "h0", "c0"),
                                            tops=("y", "hT", "cT")),
                  {"x": (2, 2, 3), "cont": (2, 2), "xs": (2, 2), "h0": (1, 2, 2), "c0": (1, 2, 2)},
                  {"cont": (0, 2)}, "TRAIN"), marks=pytest.mark.slow, id="lstm_static_exposed"),
    pytest.param(("rnn", _L(f'type: "RNN" recurrent_param {{ num_output: 2 {FILL} }}',
                            bottoms=("x", "cont")),
                  {"x": (2, 2, 3), "cont": (2, 2)}, {"cont": (0, 2)}, "TRAIN"),
                 marks=pytest.mark.slow, id="rnn"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] if isinstance(c, tuple) else None for c in CASES])
def test_structured_layer_parity(case):
    _parity(case)
