"""Weight fillers: Caffe's formulas (caffe/filler.hpp), checked statistically on large blobs."""
from __future__ import annotations

import numpy as np
import pytest

from netdef.errors import NetDefinitionError
from proto import caffe_pb2 as pb
from runner.fillers import make_filler_values

RNG = np.random.default_rng


def _fp(**kw) -> pb.FillerParameter:
    return pb.FillerParameter(**kw)


def test_constant_uniform_gaussian():
    assert (make_filler_values((3, 4), _fp(type="constant", value=2.5), RNG(0)) == 2.5).all()
    u = make_filler_values((200, 100), _fp(type="uniform", min=-2, max=3), RNG(0))
    assert u.min() >= -2 and u.max() <= 3 and abs(u.mean() - 0.5) < 0.05
    g = make_filler_values((200, 100), _fp(type="gaussian", mean=1, std=3), RNG(0))
    assert abs(g.mean() - 1) < 0.1 and abs(g.std() - 3) < 0.1
    assert (make_filler_values((2,), _fp(), RNG(0)) == 0).all()   # default: constant 0


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    g = make_filler_values((40, 500), _fp(type="gaussian", std=1, sparse=10), RNG(1))
    assert abs((g != 0).mean() - 10 / 40) < 0.01


def test_positive_unitball_rows_sum_to_one():
    v = make_filler_values((5, 3, 2, 2), _fp(type="positive_unitball"), RNG(2))
    assert (v >= 0).all()
    np.testing.assert_allclose(v.reshape(5, -1).sum(1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("norm,n", [(pb.FillerParameter.FAN_IN, 3 * 5 * 5),
                                    (pb.FillerParameter.FAN_OUT, 64 * 25),
                                    (pb.FillerParameter.AVERAGE, (75 + 1600) / 2)])
def test_xavier_and_msra_variance_norm(norm, n):
    shape = (64, 3, 5, 5)
    x = make_filler_values(shape, _fp(type="xavier", variance_norm=norm), RNG(3))
    lim = np.sqrt(3.0 / n)
    assert np.abs(x).max() <= lim and abs(x.std() - lim / np.sqrt(3)) < 0.03 * lim
    m = make_filler_values(shape, _fp(type="msra", variance_norm=norm), RNG(4))
    assert abs(m.std() - np.sqrt(2.0 / n)) < 0.03 * np.sqrt(2.0 / n)


def test_bilinear_matches_caffe_formula():
    # Caffe: f = ceil(K/2), c = (K - 1) / (2f); weight = (1 - |x/f - c|) * (1 - |y/f - c|)
    v = make_filler_values((2, 1, 4, 4), _fp(type="bilinear"), RNG(0))
    row4 = np.array([0.25, 0.75, 0.75, 0.25])                 # K = 4: f = 2, c = 0.75
    np.testing.assert_allclose(v[0, 0], np.outer(row4, row4))
    np.testing.assert_allclose(v[1, 0], v[0, 0])
    v3 = make_filler_values((1, 1, 3, 3), _fp(type="bilinear"), RNG(0))
    row3 = np.array([0.5, 1.0, 0.5])                           # K = 3: f = 2, c = 0.5 (symmetric)
    np.testing.assert_allclose(v3[0, 0], np.outer(row3, row3))
    with pytest.raises(NetDefinitionError, match="bilinear"):
        make_filler_values((1, 1, 3, 4), _fp(type="bilinear"), RNG(0))


@pytest.mark.parametrize("kind", ["constant", "uniform", "positive_unitball", "xavier", "msra",
                                  "bilinear"])
def test_sparse_only_for_gaussian(kind):
    with pytest.raises(NetDefinitionError, match="sparsity not supported"):
        make_filler_values((2, 2, 2, 2), _fp(type=kind, sparse=1), RNG(0))


def test_caffe_rng_checks():
    with pytest.raises(NetDefinitionError, match="sparse must be >= -1"):
        make_filler_values((4, 2), _fp(type="gaussian", sparse=-2), RNG(0))
    with pytest.raises(NetDefinitionError, match="probability above 1"):
        make_filler_values((4, 2), _fp(type="gaussian", sparse=5), RNG(0))
    with pytest.raises(NetDefinitionError, match="std must be > 0"):
        make_filler_values((4, 2), _fp(type="gaussian", std=0), RNG(0))
    with pytest.raises(NetDefinitionError, match="min 2.0 > max 1.0"):
        make_filler_values((4, 2), _fp(type="uniform", min=2, max=1), RNG(0))
    g = make_filler_values((4, 3), _fp(type="gaussian", sparse=0), RNG(0))
    assert (g == 0).all()                                     # p = 0: every value masked


def test_xavier_fan_out_of_a_1d_blob_is_its_count():
    # Caffe: fan_out = count / shape(1) for >= 2 axes, else count
    x = make_filler_values((400,), _fp(type="xavier", variance_norm=pb.FillerParameter.FAN_OUT),
                           RNG(5))
    assert np.abs(x).max() <= np.sqrt(3.0 / 400) and np.abs(x).max() > 0.9 * np.sqrt(3.0 / 400)


def test_unknown_type_and_reproducibility():
    with pytest.raises(NetDefinitionError, match="unknown filler type 'foo'"):
        make_filler_values((2,), _fp(type="foo"), RNG(0))
    a = make_filler_values((3, 3), _fp(type="xavier"), RNG(9))
    b = make_filler_values((3, 3), _fp(type="xavier"), RNG(9))
    np.testing.assert_array_equal(a, b)
