"""Image lists and image databases: Caffe's convert_imageset and compute_image_mean.

A list file has one ``path label`` per line (the label follows the last space, so paths may hold
spaces). Images load as Caffe's ``cv::imread`` would: colour as BGR C x H x W uint8, or gray
1 x H x W, resized with bilinear interpolation when a size is given (OpenCV's INTER_LINEAR when
opencv is installed, else Pillow's bilinear).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from netdef.errors import DataError
from runner.data.datum import image_to_chw


def read_image_list(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Parse a Caffe image list -> [(relative path, label)]; a bad line raises DataError with its number."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: image list not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            name, sep, label = line.rpartition(" ")
            if not sep or not name:
                raise DataError(f"{path}:{lineno}: expected 'path label', got {line!r}")
            try:
                out.append((name, int(label)))
            except ValueError:
                raise DataError(f"{path}:{lineno}: label {label!r} is not an integer") from None
    if not out:
        raise DataError(f"{path}: image list is empty")
    return out


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize C x H x W uint8 to C x height x width (bilinear)."""
    if (a.shape[1], a.shape[2]) == (height, width):
        return a
    try:
        import cv2
        hwc = np.ascontiguousarray(a.transpose(1, 2, 0))
        r = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
        if r.ndim == 2:
            r = r[:, :, None]
        return np.ascontiguousarray(r.transpose(2, 0, 1))
    except ImportError:
        from PIL import Image
        chans = [np.asarray(Image.fromarray(ch).resize((width, height), Image.BILINEAR)) for ch in a]
        return np.stack(chans)


def load_image(path: str | os.PathLike, height: int = 0, width: int = 0,
               is_color: bool = True) -> np.ndarray:
    """Read an image file -> uint8 C x H x W (BGR or gray), resized when height and width > 0."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if is_color else "L")
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except Exception as e:       # Pillow's decoders raise many types on damaged files
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    a = image_to_chw(img)
    if height > 0 and width > 0:
        a = _resize(a, height, width)
    return a


def encode_image(a: np.ndarray, fmt: str = "png") -> bytes:
    """uint8 C x H x W (BGR or gray) -> encoded file bytes (png/jpg/...), like cv::imencode."""
    from PIL import Image
    fmt = fmt.lower().lstrip(".")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(fmt, fmt.upper())
    img = Image.fromarray(a[0]) if a.shape[0] == 1 else Image.fromarray(a[::-1].transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def convert_imageset(root: str, list_file: str, out: str, resize_height: int = 0, resize_width: int = 0,
                     gray: bool = False, shuffle: bool = False, encoded: bool = False,
                     encode_type: str = "", backend: str = "lmdb", check_size: bool = False,
                     seed: int = 0, log=None, strict: bool = False) -> int:
    """Caffe's convert_imageset: each listed image (under ``root``) becomes one Datum under key
    ``%08d_<path>`` in a new database ``out``. Returns the number of images written.

    A listed image that is missing or does not decode is skipped, as Caffe does (its
    ReadImageToDatum fails and the loop goes on), with a warning line naming the file, and a
    count of the skipped images at the end; ``strict`` makes the first one an error instead (the
    database is then not created). Keys keep the list's numbering, so a skipped image leaves a
    gap, as in Caffe."""
    from runner.data.datum import array_to_datum, encoded_datum
    from runner.data.db import DBWriter

    lines = read_image_list(list_file)
    if shuffle:
        if log:
            log("Shuffling data")
        order = np.random.default_rng(seed).permutation(len(lines))
        lines = [lines[i] for i in order]
    if log:
        log(f"A total of {len(lines)} images.")
    if encode_type and not encoded:
        if log:
            log("encode_type specified, assuming encoded=true.")
        encoded = True
    size = None
    count = 0
    skipped: list[str] = []
    warn = getattr(log, "warning", None) or (lambda m: log(m) if log else None)
    with DBWriter(out, backend) as w:
        for i, (name, label) in enumerate(lines):
            path = os.path.join(root, name)
            ext = Path(name).suffix.lower().lstrip(".")
            try:
                a = load_image(path, resize_height, resize_width, not gray)
            except DataError as e:
                if strict:
                    raise DataError(f"{list_file}: {e} (--strict: no database written)") from None
                warn(f"Could not read {path}, skipped: {e}")
                skipped.append(str(e))
                continue
            if encoded and not resize_height and not resize_width and (
                    not encode_type or encode_type.lower() == ext):
                d = encoded_datum(Path(path).read_bytes(), label)   # Caffe stores the file's bytes
            else:
                if check_size:
                    if size is None:
                        size = a.shape
                    elif a.shape != size:
                        raise DataError(f"{path}: image size {a.shape} differs from the first {size}")
                if encoded:
                    d = encoded_datum(encode_image(a, encode_type or ext or "png"), label)
                else:
                    d = array_to_datum(a, label)
            w.put(f"{i:08d}_{name}".encode(), d.SerializeToString())
            count += 1
            if log and count % 1000 == 0:
                log(f"Processed {count} files.")
        if count == 0:
            raise DataError(f"{list_file}: none of its {len(lines)} images could be read (first: "
                            f"{skipped[0]}); no database written")
    if log and count % 1000 != 0:
        log(f"Processed {count} files.")
    if skipped and log:
        warn(f"Skipped {len(skipped)} of {len(lines)} images that could not be read (listed above); "
             "--strict makes that an error")
    return count


def compute_mean(db_path: str, backend: str = "lmdb", log=None) -> np.ndarray:
    """Caffe's compute_image_mean: the per-pixel mean over every Datum of a database,
    float32 1 x C x H x W. Records of a different size raise DataError."""
    from runner.data.datum import datum_to_array, parse_datum
    from runner.data.db import open_reader

    with open_reader(db_path, backend) as r:
        n = len(r)
        total = None
        for i in range(n):
            key, value = r.next()
            where = f"{db_path} record {key.decode(errors='replace')!r}"
            a = datum_to_array(parse_datum(value, where), where)
            if total is None:
                total = np.zeros(a.shape, dtype=np.float64)
            elif a.shape != total.shape:
                raise DataError(f"{where}: shape {a.shape} differs from the first record's {total.shape}")
            total += a
            if log and (i + 1) % 10000 == 0:
                log(f"Processed {i + 1} files.")
    if log:
        log(f"Processed {n} files.")
    mean = (total / n).astype(np.float32)[None]
    if log:
        log(f"Number of channels: {mean.shape[1]}")
        for c in range(mean.shape[1]):
            log(f"mean_value channel [{c}]: {float(mean[0, c].mean()):g}")
    return mean
