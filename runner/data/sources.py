"""Batch sources behind the data layers: each turns a batch index k into the arrays of batch k.

Batches are a pure function of (source, k, seed, shard): batch k of a Data layer holds the items
``g = first_item(k, batch_size, shard) + i`` for i < batch_size (record ``rand_skip_offset + g``
mod the record count, in key order), and item g's random crop / mirror comes from a generator
seeded with (seed, g). So a solver that restores iteration ``it`` resumes exactly by seeking its data
layers to batch ``it * iter_size``, and a prefetch thread can compute batches ahead without
changing what any batch holds. ``shard = (rank, size)`` splits the stream across the ranks of a
data-parallel run: at batch k the ranks' batches, in rank order, are exactly batch k of one
process whose batch is size * batch_size (same items, same crops and mirrors).

    src.top_shapes() -> [data shape (N, C, H, W), label shape (N,)]
    src.batch(k)     -> [data float32, label float32]
"""
from __future__ import annotations

import os
import zlib

import numpy as np

from netdef.errors import DataError
from netdef.weights import H5_ERRORS


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


def first_item(k: int, batch_size: int, shard: tuple[int, int]) -> int:
    """Index in the item stream of the first item of batch k for ``shard`` = (rank, size)."""
    rank, size = shard
    return (k * size + rank) * batch_size


def item_rng(seed: int, name: str, g: int) -> np.random.Generator:
    """The generator of item g's random transforms (crop offsets, mirror)."""
    return np.random.default_rng([seed, _name_key(name), 0, g])


def resolve_source(path: str, base_dir: str | None) -> str:
    """Caffe resolves a data source against the working directory; if it is not there we also try
    the prototxt's directory (``base_dir``). Returns the first that exists (else ``path``)."""
    if not path or os.path.isabs(path) or os.path.exists(path) or not base_dir:
        return path
    cand = os.path.join(base_dir, path)
    return cand if os.path.exists(cand) else path


def _first_listed(list_file: str) -> str | None:
    """The first image path of an ImageData list (None when it cannot be read)."""
    try:
        with open(list_file, encoding="utf-8") as f:
            for line in f:
                name = line.rstrip("\r\n").rpartition(" ")[0]
                if name:
                    return name
    except (OSError, UnicodeDecodeError):
        return None
    return None


def resolve_data_paths(net_param, base_dir: str | None) -> None:
    """In place: each data layer's source and mean file given relative to ``base_dir`` (the
    prototxt's folder) when it is not found from the working directory (``resolve_source``);
    the same for an ImageData ``root_folder`` whose first listed image is not found from the
    working directory."""
    if not base_dir:
        return
    for lp in net_param.layer:
        for field in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param"):
            if lp.HasField(field):
                p = getattr(lp, field)
                if p.source:
                    p.source = resolve_source(p.source, base_dir)
        if lp.transform_param.mean_file:
            lp.transform_param.mean_file = resolve_source(lp.transform_param.mean_file, base_dir)
        if lp.HasField("image_data_param") and not os.path.isabs(lp.image_data_param.root_folder):
            p = lp.image_data_param
            first = _first_listed(p.source)
            if first and not os.path.isabs(first) and not os.path.exists(
                    os.path.join(p.root_folder, first)):
                alt = os.path.join(base_dir, p.root_folder)
                if os.path.exists(os.path.join(alt, first)):
                    p.root_folder = alt


class DatumDBSource:
    """Data layer source: Datum records of an LMDB/LevelDB, transformed by ``transform_param``."""

    def __init__(self, lp, phase: str, seed: int, base_dir: str | None = None):
        from runner.data.db import open_reader
        from runner.data.transformer import DataTransformer
        self.name = lp.name
        p = lp.data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise DataError(f"layer '{lp.name}': data_param.batch_size must be > 0")
        if not p.source:
            raise DataError(f"layer '{lp.name}': data_param.source is empty")
        self.source = resolve_source(p.source, base_dir)
        self.ntop = len(lp.top)
        self.seed = int(seed)
        try:
            self.reader = open_reader(self.source, p.backend)
        except DataError as e:
            raise DataError(f"layer '{lp.name}': {e}") from None
        self.transformer = DataTransformer(lp.transform_param, phase, lp.name,
                                           resolve=lambda f: resolve_source(f, base_dir))
        tp = lp.transform_param
        self.force_color, self.force_gray = bool(tp.force_color), bool(tp.force_gray)
        skip = 0
        if p.rand_skip:
            skip = int(np.random.default_rng([self.seed, _name_key(self.name), 1]).integers(p.rand_skip))
        self.skip = skip
        key, value = self.reader.next()
        first = self._decode(key, value)
        self.chw = first.shape
        self.out_chw = self.transformer.output_shape(*self.chw)
        self.transformer._mean_for(*self.chw)  # mean/channel checks now, not in the thread
        self._next_index = None
        self.shard = (0, 1)
        kind = "lmdb" if self.reader.backend == "lmdb" else "leveldb"
        self.messages = [f"Opened {kind} {self.source}",
                         "output data size: " + ",".join(map(str, self.top_shapes()[0]))]

    def _decode(self, key: bytes, value: bytes) -> np.ndarray:
        from runner.data.datum import datum_to_array, parse_datum
        where = f"{self.source} record {key.decode(errors='replace')!r}"
        return datum_to_array(parse_datum(value, where), where, self.force_color, self.force_gray)

    def top_shapes(self) -> list[tuple[int, ...]]:
        """[(batch, C, H', W'), (batch,)] (label only when the layer has two tops)."""
        shapes = [(self.batch_size, *self.out_chw)]
        if self.ntop > 1:
            shapes.append((self.batch_size,))
        return shapes

    def batch(self, k: int) -> list[np.ndarray]:
        """Batch k: data float32 (batch, C, H', W') and labels float32 (batch,)."""
        from runner.data.datum import parse_datum
        g0 = first_item(k, self.batch_size, self.shard)
        start = self.skip + g0
        if self._next_index != start:
            self.reader.seek(start)
        data = np.empty((self.batch_size, *self.out_chw), dtype=np.float32)
        labels = np.empty(self.batch_size, dtype=np.float32)
        for i in range(self.batch_size):
            key, value = self.reader.next()
            a = self._decode(key, value)
            if a.shape != self.chw:
                raise DataError(f"{self.source} record {key.decode(errors='replace')!r}: shape {a.shape}"
                                f" differs from the first record's {self.chw} (layer '{self.name}')")
            self.transformer.transform(a, item_rng(self.seed, self.name, g0 + i), out=data[i])
            labels[i] = parse_datum(value).label if self.ntop > 1 else 0
        self._next_index = start + self.batch_size
        out = [data]
        if self.ntop > 1:
            out.append(labels)
        return out

    def close(self) -> None:
        self.reader.close()


class ImageListSource:
    """ImageData source: images named in a list file, optionally shuffled every epoch."""

    def __init__(self, lp, phase: str, seed: int, base_dir: str | None = None):
        from runner.data.imageset import read_image_list
        from runner.data.transformer import DataTransformer
        p = lp.image_data_param
        self.name = lp.name
        self.batch_size = int(p.batch_size)
        self.list_file = resolve_source(p.source, base_dir)
        self.lines = read_image_list(self.list_file)
        self.root = p.root_folder
        self.h, self.w = int(p.new_height), int(p.new_width)
        self.is_color = bool(p.is_color)
        self.shuffle = bool(p.shuffle)
        self.ntop = len(lp.top)
        self.seed = int(seed)
        self.transformer = DataTransformer(lp.transform_param, phase, lp.name,
                                           resolve=lambda f: resolve_source(f, base_dir))
        self.skip = 0
        if p.rand_skip:
            self.skip = int(np.random.default_rng([self.seed, _name_key(self.name), 1]).integers(p.rand_skip))
        self._perm_epoch, self._perm = -1, None
        self.shard = (0, 1)
        first = self._load(self._item(0)[0])
        self.chw = first.shape
        self.out_chw = self.transformer.output_shape(*self.chw)
        self.transformer._mean_for(*self.chw)
        self.messages = [f"Opening file {self.list_file}"] + (["Shuffling data"] if self.shuffle else [])
        self.messages += [f"A total of {len(self.lines)} images.",
                          "output data size: " + ",".join(map(str, self.top_shapes()[0]))]

    def _item(self, g: int) -> tuple[str, int]:
        n = len(self.lines)
        epoch, i = divmod(g, n)
        if self.shuffle:
            if epoch != self._perm_epoch:
                self._perm = np.random.default_rng([self.seed, _name_key(self.name), 2, epoch]).permutation(n)
                self._perm_epoch = epoch
            i = int(self._perm[i])
        return self.lines[i]

    def _load(self, name: str) -> np.ndarray:
        from runner.data.imageset import load_image
        try:
            return load_image(os.path.join(self.root, name), self.h, self.w, self.is_color)
        except DataError as e:
            raise DataError(f"layer '{self.name}' ({self.list_file}): {e}") from None

    def top_shapes(self) -> list[tuple[int, ...]]:
        shapes = [(self.batch_size, *self.out_chw)]
        if self.ntop > 1:
            shapes.append((self.batch_size,))
        return shapes

    def batch(self, k: int) -> list[np.ndarray]:
        """Batch k: images (transformed) and labels, float32."""
        data = np.empty((self.batch_size, *self.out_chw), dtype=np.float32)
        labels = np.empty(self.batch_size, dtype=np.float32)
        g0 = first_item(k, self.batch_size, self.shard)
        for i in range(self.batch_size):
            name, label = self._item(self.skip + g0 + i)
            a = self._load(name)
            if a.shape != self.chw:
                raise DataError(f"layer '{self.name}': image {name} has shape {a.shape} but the first "
                                f"image is {self.chw}; set new_height/new_width to resize")
            self.transformer.transform(a, item_rng(self.seed, self.name, g0 + i), out=data[i])
            labels[i] = label
        return [data, labels] if self.ntop > 1 else [data]

    def close(self) -> None:
        pass


def read_hdf5_list(list_file: str, layer: str) -> list[str]:
    """The .h5 paths an HDF5Data ``source`` lists, one per line (Caffe's rule: the source is a
    text file listing HDF5 files); each relative path is looked for from the working directory,
    then beside the list. A source that is itself an HDF5 file, or not text, is a DataError
    saying so."""
    if not os.path.isfile(list_file):
        raise DataError(f"layer '{layer}': HDF5 list file {list_file} not found")
    with open(list_file, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\x89HDF"):
        raise DataError(f"layer '{layer}': source {list_file} is an HDF5 file; HDF5Data's source "
                        "must be a text file listing HDF5 files, one path per line (write "
                        f"'{os.path.basename(list_file)}' into e.g. train_h5.txt and point source "
                        "at that)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"layer '{layer}': source {list_file} is not a text file; HDF5Data's "
                        "source must list HDF5 files, one path per line") from None
    list_dir = os.path.dirname(os.path.abspath(list_file))
    files = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            cand = line
            if not os.path.isabs(cand) and not os.path.exists(cand):
                alt = os.path.join(list_dir, cand)
                cand = alt if os.path.exists(alt) else cand
            files.append(cand)
    if not files:
        raise DataError(f"{list_file}: lists no HDF5 files")
    return files


class HDF5Source:
    """HDF5Data source: a list file of .h5 paths; each file holds one dataset per top (same
    number of rows N); rows are read in order across files (files and rows shuffled per epoch
    when ``shuffle``)."""

    def __init__(self, lp, phase: str, seed: int, base_dir: str | None = None):
        import h5py
        p = lp.hdf5_data_param
        self.name = lp.name
        self.tops = list(lp.top)
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.seed = int(seed)
        list_file = resolve_source(p.source, base_dir)
        files = read_hdf5_list(list_file, lp.name)
        self.files, self.rows, self.shapes = files, [], None
        for path in files:
            try:
                with h5py.File(path, "r") as h:
                    shapes = []
                    for t in self.tops:
                        if t not in h:
                            raise DataError(f"{path}: no dataset named '{t}' (layer '{self.name}' top)")
                        shapes.append(h[t].shape)
            except H5_ERRORS as e:
                raise DataError(f"{path}: cannot open HDF5 file ({e})") from None
            n = {s[0] if len(s) else 0 for s in shapes}
            if len(n) != 1 or 0 in n:
                raise DataError(f"{path}: datasets {self.tops} must have the same, non-zero number of "
                                f"rows (got {[s[0] if len(s) else 0 for s in shapes]})")
            inner = [tuple(s[1:]) for s in shapes]
            if self.shapes is None:
                self.shapes = inner
            elif inner != self.shapes:
                raise DataError(f"{path}: dataset shapes {inner} differ from {files[0]}'s {self.shapes}")
            self.rows.append(n.pop())
        self.total = sum(self.rows)
        self._cache_path, self._cache = None, None
        self.messages = [f"Loading list of HDF5 filenames from: {list_file}",
                         f"Number of HDF5 files: {len(files)}"]
        self._epoch, self._order = -1, None
        self.shard = (0, 1)

    def top_shapes(self) -> list[tuple[int, ...]]:
        return [(self.batch_size, *s) for s in self.shapes]

    def _layout(self, epoch: int):
        """(file order, row permutations or None) for one epoch."""
        if self._epoch != epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, _name_key(self.name), 3, epoch])
                order = rng.permutation(len(self.files))
                perms = [rng.permutation(self.rows[f]) for f in range(len(self.files))]
            else:
                order, perms = np.arange(len(self.files)), None
            starts = np.cumsum([0] + [self.rows[f] for f in order])
            self._epoch, self._order = epoch, (order, perms, starts)
        return self._order

    def _file(self, path: str) -> list[np.ndarray]:
        import h5py
        if self._cache_path != path:
            try:
                with h5py.File(path, "r") as h:
                    self._cache = [np.asarray(h[t], dtype=np.float32) for t in self.tops]
            except H5_ERRORS as e:
                raise DataError(f"{path}: cannot read HDF5 file (layer '{self.name}': {e})") from None
            self._cache_path = path
        return self._cache

    def batch(self, k: int) -> list[np.ndarray]:
        """Batch k: one float32 array per top, (batch, *dataset row shape)."""
        out = [np.empty((self.batch_size, *s), dtype=np.float32) for s in self.shapes]
        g0 = first_item(k, self.batch_size, self.shard)
        for i in range(self.batch_size):
            epoch, g = divmod(g0 + i, self.total)
            order, perms, starts = self._layout(epoch)
            j = int(np.searchsorted(starts, g, side="right") - 1)
            f = int(order[j])
            r = g - int(starts[j])
            if perms is not None:
                r = int(perms[f][r])
            arrays = self._file(self.files[f])
            for o, a in zip(out, arrays):
                o[i] = a[r]
        return out

    def close(self) -> None:
        self._cache = None
