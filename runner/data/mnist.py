"""MNIST: read the idx files (raw or .gz), convert them to a Caffe LMDB like Caffe's
convert_mnist_data (keys ``%08d``, Datum channels=1 height=28 width=28 raw uint8 bytes + label),
and fetch the four .gz files (download from a public mirror or copy from a folder) with MD5 checks.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from netdef.errors import DataError

# name -> MD5 of the .gz file (the original yann.lecun.com bytes; see ../shared/data/SOURCES.md)
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# public mirrors holding the original .gz files (tried in order)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def _open(path: str | os.PathLike):
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx_images(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """MNIST image file (idx3, magic 2051, big-endian) -> uint8 array N x rows x cols."""
    try:
        with _open(path) as f:
            head = f.read(4)
            magic = struct.unpack(">i", head)[0] if len(head) == 4 else None
            if magic != IMAGE_MAGIC:
                raise DataError(f"{path}: bad magic number {magic} (expected {IMAGE_MAGIC}: an MNIST "
                                f"image file)")
            head = f.read(12)
            if len(head) < 12:
                raise DataError(f"{path}: truncated idx header")
            n, rows, cols = struct.unpack(">iii", head)
            if limit is not None:
                n = min(n, limit)
            buf = f.read(n * rows * cols)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(buf) != n * rows * cols:
        raise DataError(f"{path}: truncated: {len(buf)} bytes of pixels for {n} images of {rows}x{cols}")
    return np.frombuffer(buf, dtype=np.uint8).reshape(n, rows, cols)


def read_idx_labels(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """MNIST label file (idx1, magic 2049) -> uint8 array N."""
    try:
        with _open(path) as f:
            head = f.read(4)
            magic = struct.unpack(">i", head)[0] if len(head) == 4 else None
            if magic != LABEL_MAGIC:
                raise DataError(f"{path}: bad magic number {magic} (expected {LABEL_MAGIC}: an MNIST "
                                f"label file)")
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: truncated idx header")
            n = struct.unpack(">i", head)[0]
            if limit is not None:
                n = min(n, limit)
            buf = f.read(n)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(buf) != n:
        raise DataError(f"{path}: truncated: {len(buf)} labels, header says {n}")
    return np.frombuffer(buf, dtype=np.uint8)


def convert_mnist(images: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike,
                  backend: str = "lmdb", limit: int | None = None, log=None) -> int:
    """Write MNIST images+labels into a new LMDB/LevelDB at ``out`` (keys ``%08d``, one Datum
    1 x rows x cols of raw bytes per image). Returns the number of records."""
    from proto import caffe_pb2
    from runner.data.db import DBWriter

    imgs = read_idx_images(images, limit)
    labs = read_idx_labels(labels, limit)
    if len(imgs) != len(labs):
        raise DataError(f"{images}: {len(imgs)} images but {labels} has {len(labs)} labels")
    rows, cols = imgs.shape[1:]
    if log:
        log(f"A total of {len(imgs)} items.")
        log(f"Rows: {rows} Cols: {cols}")
    with DBWriter(out, backend) as w:
        d = caffe_pb2.Datum(channels=1, height=rows, width=cols)
        for i in range(len(imgs)):
            d.data = imgs[i].tobytes()
            d.label = int(labs[i])
            w.put(b"%08d" % i, d.SerializeToString())
    if log:
        log(f"Processed {len(imgs)} files.")
    return len(imgs)


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_mnist(dest: str | os.PathLike, source_dir: str | os.PathLike | None = None,
                mirrors: tuple[str, ...] | None = None, timeout: float = 30.0, log=print) -> Path:
    """Make sure ``dest`` holds the four MNIST .gz files with the right MD5s: copy them from
    ``source_dir`` if given, otherwise download them from ``mirrors`` (default MNIST_MIRRORS).
    Raises DataError with what to do when offline or a checksum fails. Returns ``dest``."""
    mirrors = MNIST_MIRRORS if mirrors is None else mirrors
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        target = dest / name
        if target.is_file() and md5sum(target) == md5:
            continue
        tmp = target.with_name(name + ".tmp")
        if source_dir is not None:
            src = Path(source_dir) / name
            if not src.is_file():
                raise DataError(f"{src}: not found (--from must be a folder holding "
                                f"{', '.join(MNIST_FILES)})")
            shutil.copyfile(src, tmp)
        else:
            errors = []
            for base in mirrors:
                url = base + name
                try:
                    log(f"Downloading {url}")
                    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                        shutil.copyfileobj(r, f)
                    break
                except (urllib.error.URLError, OSError, TimeoutError) as e:
                    errors.append(f"{url}: {e}")
            else:
                tmp.unlink(missing_ok=True)
                raise DataError(f"cannot download {name} (offline?): " + "; ".join(errors) +
                                ". Copy the four MNIST .gz files into a folder and run "
                                "'nbcaffe data mnist --from FOLDER'")
        got = md5sum(tmp)
        if got != md5:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{name}: MD5 {got} does not match the published {md5} (corrupt or not "
                            f"the original MNIST file)")
        os.replace(tmp, target)
    return dest
