"""Convolution columns kept from forward to backward (``ConvCache``), on both backends.

The kept columns must never change a result: each backward is compared with the float64 direct
convolution of the input the backward sees. What is checked on top: the cache is armed at the
first backward only (a forward-only net keeps nothing), the next forward fills it, a backward with
valid columns does not read x (the cuda backend gets a NaN x there), a host write to the bottom
between forward and backward makes the layer recompute from the new data (Caffe recomputes im2col
in backward), the budget is respected and given back when a cache goes away.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

from netdef.geometry import ConvGeometry
from runner.backend.base import ConvCache
from runner.backend.cpu import CpuBackend
from runner.backend.cuda import CudaBackend
from tests.helpers import rel_frobenius
from tests.layers._common import make_layer
from tests.reference.conv import conv_backward_ref

G = ConvGeometry(2, 3, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0)     # N=2, C=3, 5x5 -> 4 x 3x3, kernel 3
G1 = ConvGeometry(1, 3, 4, 4, 2, 4, 4, 1, 1)                # pointwise, one image: nothing to keep


def _grads(g: ConvGeometry, x, w, dy):
    """float64 reference (dx, dw) of the direct convolution."""
    pad, stride, dil = (g.pad_h, g.pad_w), (g.stride_h, g.stride_w), (g.dilation_h, g.dilation_w)
    dx, dw, _ = conv_backward_ref(x, w, dy, pad, stride, dil, g.group)
    return dx, dw


def _case(seed: int):
    """Random x, w, dy of geometry G and the float64 reference (dx, dw)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(G.x_shape).astype(np.float32)
    w = rng.standard_normal(G.w_shape).astype(np.float32)
    dy = rng.standard_normal(G.y_shape).astype(np.float32)
    return (x, w, dy) + _grads(G, x, w, dy)


def _step(be, g, x, w, dy, cache, x_for_backward=None):
    """forward (x) then backward (x_for_backward, default x) on ``be``; (dx, dw) on the host."""
    y = be.empty(g.y_shape)
    be.conv_forward(be.to_device(x), be.to_device(w), None, y, g, cache)
    dx = be.empty(g.x_shape)
    dw = be.zeros(g.w_shape)
    xb = x if x_for_backward is None else x_for_backward
    be.conv_backward(be.to_device(xb), be.to_device(w), be.to_device(dy), dx, dw, None, g, cache)
    return np.array(be.to_host(dx)), np.array(be.to_host(dw))


@pytest.mark.parametrize("make", [CpuBackend, CudaBackend], ids=["cpu", "cuda"])
def test_cache_armed_at_first_backward_and_exact(make):
    be = make()
    x, w, dy, rdx, rdw = _case(0)
    cache = ConvCache()
    y = be.empty(G.y_shape)
    be.conv_forward(be.to_device(x), be.to_device(w), None, y, G, cache)
    assert not cache.armed and cache.state is None          # forward alone keeps nothing
    for it in range(3):                                     # 1st: arms; later: kept columns used
        dx, dw = _step(be, G, x, w, dy, cache)
        assert cache.armed and be._kept_columns_bytes == cache.reserved > 0
        assert rel_frobenius(dw, rdw) <= 1e-5 and rel_frobenius(dx, rdx) <= 1e-5, it
    cache.release()
    assert be._kept_columns_bytes == 0 and not cache.armed


def test_cuda_backward_with_valid_columns_does_not_read_x():
    """After forward(x), backward given a NaN x still produces x's gradients: the kept columns."""
    be = CudaBackend()
    x, w, dy, rdx, rdw = _case(1)
    cache = ConvCache()
    _step(be, G, x, w, dy, cache)                           # arms
    dx, dw = _step(be, G, x, w, dy, cache, x_for_backward=np.full_like(x, np.nan))
    assert rel_frobenius(dw, rdw) <= 1e-5 and rel_frobenius(dx, rdx) <= 1e-5
    cache.invalidate()                                      # now backward must read x again
    dx, dw = _step(be, G, x, w, dy, cache)
    assert rel_frobenius(dw, rdw) <= 1e-5


@pytest.mark.parametrize("make", [CpuBackend, CudaBackend], ids=["cpu", "cuda"])
def test_budget_and_release(make):
    be = make()
    x, w, dy, rdx, rdw = _case(2)
    rng = np.random.default_rng(2)
    need = 4 * G.c_in * 9 * G.n * G.out_h * G.out_w
    be.keep_columns_bytes = need + need // 2                # room for one cache, not two
    a, b = ConvCache(), ConvCache()
    _step(be, G, x, w, dy, a)
    dx, dw = _step(be, G, x, w, dy, b)
    assert a.armed and not b.armed and be._kept_columns_bytes == need
    assert rel_frobenius(dw, rdw) <= 1e-5 and rel_frobenius(dx, rdx) <= 1e-5   # b: recomputed
    del a
    gc.collect()
    assert be._kept_columns_bytes == 0                      # the budget came back
    _step(be, G, x, w, dy, b)
    assert b.armed
    if make is CudaBackend:      # a pointwise conv of one image: its columns are x itself
        c = ConvCache()
        _step(be, G1, x[:1, :, :4, :4].copy(), rng.standard_normal(G1.w_shape).astype(np.float32),
              rng.standard_normal(G1.y_shape).astype(np.float32), c)
        assert not c.armed


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_layer_recomputes_after_a_host_write_to_its_bottom(backend):
    """Caffe runs im2col again in backward, so a bottom changed between forward and backward gives
    the gradient of the new data; the layer sees the change through ``Blob.data_version``."""
    text = ('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 bias_term: false '
            'weight_filler { type: "gaussian" std: 0.5 } }')
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal(G.x_shape).astype(np.float32)
    x1 = rng.standard_normal(G.x_shape).astype(np.float32)
    dy = rng.standard_normal(G.y_shape).astype(np.float32)
    layer, bottoms, tops = make_layer(text, [G.x_shape], dtype=np.float32, bottom_values=[x0],
                                      device=backend)
    w = np.array(layer.blobs[0].host_data(), dtype=np.float64)
    for it in range(2):                                      # the 2nd time with an armed cache
        bottoms[0].data[...] = x0
        layer.forward(bottoms, tops)
        bottoms[0].data[...] = x1                            # written after the forward
        tops[0].diff[...] = dy
        layer.blobs[0].diff[...] = 0
        layer.backward(tops, [True], bottoms)
        rdx, rdw = _grads(G, x1.astype(np.float64), w, dy)
        assert rel_frobenius(np.array(layer.blobs[0].host_diff()), rdw) <= 1e-5, it
        assert rel_frobenius(np.array(bottoms[0].host_diff()), rdx) <= 1e-5, it
    # without a write in between, the kept columns serve the backward (and give the same answer)
    bottoms[0].data[...] = x0
    layer.forward(bottoms, tops)
    layer.blobs[0].diff[...] = 0
    layer.backward(tops, [True], bottoms)
    rdx, rdw = _grads(G, x0.astype(np.float64), w, dy)
    assert rel_frobenius(np.array(layer.blobs[0].host_diff()), rdw) <= 1e-5
    assert all(c.armed for c in layer._col_caches)


def test_no_valid_net_writes_a_convolution_bottom_after_it():
    """The invariant the kept columns rely on: a layer after a convolution cannot write the
    convolution's bottom in place (a second reader gets a Split top, and an in-place top then
    names the blob a second time, which the graph refuses as Caffe does)."""
    from google.protobuf import text_format

    from netdef.errors import NetDefinitionError
    from proto import caffe_pb2 as pb
    from runner.net import Net
    text = '''
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
            convolution_param { num_output: 2 kernel_size: 3 } }
    layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }'''
    with pytest.raises(NetDefinitionError, match="produced by multiple sources"):
        Net(text_format.Parse(text, pb.NetParameter()), phase="TRAIN")


@pytest.mark.parametrize("make", [CpuBackend, CudaBackend], ids=["cpu", "cuda"])
def test_not_armed_without_free_memory(make, monkeypatch):
    """Within the budget but without free memory to spare (``columns_fit``), nothing is kept."""
    be = make()
    monkeypatch.setattr(be, "columns_fit", lambda nbytes: False)
    x, w, dy, rdx, rdw = _case(3)
    cache = ConvCache()
    dx, dw = _step(be, G, x, w, dy, cache)
    assert not cache.armed and be._kept_columns_bytes == 0
    assert rel_frobenius(dw, rdw) <= 1e-5 and rel_frobenius(dx, rdx) <= 1e-5
