"""Key/value databases holding Caffe Datum records: LMDB (py-lmdb) and LevelDB (plyvel, optional).

``open_reader(path, backend)`` gives a :class:`DBReader` that walks the records in key order with
wrap-around (Caffe's DB cursor), can seek to the k-th record, and reports how many records there
are. LMDB is read through ``runner.data.lmdb_reader``: every length and page number checked, so a
damaged database is a DataError naming the file and record, never a SIGBUS.
``DBWriter`` writes into ``<path>.tmp`` and moves it into place on ``close()`` so a crashed
conversion never leaves a half-written database under the final name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from netdef.errors import DataError

LEVELDB_HELP = ("LevelDB needs the optional 'plyvel' package (pip install plyvel); or convert the "
                "database to LMDB with Caffe's convert tools / nbcaffe convert-imageset and set "
                "'backend: LMDB' in data_param")


def _backend_name(backend) -> str:
    """Accept 'lmdb'/'leveldb', Caffe's enum names or DataParameter.DB values (LEVELDB=0, LMDB=1)."""
    if isinstance(backend, int):
        return "leveldb" if backend == 0 else "lmdb"
    return str(backend).lower()


class DBReader:
    """Sequential reader over (key, value) records in key order, wrapping around at the end.

    ``next()`` returns the next (key, value); ``seek(k)`` positions at record ``k % len(self)``.
    LMDB is read by ``runner.data.lmdb_reader`` (checked reads, no memory map: a truncated or
    corrupt file is a DataError, never a crash; no LMDB environment is held, so the user's own
    ``lmdb.open`` of the database works meanwhile).
    """

    def __init__(self, path: str | os.PathLike, backend="lmdb"):
        self.path = str(path)
        self.backend = _backend_name(backend)
        self._db = None
        if not os.path.exists(self.path):
            raise DataError(f"{self.path}: data source does not exist")
        if self.backend == "lmdb":
            from runner.data.lmdb_reader import Cursor, LMDBFile
            if not os.path.isdir(self.path):
                raise DataError(f"{self.path}: not an LMDB directory (expected a folder holding data.mdb)")
            if not os.path.isfile(os.path.join(self.path, "data.mdb")):
                raise DataError(f"{self.path}: not an LMDB directory (no data.mdb in it)")
            self._db = LMDBFile(self.path)
            self._count = len(self._db)
            if self._count:
                try:
                    self._cursor = Cursor(self._db)
                except DataError:
                    self._db.close()
                    raise
        elif self.backend == "leveldb":
            try:
                import plyvel
            except ImportError:
                raise DataError(f"{self.path}: LevelDB is not supported in this install: "
                                f"{LEVELDB_HELP}") from None
            try:
                self._db = plyvel.DB(self.path, create_if_missing=False)
            except Exception as e:
                raise DataError(f"{self.path}: cannot open LevelDB ({e})") from None
            self._count = sum(1 for _ in self._db.iterator(include_value=False))
            self._iter = None
        else:
            raise DataError(f"{self.path}: unknown DB backend {backend!r} (LMDB or LEVELDB)")
        if self._count == 0:
            self.close()
            raise DataError(f"{self.path}: database is empty")
        self._pos = 0
        self.seek(0)

    def __len__(self) -> int:
        return self._count

    @property
    def position(self) -> int:
        """Index (0-based, key order) of the record ``next()`` returns."""
        return self._pos

    def seek(self, k: int) -> None:
        """Position the cursor at record ``k % len(self)`` (LMDB: a leaf page at a time)."""
        k %= self._count
        if self.backend == "lmdb":
            self._cursor.skip(k)
        else:
            self._iter = self._db.iterator()
            for _ in range(k):
                next(self._iter)
        self._pos = k

    def next(self) -> tuple[bytes, bytes]:
        """The record at the cursor as (key, value); the cursor moves on, wrapping to the start."""
        if self.backend == "lmdb":
            key, value = self._cursor.current()
            self._cursor.next()
        else:
            try:
                key, value = next(self._iter)
            except StopIteration:
                self._iter = self._db.iterator()
                key, value = next(self._iter)
        self._pos = (self._pos + 1) % self._count
        if self._pos == 0:
            if self.backend == "leveldb":
                self._iter = self._db.iterator()
            else:
                self._cursor.first()    # the meta's entry count, not the tree, says where it ends
        return key, value

    def close(self) -> None:
        """Release the database handles."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_reader(path: str | os.PathLike, backend="lmdb") -> DBReader:
    """Open a Datum database for sequential reading (see :class:`DBReader`)."""
    return DBReader(path, backend)


class DBWriter:
    """Write (key, value) records into a new database at ``path`` (which must not exist).

    Records go to ``<path>.tmp`` in transactions of ``commit_every``; ``close()`` commits and renames
    it to ``path``; ``abort()`` (or an exception inside ``with``) deletes the temporary database.
    """

    def __init__(self, path: str | os.PathLike, backend="lmdb", commit_every: int = 1000):
        self.path = str(path).rstrip("/")
        self.backend = _backend_name(backend)
        if os.path.exists(self.path):
            raise DataError(f"{self.path}: already exists; remove it first (Caffe refuses too)")
        self.tmp = self.path + ".tmp"
        if os.path.exists(self.tmp):
            shutil.rmtree(self.tmp)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.commit_every = commit_every
        self.count = 0
        if self.backend == "lmdb":
            import lmdb
            self._map_size = 1 << 28
            self._env = lmdb.open(self.tmp, map_size=self._map_size, subdir=True, lock=True)
        elif self.backend == "leveldb":
            try:
                import plyvel
            except ImportError:
                raise DataError(f"{self.path}: cannot write LevelDB: {LEVELDB_HELP}") from None
            self._db = plyvel.DB(self.tmp, create_if_missing=True, error_if_exists=True)
        else:
            raise DataError(f"{self.path}: unknown DB backend {backend!r} (lmdb or leveldb)")
        self._pending: list[tuple[bytes, bytes]] = []

    def put(self, key: bytes | str, value: bytes) -> None:
        """Queue one record; flushed every ``commit_every`` records."""
        if isinstance(key, str):
            key = key.encode()
        self._pending.append((key, value))
        self.count += 1
        if len(self._pending) >= self.commit_every:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self.backend == "lmdb":
            import lmdb
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        for k, v in self._pending:
                            txn.put(k, v)
                    break
                except lmdb.MapFullError:
                    self._map_size *= 2
                    self._env.set_mapsize(self._map_size)
        else:
            with self._db.write_batch() as wb:
                for k, v in self._pending:
                    wb.put(k, v)
        self._pending.clear()

    def close(self) -> None:
        """Commit what is left and move the finished database to its final path."""
        self._flush()
        if self.backend == "lmdb":
            self._env.sync(True)
            self._env.close()
        else:
            self._db.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary database."""
        try:
            if self.backend == "lmdb":
                self._env.close()
            else:
                self._db.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
