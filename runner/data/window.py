"""WindowData source (Caffe 1.0's WindowDataLayer): windows of images listed in a window file,
sampled into foreground / background batches, cropped (with context padding) and warped to
``transform_param.crop_size``.

Window file (Caffe's format), repeated per image::

    # image_index
    image_path            (prefixed with window_data_param.root_folder, plain concatenation)
    channels
    height
    width
    num_windows
    class_index overlap x1 y1 x2 y2      (num_windows lines; corners inclusive, 0-based pixels)

A window with overlap >= fg_threshold is foreground (its label must be > 0); one with overlap <
bg_threshold is background (label and overlap forced to 0); the rest are dropped.

Batch k, as Caffe's load_batch: num_fg = int(batch_size * fg_fraction) foreground windows after
batch_size - num_fg background ones, each drawn uniformly from its list; mirrored with probability
1/2 when ``transform_param.mirror``. The window (expanded by ``context_pad`` and made square for
``crop_mode: "square"``, Caffe's float32 arithmetic and C rounding, clipped to the image with the
clipped part becoming zero padding) is resized bilinearly (cv::resize INTER_LINEAR) to crop_size
and written as (pixel - mean) * window_data_param.scale, BGR channel order; the rest of the
crop_size x crop_size output stays 0. The mean is ``transform_param.mean_file`` (indexed at
(crop offset + position) as Caffe) or ``mean_value``. The draws come from a generator seeded with
(seed, k), so batch k is the same whenever it is produced (the solver's exact resume); they are
not Caffe's (boost's mt19937) draws.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from netdef.errors import DataError

IMAGE_INDEX, LABEL, OVERLAP, X1, Y1, X2, Y2 = range(7)


def _c_round(v: float) -> int:
    """C's round() (halves away from zero) of a float32 value (exact in float64)."""
    v = float(v)
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def read_window_file(path: str, root_folder: str, fg_threshold: float, bg_threshold: float,
                     where: str) -> tuple[list[tuple[str, tuple[int, int, int]]], list, list]:
    """(images [(path, (C, H, W))], foreground windows, background windows), each window a list
    [image_index, label, overlap, x1, y1, x2, y2] (Caffe's WindowDataLayer::DataLayerSetUp)."""
    try:
        with open(path) as f:
            tokens = f.read().split()
    except OSError as e:
        raise DataError(f"{where}: failed to open window file {path!r} ({e.strerror})") from None
    if len(tokens) < 2:
        raise DataError(f"{where}: window file {path!r} is empty")
    images: list[tuple[str, tuple[int, int, int]]] = []
    fg: list[list[float]] = []
    bg: list[list[float]] = []
    pos = 0

    def take(n: int, what: str) -> list[str]:
        nonlocal pos
        if pos + n > len(tokens):
            raise DataError(f"{where}: window file {path!r} ends inside {what}")
        out = tokens[pos:pos + n]
        pos += n
        return out

    fg_t, bg_t = np.float32(fg_threshold), np.float32(bg_threshold)
    while pos < len(tokens):
        hashtag, index = take(2, "an image header")
        try:
            if hashtag != "#":
                raise ValueError(f"expected '#', got {hashtag!r}")
            image_index = int(index)
            image_path = root_folder + take(1, "an image path")[0]
            c, h, w, n = (int(v) for v in take(4, f"image {image_index}'s header"))
            images.append((image_path, (c, h, w)))
            for _ in range(n):
                fields = take(6, f"image {image_index}'s windows")
                label, overlap = int(fields[0]), np.float32(fields[1])
                x1, y1, x2, y2 = (int(v) for v in fields[2:])
                window = [image_index, label, float(overlap), x1, y1, x2, y2]
                if overlap >= fg_t:
                    if label <= 0:
                        raise ValueError(f"foreground window {fields} of image {image_index} has "
                                         f"label {label}; foreground labels must be > 0")
                    fg.append(window)
                elif overlap < bg_t:
                    window[LABEL], window[OVERLAP] = 0, 0.0
                    bg.append(window)
        except ValueError as e:
            raise DataError(f"{where}: window file {path!r}: {e}") from None
    return images, fg, bg


def warp_geometry(x1: int, y1: int, x2: int, y2: int, rows: int, cols: int, crop: int,
                  context_pad: int, square: bool, mirror: bool):
    """Caffe's window expansion (load_batch): ((x1, y1, x2, y2) clipped to the image, (out_h,
    out_w) the size the clipped region is warped to, (pad_h, pad_w) its offset in the crop),
    with Caffe's float32 arithmetic and C rounding."""
    f = np.float32
    pad_h = pad_w = 0
    out_h = out_w = crop
    if context_pad > 0 or square:
        context_scale = f(crop) / f(crop - 2 * context_pad)
        half_h = f((y2 - y1 + 1) / 2.0)
        half_w = f((x2 - x1 + 1) / 2.0)
        cx = f(x1) + half_w
        cy = f(y1) + half_h
        if square:
            if half_h > half_w:
                half_w = half_h
            else:
                half_h = half_w
        x1 = _c_round(cx - half_w * context_scale)
        x2 = _c_round(cx + half_w * context_scale)
        y1 = _c_round(cy - half_h * context_scale)
        y2 = _c_round(cy + half_h * context_scale)
        unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
        pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
        pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
        x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
        clipped_h, clipped_w = y2 - y1 + 1, x2 - x1 + 1
        scale_x = f(crop) / f(unclipped_w)
        scale_y = f(crop) / f(unclipped_h)
        out_w = _c_round(f(clipped_w) * scale_x)
        out_h = _c_round(f(clipped_h) * scale_y)
        pad_x1 = _c_round(f(pad_x1) * scale_x)
        pad_x2 = _c_round(f(pad_x2) * scale_x)
        pad_y1 = _c_round(f(pad_y1) * scale_y)
        pad_h = pad_y1
        pad_w = pad_x2 if mirror else pad_x1     # Caffe mirrors the padding too
        if pad_h + out_h > crop:
            out_h = crop - pad_h
        if pad_w + out_w > crop:
            out_w = crop - pad_w
    return (x1, y1, x2, y2), (out_h, out_w), (pad_h, pad_w)


class WindowSource:
    """The WindowData layer's batches (see the module docstring)."""

    def __init__(self, lp, phase: str, seed: int, base_dir: str | None = None):
        from runner.data.sources import resolve_source
        from runner.data.transformer import read_mean_file
        p = lp.window_data_param
        tp = lp.transform_param
        self.name = lp.name
        self.where = f"layer '{lp.name}' (WindowData)"
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise DataError(f"{self.where}: window_data_param.batch_size must be > 0")
        self.crop = int(tp.crop_size)
        if self.crop <= 0:
            raise DataError(f"{self.where}: transform_param.crop_size must be > 0")
        self.context_pad = int(p.context_pad)
        if 2 * self.context_pad >= self.crop:
            raise DataError(f"{self.where}: context_pad {self.context_pad} leaves no room in "
                            f"crop_size {self.crop}")
        if p.crop_mode not in ("warp", "square"):
            raise DataError(f"{self.where}: crop_mode must be 'warp' or 'square', got {p.crop_mode!r}")
        self.square = p.crop_mode == "square"
        self.mirror = bool(tp.mirror)
        self.scale = np.float32(p.scale)
        self.fg_fraction = float(p.fg_fraction)
        self.cache = {} if p.cache_images else None
        self.seed = int(seed)
        self.source = resolve_source(p.source, base_dir)
        self.images, self.fg, self.bg = read_window_file(self.source, p.root_folder, p.fg_threshold,
                                                         p.bg_threshold, self.where)
        channels = self.images[-1][1][0]       # Caffe sizes the top by the file's channels
        if channels != 3:
            raise DataError(f"{self.where}: WindowData reads images in colour (3 channels); "
                            f"{self.source} gives {channels} channels")
        self.num_fg = int(np.float32(self.batch_size) * np.float32(self.fg_fraction))
        if (self.num_fg and not self.fg) or (self.batch_size > self.num_fg and not self.bg):
            raise DataError(f"{self.where}: {self.source} has {len(self.fg)} foreground and "
                            f"{len(self.bg)} background windows; a batch of {self.batch_size} "
                            f"with fg_fraction {self.fg_fraction} needs both")
        self.mean_image = None
        self.mean_values = [np.float32(v) for v in tp.mean_value]
        if tp.mean_file and self.mean_values:
            raise DataError(f"{self.where}: cannot specify mean_file and mean_value at the same time")
        if tp.mean_file:
            self.mean_image = read_mean_file(str(resolve_source(tp.mean_file, base_dir)))
            self.mean_off = (self.mean_image.shape[2] - self.crop) // 2
        if self.mean_values and len(self.mean_values) not in (1, channels):
            raise DataError(f"{self.where}: specify either 1 mean_value or as many as channels: "
                            f"{channels}")
        if len(self.mean_values) == 1:
            self.mean_values = self.mean_values * channels

    def top_shapes(self) -> list[tuple[int, ...]]:
        return [(self.batch_size, 3, self.crop, self.crop), (self.batch_size,)]

    def _image(self, index: int) -> np.ndarray:
        """The window's image as uint8 H x W x 3 (BGR, as cv::imread IMREAD_COLOR)."""
        from runner.data.imageset import load_image
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        if not 0 <= index < len(self.images):
            raise DataError(f"{self.where}: a window names image {index}, but {self.source} lists "
                            f"{len(self.images)} images (indices are positions in the file)")
        path = self.images[index][0]
        try:
            img = load_image(path, 0, 0, True).transpose(1, 2, 0)
        except DataError as e:
            raise DataError(f"{self.where}: {e}") from None
        if self.cache is not None:
            self.cache[index] = img
        return img

    def window(self, window: list, mirror: bool, out: np.ndarray) -> None:
        """Write one window into ``out`` (3, crop, crop), zero-initialised (Caffe's crop, warp,
        flip and (pixel - mean) * scale)."""
        from runner.data.imageset import _resize
        img = self._image(int(window[IMAGE_INDEX]))
        rows, cols = img.shape[:2]
        (x1, y1, x2, y2), (oh, ow), (pad_h, pad_w) = warp_geometry(
            int(window[X1]), int(window[Y1]), int(window[X2]), int(window[Y2]), rows, cols,
            self.crop, self.context_pad, self.square, mirror)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows):
            raise DataError(f"{self.where}: window ({x1}, {y1}, {x2}, {y2}) of image "
                            f"{self.images[int(window[IMAGE_INDEX])][0]} lies outside its {cols}x{rows} "
                            "pixels")
        if oh <= 0 or ow <= 0:
            return
        region = np.ascontiguousarray(img[y1:y2 + 1, x1:x2 + 1].transpose(2, 0, 1))
        warped = _resize(region, oh, ow).astype(np.float32)          # C x oh x ow
        if mirror:
            warped = warped[:, :, ::-1]
        if self.mean_image is not None:
            o = self.mean_off
            mean = self.mean_image[:, o + pad_h:o + pad_h + oh, o + pad_w:o + pad_w + ow]
            if mean.shape[1:] != (oh, ow):
                raise DataError(f"{self.where}: mean image {self.mean_image.shape} is smaller than "
                                f"the crop {self.crop}")
            warped = warped - mean
        elif self.mean_values:
            warped = warped - np.array(self.mean_values, np.float32).reshape(-1, 1, 1)
        out[:, pad_h:pad_h + oh, pad_w:pad_w + ow] = warped * self.scale

    def batch(self, k: int) -> list[np.ndarray]:
        """Batch k: data (batch, 3, crop, crop) and labels (batch,), float32."""
        data = np.zeros((self.batch_size, 3, self.crop, self.crop), np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        rng = np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), 0, k])
        item = 0
        for is_fg, count in ((False, self.batch_size - self.num_fg), (True, self.num_fg)):
            pool = self.fg if is_fg else self.bg
            for _ in range(count):
                window = pool[int(rng.integers(len(pool)))]
                mirror = self.mirror and bool(rng.integers(2))
                self.window(window, mirror, data[item])
                labels[item] = window[LABEL]
                item += 1
        return [data, labels]

    def close(self) -> None:
        self.cache = None if self.cache is None else {}
