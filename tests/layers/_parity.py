"""cpu-vs-cuda parity of one layer as a one-layer net (Input layers feed its bottoms), in the same
way as tests/runner/test_backend_parity_layers.py: the same weights and inputs on both backends,
forward (+ backward in TRAIN with random top diffs), every blob's data and diff and every
parameter's data and diff compared; then a second iteration (parameter diffs accumulate, buffers
are reused)."""
from __future__ import annotations

import numpy as np
import pytest

from runner import Net
from tests.helpers import assert_close

RTOL, ATOL = 1e-4, 1e-5


def layer_text(body: str, bottoms=("x",), tops=("y",), name="L") -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" {b} {t} {body} }}\n'


def net_text(layer: str, inputs: dict, force_backward: bool = True) -> str:
    head = "force_backward: true\n" if force_backward else ""
    for name, shape in inputs.items():
        dims = " ".join(f"dim: {d}" for d in shape)
        head += (f'layer {{ name: "in_{name}" type: "Input" top: "{name}" '
                 f'input_param {{ shape {{ {dims} }} }} }}\n')
    return head + layer


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


def check_parity(layer: str, inputs: dict, feed: dict, phase: str = "TRAIN",
                 force_backward: bool = True) -> None:
    """Build the net on both backends, run forward/backward twice, compare everything."""
    text = net_text(layer, inputs, force_backward)
    cnet = Net(text, phase=phase, device="cpu", seed=5)
    gnet = Net(text, phase=phase, device="cuda", seed=5)
    for lname, blobs in cnet.params.items():
        for cp, gp in zip(blobs, gnet.params[lname]):
            gp.data = cp.host_data()
    rng = np.random.default_rng(1)
    loss_tops = {t.name for _, t, _ in cnet._loss_tops}
    for it in range(2):
        closs = cnet.forward_loss(**feed)
        gloss = gnet.forward_loss(**feed)
        assert gloss == pytest.approx(closs, rel=RTOL, abs=ATOL)
        if phase == "TRAIN":
            for tname in cnet.top_names["L"]:
                if tname not in loss_tops:
                    dy = rng.standard_normal(cnet.blobs[tname].shape).astype(np.float32)
                    cnet.blobs[tname].diff = dy
                    gnet.blobs[tname].diff = dy
            cnet.backward()
            gnet.backward()
        _compare(cnet, gnet, f"iteration {it}")
