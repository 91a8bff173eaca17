"""kernels/permute.py: every permutation of drawn 1-5-D shapes equals numpy's transpose (exact);
the axis merging keeps the permutation."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import permute as K

dims = st.lists(st.integers(1, 4), min_size=1, max_size=5)


@given(shape=dims, data=st.data())
def test_permute_matches_transpose(shape, data):
    order = data.draw(st.permutations(range(len(shape))))
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    y = cuda.device_array(x.size, np.float32)
    K.permute(cuda.to_device(x), y, shape, order)
    np.testing.assert_array_equal(y.copy_to_host(), x.transpose(order).reshape(-1))


def test_merged_axes_keep_the_permutation():
    for shape in [(2, 3, 4, 5), (1, 3, 1, 5), (2, 1, 1, 1), (1, 1)]:
        x = np.arange(int(np.prod(shape))).reshape(shape)
        for order in itertools.permutations(range(len(shape))):
            ms, mo = K.merged_axes(shape, order)
            np.testing.assert_array_equal(x.reshape(ms).transpose(mo).reshape(-1),
                                          x.transpose(order).reshape(-1))
    assert K.merged_axes((2, 3, 4, 5), (0, 2, 3, 1)) == ((2, 3, 20), (0, 2, 1))


def test_bad_order_is_refused():
    import pytest
    with pytest.raises(ValueError, match="not a permutation"):
        K.permute(cuda.device_array(6, np.float32), cuda.device_array(6, np.float32), (2, 3), (0, 0))
