"""Ceil-mode pooling with stride > kernel and no padding can place the last window past the input
(Caffe allows it): MAX gives -FLT_MAX with mask -1, AVE gives 0/0 = NaN. Both backends agree and
neither raises."""
import numpy as np
import pytest

from netdef.geometry import PoolGeometry
from runner.backend import get_backend


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_empty_last_window(device):
    be = get_backend(device)
    # H = W = 6, kernel 2, stride 3, pad 0: Caffe's ceil gives 3 outputs, the last starting at 6
    g = PoolGeometry(n=1, c=1, h=6, w=6, kernel_h=2, kernel_w=2, stride_h=3, stride_w=3, pad_h=0, pad_w=0,
                     out_h=3, out_w=3)
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    xd = be.to_device(x)
    y = be.zeros((1, 1, 3, 3))
    mask = be.zeros((1, 1, 3, 3), np.int32)
    be.max_pool_fwd(xd, y, mask, g)
    yh, mh = be.to_host(y), be.to_host(mask)
    assert yh[0, 0, 0, 0] == 7 and mh[0, 0, 0, 0] == 7
    assert yh[0, 0, 2, 2] == -np.finfo(np.float32).max and mh[0, 0, 2, 2] == -1
    ya = be.zeros((1, 1, 3, 3))
    be.ave_pool_fwd(xd, ya, g)
    ya = be.to_host(ya)
    assert ya[0, 0, 0, 0] == pytest.approx((0 + 1 + 6 + 7) / 4)
    assert np.isnan(ya[0, 0, 2, 2])
    dx = be.zeros((1, 1, 6, 6))
    be.max_pool_bwd(be.to_device(np.ones((1, 1, 3, 3), np.float32)), mask, dx, g)
    assert be.to_host(dx).sum() == 4      # the empty windows route nothing
