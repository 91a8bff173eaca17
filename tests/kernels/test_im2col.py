"""kernels/im2col.py against tap-loop references (tests/reference/conv.py) and adjointness.

im2col copies values, so it must match exactly; col2im sums at most kh*kw float32 terms per pixel
(rtol 1e-5, atol 1e-6). Adjointness: <im2col(x), Y> == <x, col2im(Y)> within 1e-5 relative (float64
dot products of the float32 results). Shapes: hypothesis over batch ranges [n0, n1), channels, H, W,
kernel, pad (up to the kernel size), stride (up to kernel + 1), dilation (1-2), plus fixed edge cases;
every version (im2col v1-v3, col2im v1-v3, set through ``PROMOTED``; col2im_v3 is stride-1 only,
so its property test draws stride 1). The output size comes from the reference's own rule
(``tests/reference/conv.py``) and is passed in, as the kernels' callers do. im2col_v3 / col2im_v2 /
col2im_v3 are also launched with a single block so their grid-stride loops (row groups; dx pixels)
run, with row counts that are not multiples of the 4-row unroll / 8-row group, tap counts that are
not multiples of the 4-tap unroll and column counts that are not multiples of the block.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import cuda

from kernels import im2col as I
from kernels._index import magic_div
from kernels._launch import promoted
from tests.helpers import assert_close
from tests.reference.conv import col2im_ref, im2col_ref, out_size
from tests.sizes import MAX_BATCH, MAX_CHANNELS, MAX_SPATIAL


@st.composite
def geometries(draw):
    """(x_shape, n0, n1, kernel, pad, stride, dil) with an output of at least 1x1."""
    N = draw(st.integers(1, MAX_BATCH))
    n0 = draw(st.integers(0, N - 1))
    n1 = draw(st.integers(n0 + 1, N))
    C = draw(st.integers(1, MAX_CHANNELS))
    H = draw(st.integers(1, MAX_SPATIAL))
    W = draw(st.integers(1, MAX_SPATIAL))
    kh = draw(st.integers(1, min(5, H + 2)))
    kw = draw(st.integers(1, min(5, W + 2)))
    ph = draw(st.integers(0, kh))
    pw = draw(st.integers(0, kw))
    sh = draw(st.integers(1, kh + 1))
    sw = draw(st.integers(1, kw + 1))
    dh = draw(st.integers(1, 2))
    dw = draw(st.integers(1, 2))
    if out_size(H, kh, ph, sh, dh) < 1:
        dh, ph = 1, kh
    if out_size(W, kw, pw, sw, dw) < 1:
        dw, pw = 1, kw
    return (N, C, H, W), n0, n1, (kh, kw), (ph, pw), (sh, sw), (dh, dw)


@st.composite
def unit_stride_geometries(draw):
    """geometries() with stride 1 (col2im_v3's domain); dilation and padding still drawn."""
    x_shape, n0, n1, (kh, kw), (ph, pw), _, (dh, dw) = draw(geometries())
    H, W = x_shape[2:]
    if out_size(H, kh, ph, 1, dh) < 1:
        dh, ph = 1, kh
    if out_size(W, kw, pw, 1, dw) < 1:
        dw, pw = 1, kw
    return x_shape, n0, n1, (kh, kw), (ph, pw), (1, 1), (dh, dw)


EDGES = [
    ((2, 3, 5, 4), 0, 2, (1, 1), (0, 0), (1, 1), (1, 1)),   # 1x1 kernel
    ((1, 2, 4, 5), 0, 1, (3, 2), (3, 2), (1, 1), (1, 1)),   # pad >= kernel - 1 (output larger)
    ((2, 2, 7, 6), 1, 2, (2, 2), (0, 1), (3, 4), (1, 1)),   # stride > kernel (gaps)
    ((1, 3, 7, 7), 0, 1, (3, 3), (2, 1), (1, 2), (2, 3)),   # dilation > 1, non-square
    ((3, 1, 3, 6), 1, 3, (1, 4), (0, 0), (2, 1), (1, 1)),   # non-square kernel, chunk in the batch
    ((2, 3, 6, 5), 0, 2, (3, 3), (1, 2), (2, 3), (1, 1)),   # stride 2/3, dilation 1 (col2im fast path)
    ((1, 2, 9, 8), 0, 1, (2, 3), (1, 0), (3, 1), (3, 2)),   # dilation 3 with stride 3 (ties in Caffe's test)
    ((2, 1, 5, 5), 1, 2, (5, 5), (2, 2), (1, 1), (1, 1)),   # conv2's 5x5 pad 2, every pixel near an edge
]


def _out(x_shape, kernel, pad, stride, dil):
    return (out_size(x_shape[2], kernel[0], pad[0], stride[0], dil[0]),
            out_size(x_shape[3], kernel[1], pad[1], stride[1], dil[1]))


def _run_im2col(version, geo, seed):
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    want = im2col_ref(x, n0, n1, kernel, pad, stride, dil)
    col = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    with promoted(I.PROMOTED, **({} if version is None else {"im2col": version})):
        out_hw = _out(x_shape, kernel, pad, stride, dil)
        I.im2col(cuda.to_device(x), n0, n1, *kernel, *pad, *stride, *dil, *out_hw, col)
    got = col.copy_to_host()
    assert_close(got, want, rtol=0, atol=0, name=f"im2col_{version} {geo}")
    return x, got


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_im2col_matches_reference(version, geo, seed):
    _run_im2col(version, geo, seed)


@pytest.mark.parametrize("version", ["v2", "v3"])
@pytest.mark.parametrize("geo", EDGES)
def test_im2col_edges(geo, version):
    _run_im2col(version, geo, 1)


def _v3_args(x_shape, n0, n1, kernel, pad, stride, dil):
    """The int32 geometry and magic numbers of im2col_v3 / col2im_v2 (as the public functions pass)."""
    N, C, H, W = x_shape
    OH = out_size(H, kernel[0], pad[0], stride[0], dil[0])
    OW = out_size(W, kernel[1], pad[1], stride[1], dil[1])
    geo = [np.int32(v) for v in (n0, C, H, W, *kernel, *pad, *stride, *dil, OH, OW)]
    return geo, OH, OW


def test_im2col_v3_grid_stride_rows():
    """One block in y: the 8-row groups are walked by the grid-stride loop; K = 3*3*3 = 27 is not a
    multiple of 4 or 8 (last group: 3 rows), ncols = 2*5*4 = 40 < 256 (a partial block in x)."""
    geo = ((3, 3, 5, 4), 1, 3, (3, 3), (1, 1), (1, 1), (1, 1))
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    x = np.random.default_rng(5).standard_normal(x_shape).astype(np.float32)
    want = im2col_ref(x, n0, n1, kernel, pad, stride, dil)
    K, ncols = want.shape
    args, OH, OW = _v3_args(*geo)
    ngroups = -(-K // I.I2C_ROWS)
    col = cuda.to_device(np.full(want.size, np.nan, np.float32))
    I.im2col_v3[(1, 1), I.I2C_THREADS](
        cuda.to_device(x.ravel()), *args, np.int32(K), np.int32(ncols), np.int32(ngroups),
        *magic_div(OH * OW), *magic_div(OW), *magic_div(9), *magic_div(3), col)
    assert_close(col.copy_to_host().reshape(K, ncols), want, rtol=0, atol=0, name="im2col_v3 1 block")


def test_several_blocks_per_row():
    """ncols = 18*17 = 306 > 256: two blocks in x for im2col_v3 (the blockIdx.x offset), and
    1*2*18*17 = 612 dx pixels over five 128-thread blocks for col2im v2/v3; K = 2*3*3 = 18 (three
    8-row groups, the last of 2 rows)."""
    geo = ((1, 2, 18, 17), 0, 1, (3, 3), (1, 1), (1, 1), (1, 1))
    _run_im2col("v3", geo, 9)
    _run_col2im(geo, 10, "v2")
    _run_col2im(geo, 10, "v3")


def test_col2im_v2_grid_stride_pixels():
    """One block of 128 threads over Nc*C*H*W = 2*2*9*8 = 288 pixels (three grid-stride steps, the
    last a partial one), dilation 2 (the general path) and then dilation 1 (the unrolled path)."""
    for dil in ((2, 2), (1, 1)):
        geo = ((3, 2, 9, 8), 1, 3, (3, 2), (1, 2), (2, 1), dil)
        x_shape, n0, n1, kernel, pad, stride, _ = geo
        args, OH, OW = _v3_args(*geo)
        rng = np.random.default_rng(6)
        col = rng.standard_normal((2 * 3 * 2, (n1 - n0) * OH * OW)).astype(np.float32)
        dx0 = rng.standard_normal(x_shape).astype(np.float32)
        dx = cuda.to_device(dx0.ravel())
        total = (n1 - n0) * 2 * 9 * 8
        I.col2im_v2[1, I.C2I_THREADS](
            cuda.to_device(col.ravel()), *args, np.int32(col.shape[1]), np.int32(total),
            *magic_div(72), *magic_div(8), *magic_div(2), *magic_div(stride[0]),
            *magic_div(stride[1]), *magic_div(dil[0]), *magic_div(dil[1]), dx)
        want = dx0.astype(np.float64)
        want[n0:n1] = col2im_ref(col, x_shape, n0, n1, kernel, pad, stride, dil)
        assert_close(dx.copy_to_host().reshape(x_shape), want, rtol=1e-5, atol=1e-6,
                     name=f"col2im_v2 1 block dil {dil}")


def test_promoted_versions():
    assert I.PROMOTED == {"im2col": "v3", "col2im": "v3"}
    assert {k for k in I.KERNELS} == {f"{op}_v{n}" for op in ("im2col", "col2im") for n in (1, 2, 3)}


def _run_col2im(geo, seed, version=None):
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    rng = np.random.default_rng(seed)
    OH, OW = _out(x_shape, kernel, pad, stride, dil)
    col = rng.standard_normal((x_shape[1] * kernel[0] * kernel[1], (n1 - n0) * OH * OW)).astype(np.float32)
    dx_init = rng.standard_normal(x_shape).astype(np.float32)   # outside [n0, n1) must stay
    dx = cuda.to_device(dx_init)
    with promoted(I.PROMOTED, **({} if version is None else {"col2im": version})):
        I.col2im(cuda.to_device(col), n0, n1, *kernel, *pad, *stride, *dil, OH, OW, dx)
    got = dx.copy_to_host()
    want = dx_init.astype(np.float64)
    want[n0:n1] = col2im_ref(col, x_shape, n0, n1, kernel, pad, stride, dil)
    assert_close(got, want, rtol=1e-5, atol=1e-6, name=f"col2im_{version} {geo}")
    return col, got


@pytest.mark.parametrize("version", ["v1", "v2"])
@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_col2im_matches_reference(version, geo, seed):
    _run_col2im(geo, seed, version)


@given(geo=unit_stride_geometries(), seed=st.integers(0, 2**16))
def test_col2im_v3_matches_reference(geo, seed):
    _run_col2im(geo, seed, "v3")


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
@pytest.mark.parametrize("geo", EDGES)
def test_col2im_edges(geo, version):
    """(v3 at a stride > 1 runs v2: the next older version that applies.)"""
    _run_col2im(geo, 2, version)


def test_col2im_v3_grid_stride_pixels():
    """col2im_v3 with one block of 128 threads over 2*2*9*8 = 288 pixels (three grid-stride steps),
    a 3x2 kernel (6 taps: one unrolled group of 4 and a tail of 2), dilation (2, 3), pad (3, 2)."""
    geo = ((3, 2, 9, 8), 1, 3, (3, 2), (3, 2), (1, 1), (2, 3))
    x_shape, n0, n1, kernel, pad, stride, dil = geo
    args, OH, OW = _v3_args(*geo)
    rng = np.random.default_rng(7)
    col = rng.standard_normal((2 * 3 * 2, (n1 - n0) * OH * OW)).astype(np.float32)
    dx0 = rng.standard_normal(x_shape).astype(np.float32)
    dx = cuda.to_device(dx0.ravel())
    total = (n1 - n0) * 2 * 9 * 8
    I.col2im_v3[1, I.C2I_THREADS](
        cuda.to_device(col.ravel()), *args[:8], *args[10:], np.int32(col.shape[1]), np.int32(total),
        *magic_div(72), *magic_div(8), *magic_div(2), dx)
    want = dx0.astype(np.float64)
    want[n0:n1] = col2im_ref(col, x_shape, n0, n1, kernel, pad, stride, dil)
    assert_close(dx.copy_to_host().reshape(x_shape), want, rtol=1e-5, atol=1e-6, name="col2im_v3 1 block")


@pytest.mark.parametrize("geo", EDGES[1:4] + EDGES[6:7])
def test_adjoint(geo):
    """<im2col(x), Y> == <x, col2im(Y)> with the device kernels (the defaults) on both sides."""
    x, colx = _run_im2col(None, geo, 3)
    Y, dx = _run_col2im(geo, 4)
    _, n0, n1 = geo[:3]
    lhs = float(np.dot(colx.astype(np.float64).ravel(), Y.astype(np.float64).ravel()))
    rhs = float(np.dot(x[n0:n1].astype(np.float64).ravel(), dx[n0:n1].astype(np.float64).ravel()))
    assert abs(lhs - rhs) <= 1e-5 * max(1.0, abs(lhs)), (lhs, rhs)


def test_bad_geometry_raises():
    x = cuda.to_device(np.zeros((1, 1, 3, 3), np.float32))
    col = cuda.to_device(np.zeros((9, 1), np.float32))
    with pytest.raises(ValueError, match="col has shape"):
        I.im2col(x, 0, 1, 3, 3, 1, 1, 1, 1, 1, 1, 3, 3, col)
    with pytest.raises(ValueError, match="empty"):
        I.im2col(x, 0, 1, 5, 5, 0, 0, 1, 1, 1, 1, 0, 1, col)
    with pytest.raises(ValueError, match="image range"):
        I.im2col(x, 0, 2, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, col)


def test_non_contiguous_falls_back():
    """A batch-strided x (x_full[::2]) is not C-contiguous: the promoted v3 (flat views) does not
    apply, v2 (4-D indexing) runs and matches."""
    rng = np.random.default_rng(8)
    x_full = rng.standard_normal((4, 2, 4, 5)).astype(np.float32)
    x = x_full[::2]
    want = im2col_ref(np.ascontiguousarray(x), 0, 2, (2, 2), (1, 0), (1, 1), (1, 1))
    xd = cuda.to_device(x_full)[::2]
    col = cuda.to_device(np.full(want.shape, np.nan, np.float32))
    I.im2col(xd, 0, 2, 2, 2, 1, 0, 1, 1, 1, 1, 5, 4, col)
    assert_close(col.copy_to_host(), want, rtol=0, atol=0, name="im2col strided x")


# ---- conv_forward / conv_backward (kernels/conv.py: im2col + gemm + layout + bias) ------------

from kernels import conv as CV  # noqa: E402
from tests.helpers import rel_frobenius  # noqa: E402
from tests.reference.conv import conv_backward_ref, conv_forward_ref  # noqa: E402

# (N, C, H, W), (Cout, kh, kw), pad, stride, dil, group, images per chunk (via max_col_bytes)
CONV_CASES = [
    ((3, 2, 5, 5), (4, 3, 3), (1, 1), (1, 1), (1, 1), 1, 2),    # chunks of 2 + 1 images
    ((2, 4, 6, 5), (4, 2, 3), (0, 1), (2, 1), (2, 1), 2, 1),    # groups, stride, dilation, non-square
    ((3, 3, 4, 3), (2, 1, 1), (0, 0), (1, 1), (1, 1), 1, 2),    # pointwise, chunked (nc_to_cn as col)
    ((2, 4, 3, 3), (6, 1, 1), (0, 0), (1, 1), (1, 1), 2, 1),    # pointwise, one image per chunk, groups
]


def _conv_setup(case, seed):
    x_shape, (Cout, kh, kw), pad, stride, dil, group, per_chunk = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((Cout, x_shape[1] // group, kh, kw)).astype(np.float32)
    b = rng.standard_normal(Cout).astype(np.float32)
    OH = out_size(x_shape[2], kh, pad[0], stride[0], dil[0])
    OW = out_size(x_shape[3], kw, pad[1], stride[1], dil[1])
    max_bytes = 4 * x_shape[1] * kh * kw * OH * OW * per_chunk
    return rng, x, w, b, (x_shape[0], Cout, OH, OW), max_bytes


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_direct(case):
    rng, x, w, b, y_shape, max_bytes = _conv_setup(case, 11)
    _, _, pad, stride, dil, group, _ = case
    y = cuda.to_device(np.full(y_shape, np.nan, np.float32))
    CV.conv_forward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), y, pad, stride, dil, group,
                    max_col_bytes=max_bytes)
    want = conv_forward_ref(x, w, b, pad, stride, dil, group)
    assert rel_frobenius(y.copy_to_host(), want) <= 1e-5


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_matches_direct(case):
    rng, x, w, b, y_shape, max_bytes = _conv_setup(case, 12)
    _, _, pad, stride, dil, group, _ = case
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dw0 = rng.standard_normal(w.shape).astype(np.float32)      # accumulated onto
    db0 = rng.standard_normal(b.shape).astype(np.float32)
    dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))  # written
    dw = cuda.to_device(dw0)
    db = cuda.to_device(db0)
    CV.conv_backward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), dx, dw, db, pad, stride,
                     dil, group, max_col_bytes=max_bytes)
    rdx, rdw, rdb = conv_backward_ref(x, w, dy, pad, stride, dil, group)
    assert rel_frobenius(dx.copy_to_host(), rdx) <= 1e-5
    assert rel_frobenius(dw.copy_to_host(), dw0 + rdw) <= 1e-5
    assert rel_frobenius(db.copy_to_host(), db0 + rdb) <= 1e-5


def test_conv_backward_partial_and_no_bias():
    """A forward without bias; only dx (x NaN: not read), only dw (w NaN: not read)."""
    case = CONV_CASES[1]
    rng, x, w, b, y_shape, max_bytes = _conv_setup(case, 13)
    _, _, pad, stride, dil, group, _ = case
    y = cuda.device_array(y_shape, np.float32)
    CV.conv_forward(cuda.to_device(x), cuda.to_device(w), None, y, pad, stride, dil, group)
    assert rel_frobenius(y.copy_to_host(), conv_forward_ref(x, w, None, pad, stride, dil, group)) <= 1e-5
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dx = cuda.device_array(x.shape, np.float32)
    x_nan = cuda.to_device(np.full(x.shape, np.nan, np.float32))   # x is not read without dw
    CV.conv_backward(x_nan, cuda.to_device(w), cuda.to_device(dy), dx, None, None, pad, stride, dil, group)
    assert rel_frobenius(dx.copy_to_host(), conv_backward_ref(x, w, dy, pad, stride, dil, group)[0]) <= 1e-5
    dw = cuda.to_device(np.zeros(w.shape, np.float32))
    w_nan = cuda.to_device(np.full(w.shape, np.nan, np.float32))   # w is not read without dx
    CV.conv_backward(cuda.to_device(x), w_nan, cuda.to_device(dy), None, dw, None, pad, stride, dil, group)
    assert rel_frobenius(dw.copy_to_host(), conv_backward_ref(x, w, dy, pad, stride, dil, group)[1]) <= 1e-5


def test_conv_shape_errors():
    x = cuda.to_device(np.zeros((1, 4, 5, 5), np.float32))
    w = cuda.to_device(np.zeros((2, 3, 3, 3), np.float32))
    y = cuda.to_device(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        CV.conv_forward(x, w, None, y)
    w = cuda.to_device(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="output"):
        CV.conv_forward(x, w, None, cuda.to_device(np.zeros((1, 3, 3, 3), np.float32)))


@pytest.mark.parametrize("case", CONV_CASES + [((1, 3, 4, 3), (2, 1, 1), (0, 0), (1, 1), (1, 1), 1, 1)])
def test_conv_kept_columns(case):
    """Forward with ``keep`` leaves the whole batch's columns in it; backward then reads them for
    dW without looking at x (x is NaN there), and writes the column gradient over them (valid
    cleared); a backward with invalid columns runs im2col again; without dx they stay valid. A
    pointwise convolution of one image keeps nothing (col is x itself)."""
    rng, x, w, b, y_shape, max_bytes = _conv_setup(case, 14)
    _, _, pad, stride, dil, group, _ = case
    keep = CV.KeptColumns()
    y = cuda.to_device(np.full(y_shape, np.nan, np.float32))
    CV.conv_forward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), y, pad, stride, dil, group,
                    max_col_bytes=max_bytes, keep=keep)
    assert rel_frobenius(y.copy_to_host(), conv_forward_ref(x, w, b, pad, stride, dil, group)) <= 1e-5
    geo = CV._geometry(x, w, np.empty(y_shape), pad, stride, dil, group, "test")[3]
    kept = CV._keeps(keep, x.shape[0], geo) is not None
    assert keep.valid == kept
    dy = rng.standard_normal(y_shape).astype(np.float32)
    rdx, rdw, _ = conv_backward_ref(x, w, dy, pad, stride, dil, group)
    x_nan = cuda.to_device(np.full(x.shape, np.nan, np.float32))
    dx = cuda.to_device(np.full(x.shape, np.nan, np.float32))
    dw = cuda.to_device(np.zeros(w.shape, np.float32))
    CV.conv_backward(x_nan if kept else cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), dx, dw,
                     None, pad, stride, dil, group, max_col_bytes=max_bytes, keep=keep)
    assert rel_frobenius(dw.copy_to_host(), rdw) <= 1e-5
    assert rel_frobenius(dx.copy_to_host(), rdx) <= 1e-5
    assert not keep.valid
    # columns gone (they hold dcol now): the next backward recomputes them from x; dW only
    dw = cuda.to_device(np.zeros(w.shape, np.float32))
    CV.conv_backward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), None, dw, None, pad,
                     stride, dil, group, max_col_bytes=max_bytes, keep=keep)
    assert rel_frobenius(dw.copy_to_host(), rdw) <= 1e-5
    assert keep.valid == kept


def test_conv_kept_columns_of_another_shape_are_not_used():
    """Columns kept for one geometry are never read by a backward of another (``has`` checks the
    shape): the backward recomputes them from its own x."""
    keep = CV.KeptColumns()
    rng, x, w, b, y_shape, _ = _conv_setup(CONV_CASES[0], 15)
    _, _, pad, stride, dil, group, _ = CONV_CASES[0]
    CV.conv_forward(cuda.to_device(x), cuda.to_device(w), None, cuda.device_array(y_shape, np.float32),
                    pad, stride, dil, group, keep=keep)
    assert keep.valid
    rng, x, w, b, y_shape, _ = _conv_setup(CONV_CASES[1], 16)
    _, _, pad, stride, dil, group, _ = CONV_CASES[1]
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dw = cuda.to_device(np.zeros(w.shape, np.float32))
    CV.conv_backward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), None, dw, None, pad,
                     stride, dil, group, keep=keep)
    assert rel_frobenius(dw.copy_to_host(), conv_backward_ref(x, w, dy, pad, stride, dil, group)[1]) <= 1e-5
