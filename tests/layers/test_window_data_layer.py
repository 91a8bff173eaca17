"""WindowData (Caffe 1.0's WindowDataLayer) on a small window file and PNG images written here:
the file format, fg/bg thresholds and fractions (bg windows first, labels forced to 0), the warp
against OpenCV's own crop + cv2.resize, context_pad and crop_mode "square" geometry pinned with
hand-computed numbers, mirroring, mean_value / mean_file and scale, batch determinism (seek), and
clear errors for bad files."""
from __future__ import annotations

import numpy as np
import pytest

from netdef.errors import CaffeError
from netdef.weights import write_binaryproto
from runner import Net
from runner.data.window import warp_geometry

cv2 = pytest.importorskip("cv2")


def _images(tmp_path, sizes):
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), img)                 # BGR on disk order handled by OpenCV
        paths.append(path)
    return paths


def _window_file(tmp_path, entries) -> str:
    """entries: [(path, (C, H, W), [(label, overlap, x1, y1, x2, y2), ...])]"""
    lines = []
    for i, (path, (c, h, w), windows) in enumerate(entries):
        lines += [f"# {i}", str(path), str(c), str(h), str(w), str(len(windows))]
        lines += [" ".join(str(v) for v in win) for win in windows]
    f = tmp_path / "windows.txt"
    f.write_text("\n".join(lines) + "\n")
    return str(f)


def _net(source, crop=6, batch=2, extra="", transform="", fg_fraction=0.5):
    return (f'layer {{ name: "win" type: "WindowData" top: "data" top: "label" '
            f'window_data_param {{ source: "{source}" batch_size: {batch} fg_fraction: {fg_fraction} '
            f'{extra} }} '
            f'transform_param {{ crop_size: {crop} {transform} }} }}')


def _warp(img, x1, y1, x2, y2, out_hw):
    return cv2.resize(img[y1:y2 + 1, x1:x2 + 1], (out_hw[1], out_hw[0]),
                      interpolation=cv2.INTER_LINEAR).astype(np.float32).transpose(2, 0, 1)


def test_warp_mean_scale_and_fg_bg_order(tmp_path):
    p0, p1 = _images(tmp_path, [(9, 10), (7, 8)])
    src = _window_file(tmp_path, [
        (p0, (3, 9, 10), [(3, 0.8, 1, 2, 6, 7),      # fg (>= 0.5), label 3
                          (5, 0.3, 0, 0, 4, 3)]),    # between thresholds 0.2 and 0.5: dropped
        (p1, (3, 7, 8), [(7, 0.1, 2, 1, 7, 5)]),     # bg (< 0.2): label forced to 0
    ])
    net = Net(_net(src, extra="bg_threshold: 0.2 scale: 0.5", transform="mean_value: 10 "
                   "mean_value: 20 mean_value: 30"), phase="TRAIN", seed=1)
    out = net.forward()
    assert out["data"].shape == (2, 3, 6, 6) and out["label"].tolist() == [0.0, 3.0]
    mean = np.array([10, 20, 30], np.float32).reshape(3, 1, 1)
    bg = (_warp(cv2.imread(str(p1)), 2, 1, 7, 5, (6, 6)) - mean) * np.float32(0.5)
    fg = (_warp(cv2.imread(str(p0)), 1, 2, 6, 7, (6, 6)) - mean) * np.float32(0.5)
    np.testing.assert_allclose(out["data"][0], bg, atol=1e-5)
    np.testing.assert_allclose(out["data"][1], fg, atol=1e-5)


def test_context_pad_geometry_hand_computed():
    """crop 8, context_pad 2: context_scale = 8/4 = 2; window (2,2)-(5,5): half 2, centre 4 ->
    (0,0)-(8,8), 9x9 unclipped; the 8x8 image clips x2, y2 to 7 (pad 1 pixel each side at the
    end); scale 8/9: the clipped 8x8 warps to round(7.11) = 7, end padding round(0.89) = 1. The
    crop holds the warp at offset (0, 0), or (0, 1) when mirrored (Caffe mirrors the padding)."""
    assert warp_geometry(2, 2, 5, 5, 8, 8, 8, 2, False, False) == ((0, 0, 7, 7), (7, 7), (0, 0))
    assert warp_geometry(2, 2, 5, 5, 8, 8, 8, 2, False, True) == ((0, 0, 7, 7), (7, 7), (0, 1))


def test_square_geometry_hand_computed():
    """crop 6, no context: window (1,2)-(4,3) is 4 wide, 2 high; square takes the larger half
    (2): centre (3, 3) -> (1,1)-(5,5), warped 5x5 -> 6x6 (scale 6/5)."""
    assert warp_geometry(1, 2, 4, 3, 10, 10, 6, 0, True, False) == ((1, 1, 5, 5), (6, 6), (0, 0))
    assert warp_geometry(1, 2, 4, 3, 10, 10, 6, 0, False, False) == ((1, 2, 4, 3), (6, 6), (0, 0))


def test_context_pad_output(tmp_path):
    (p0,) = _images(tmp_path, [(8, 8)])
    src = _window_file(tmp_path, [(p0, (3, 8, 8), [(1, 0.9, 2, 2, 5, 5), (1, 0.0, 0, 0, 3, 3)])])
    net = Net(_net(src, crop=8, extra="context_pad: 2"), phase="TRAIN", seed=0)
    out = net.forward()
    want = np.zeros((3, 8, 8), np.float32)
    want[:, :7, :7] = _warp(cv2.imread(str(p0)), 0, 0, 7, 7, (7, 7))
    np.testing.assert_allclose(out["data"][1], want, atol=1e-5)


def test_mirror_flips_the_window(tmp_path):
    (p0,) = _images(tmp_path, [(6, 7)])
    src = _window_file(tmp_path, [(p0, (3, 6, 7), [(2, 0.9, 1, 0, 5, 4), (2, 0.1, 0, 0, 6, 5)])])
    net = Net(_net(src, crop=5, batch=8, transform="mirror: true"), phase="TRAIN", seed=3)
    plain = _warp(cv2.imread(str(p0)), 1, 0, 5, 4, (5, 5))
    seen = set()
    for _ in range(3):
        for item in net.forward()["data"][4:]:
            if np.allclose(item, plain, atol=1e-5):
                seen.add("plain")
            else:
                np.testing.assert_allclose(item, plain[:, :, ::-1], atol=1e-5)
                seen.add("mirrored")
    assert seen == {"plain", "mirrored"}


def test_mean_file_is_indexed_at_the_crop_offset(tmp_path):
    (p0,) = _images(tmp_path, [(6, 6)])
    src = _window_file(tmp_path, [(p0, (3, 6, 6), [(1, 0.9, 0, 0, 5, 5), (1, 0.1, 0, 0, 5, 5)])])
    mean = np.random.default_rng(1).random((1, 3, 8, 8)).astype(np.float32) * 50
    write_binaryproto(tmp_path / "mean.binaryproto", mean)
    net = Net(_net(src, crop=4, transform=f'mean_file: "{tmp_path / "mean.binaryproto"}"'),
              phase="TRAIN", seed=0)
    want = _warp(cv2.imread(str(p0)), 0, 0, 5, 5, (4, 4)) - mean[0, :, 2:6, 2:6]   # offset (8-4)/2
    np.testing.assert_allclose(net.forward()["data"][1], want, atol=1e-4)


def test_batches_depend_only_on_seed_and_index(tmp_path):
    paths = _images(tmp_path, [(6, 6), (7, 7)])
    src = _window_file(tmp_path, [(paths[0], (3, 6, 6), [(1, 0.9, 0, 0, 3, 3), (2, 0.7, 1, 1, 5, 5)]),
                                  (paths[1], (3, 7, 7), [(0, 0.0, 0, 0, 6, 6), (4, 0.1, 2, 2, 4, 4)])])
    a = Net(_net(src, crop=4, batch=4, transform="mirror: true"), phase="TRAIN", seed=5)
    b = Net(_net(src, crop=4, batch=4, transform="mirror: true"), phase="TRAIN", seed=5)
    first = [a.forward()["data"].copy() for _ in range(3)]
    b.layers[0].seek(2)
    np.testing.assert_array_equal(b.forward()["data"], first[2])


def test_errors(tmp_path):
    (p0,) = _images(tmp_path, [(5, 5)])
    with pytest.raises(CaffeError, match="failed to open window file"):
        Net(_net(tmp_path / "nope.txt"), phase="TRAIN")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CaffeError, match="is empty"):
        Net(_net(empty), phase="TRAIN")
    src = _window_file(tmp_path, [(p0, (3, 5, 5), [(0, 0.9, 0, 0, 2, 2)])])
    with pytest.raises(CaffeError, match="foreground labels must be > 0"):
        Net(_net(src), phase="TRAIN")
    src = _window_file(tmp_path, [(p0, (3, 5, 5), [(1, 0.1, 0, 0, 2, 2)])])
    with pytest.raises(CaffeError, match="0 foreground and 1 background"):
        Net(_net(src), phase="TRAIN")
    bad = tmp_path / "bad.txt"
    bad.write_text(f"% 0\n{p0}\n3 5 5 0\n")
    with pytest.raises(CaffeError, match="expected '#'"):
        Net(_net(bad), phase="TRAIN")
    src = _window_file(tmp_path, [(p0, (3, 5, 5), [(1, 0.9, 0, 0, 9, 9), (1, 0.0, 0, 0, 2, 2)])])
    net = Net(_net(src, batch=1, fg_fraction=1), phase="TRAIN")
    with pytest.raises(CaffeError, match="lies outside"):
        net.forward()
