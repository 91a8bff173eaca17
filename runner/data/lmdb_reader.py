"""A read-only LMDB reader in Python that no file content can crash.

py-lmdb maps ``data.mdb`` into memory and follows the page numbers and lengths it finds there: a
file cut short, or one flipped byte in a page header or a node, makes it touch memory past the
end of the file, and the process dies with SIGBUS (or an LMDB assertion's abort) before Python
can say anything. Caffe's Data layer only ever walks a database in key order, so this module
reads the B+tree itself with ``os.pread`` and checks every number before using it: page numbers
against the meta page's last page, node offsets and key/value lengths against their page,
overflow runs against the file. Anything inconsistent is a ``DataError`` naming the file, the
page and, once known, the record key. It holds no LMDB environment, so a Python user's own
``lmdb.open`` of the same database works while a Net reads it.

On-disk format (LMDB 0.9 ``mdb.c``, 64-bit little-endian builds, data version 1):

- every page starts with a 16-byte header: page number (u64), pad (u16), flags (u16), then
  ``lower``/``upper`` (u16 each; an overflow page holds its page count as u32 there instead);
- pages 0 and 1 are meta pages (``MDB_meta`` after the header: magic 0xBEEFC0DE, version, map
  address, map size, the free and main ``MDB_db`` records of 48 bytes each, last page, txn id);
  the one with the larger txn id is current; the free DB record's first u32 is the page size;
- ``MDB_db``: pad (u32), flags (u16), depth (u16), branch/leaf/overflow page counts (u64 each),
  entries (u64), root page (u64; all ones when the database is empty);
- branch and leaf pages: ``(lower - 16) / 2`` u16 node offsets after the header; a node is
  lo (u16), hi (u16), flags (u16), key size (u16), then the key, then (leaf) the value. A branch
  node's child page is ``lo | hi << 16 | flags << 32``; a leaf node's value size is
  ``lo | hi << 16``; with flag F_BIGDATA the value is a u64 page number of an overflow run whose
  first page's header is followed by the value.
"""
from __future__ import annotations

import os
import struct

from netdef.errors import DataError

PAGEHDRSZ = 16
NODESIZE = 8
MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
P_BRANCH, P_LEAF, P_OVERFLOW, P_META, P_LEAF2 = 0x01, 0x02, 0x04, 0x08, 0x20
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
P_INVALID = (1 << 64) - 1
MAX_KEY_SIZE = 511              # LMDB's default MDB_MAXKEYSIZE
MAX_DEPTH = 64

_HEADER = struct.Struct("<QHHHH")             # pgno, pad, flags, lower, upper
_META = struct.Struct("<II8xQ")               # magic, version, (address), mapsize
_DB = struct.Struct("<IHHQQQQQ")              # pad, flags, depth, branch, leaf, overflow, entries, root
_NODE = struct.Struct("<HHHH")                # lo, hi, flags, ksize
_U64 = struct.Struct("<Q")


class LMDBFile:
    """The main database of an LMDB folder (or data.mdb file), read in key order. ``len()`` is
    the entry count; ``cursor()`` gives a :class:`Cursor`."""

    def __init__(self, path: str | os.PathLike):
        path = os.fspath(path)
        self.file = os.path.join(path, "data.mdb") if os.path.isdir(path) else path
        try:
            self.fd = os.open(self.file, os.O_RDONLY)
        except OSError as e:
            raise DataError(f"{self.file}: cannot open ({e.strerror})") from None
        try:
            self._read_meta()
        except BaseException:
            os.close(self.fd)
            raise

    def _fail(self, what: str) -> DataError:
        return DataError(f"{self.file}: {what}")

    def _read_meta(self) -> None:
        self.size = os.fstat(self.fd).st_size
        end = PAGEHDRSZ + _META.size + 2 * _DB.size + 16
        head = os.pread(self.fd, end, 0)
        if len(head) < end:
            raise self._fail(f"{self.size} bytes: too short to be an LMDB file (truncated?)")
        magic, version, _ = _META.unpack_from(head, PAGEHDRSZ)
        if magic != MAGIC:
            raise self._fail("not an LMDB file (no LMDB meta page at its start)")
        if version != DATA_VERSION:
            raise self._fail(f"LMDB data format version {version}; this reader knows version "
                             f"{DATA_VERSION} (LMDB 0.9, which Caffe and py-lmdb write)")
        psize = _DB.unpack_from(head, PAGEHDRSZ + _META.size)[0]
        if psize < 512 or psize > 1 << 20 or psize & (psize - 1):
            raise self._fail(f"corrupt LMDB meta page (page size {psize})")
        self.psize = psize
        best = None
        for page in (0, 1):
            m = head if page == 0 else os.pread(self.fd, end, psize)
            if len(m) < end or _META.unpack_from(m, PAGEHDRSZ)[0] != MAGIC:
                continue
            off = PAGEHDRSZ + _META.size + 2 * _DB.size
            last_pg, txnid = _U64.unpack_from(m, off)[0], _U64.unpack_from(m, off + 8)[0]
            if best is None or txnid > best[0]:
                best = (txnid, last_pg, _DB.unpack_from(m, PAGEHDRSZ + _META.size + _DB.size))
        _, self.last_pg, main = best
        need = (self.last_pg + 1) * psize
        if need > self.size:
            raise self._fail(f"truncated: the file has {self.size} bytes but its LMDB metadata uses "
                             f"{need} ({self.last_pg + 1} pages of {psize}); the copy is incomplete "
                             "or the disk was full: rebuild or re-copy the database")
        flags, self.depth, self.entries, self.root = main[1], main[2], main[6], main[7]
        if flags & (0x04 | 0x10 | 0x20):      # MDB_DUPSORT, MDB_DUPFIXED, MDB_INTEGERDUP
            raise self._fail("the main database holds duplicate keys (DUPSORT), which Caffe's "
                             "Data layer never writes")
        if self.root != P_INVALID and not 2 <= self.root <= self.last_pg:
            raise self._fail(f"corrupt LMDB meta page (root page {self.root} outside pages 2.."
                             f"{self.last_pg})")
        if self.depth > MAX_DEPTH:
            raise self._fail(f"corrupt LMDB meta page (tree depth {self.depth})")

    def __len__(self) -> int:
        return 0 if self.root == P_INVALID else int(self.entries)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    # ------------------------------------------------------------------ pages
    def page(self, pgno: int) -> tuple[bytes, list[int], bool]:
        """Branch or leaf page ``pgno``, its node offsets (each checked to hold a whole node
        header inside the page) and whether it is a leaf."""
        if not 2 <= pgno <= self.last_pg:
            raise self._fail(f"corrupt LMDB: a node points at page {pgno}, outside pages 2.."
                             f"{self.last_pg}")
        data = os.pread(self.fd, self.psize, pgno * self.psize)
        if len(data) < self.psize:
            raise self._fail(f"page {pgno} is cut short (truncated file)")
        own, _, flags, lower, upper = _HEADER.unpack_from(data)
        kind = flags & (P_BRANCH | P_LEAF)
        if own != pgno or kind not in (P_BRANCH, P_LEAF) or flags & (P_OVERFLOW | P_META | P_LEAF2):
            raise self._fail(f"corrupt LMDB: page {pgno} is not the branch or leaf page the tree "
                             f"expects (its header says page {own}, flags {flags:#x})")
        if not PAGEHDRSZ <= lower <= upper <= self.psize or (lower - PAGEHDRSZ) % 2:
            raise self._fail(f"corrupt LMDB: page {pgno} has an impossible layout (lower {lower}, "
                             f"upper {upper})")
        n = (lower - PAGEHDRSZ) // 2
        offsets = list(struct.unpack_from(f"<{n}H", data, PAGEHDRSZ))
        for off in offsets:
            if off < upper or off + NODESIZE > self.psize:
                raise self._fail(f"corrupt LMDB: page {pgno} has a node at offset {off}, outside "
                                 f"its node area {upper}..{self.psize}")
        if not offsets:
            raise self._fail(f"corrupt LMDB: page {pgno} holds no nodes")
        return data, offsets, kind == P_LEAF

    def child(self, page: bytes, off: int, pgno: int) -> int:
        """The child page number of the branch node at ``off``."""
        lo, hi, flags, _ = _NODE.unpack_from(page, off)
        return lo | hi << 16 | flags << 32

    def record(self, page: bytes, off: int, pgno: int) -> tuple[bytes, bytes]:
        """(key, value) of the leaf node at ``off`` of page ``pgno``, every length checked."""
        lo, hi, flags, ksize = _NODE.unpack_from(page, off)
        dsize = lo | hi << 16
        kstart = off + NODESIZE
        if ksize > MAX_KEY_SIZE or kstart + ksize > self.psize:
            raise self._fail(f"corrupt LMDB: page {pgno} has a key of {ksize} bytes at offset {off}")
        key = page[kstart:kstart + ksize]
        where = f"record {key.decode(errors='replace')!r} (page {pgno})"
        if flags & (F_SUBDATA | F_DUPDATA):
            raise self._fail(f"{where}: a sub-database or duplicate-key node, which Caffe's Data "
                             "layer never writes (corrupt, or not a Caffe database)")
        vstart = kstart + ksize
        if not flags & F_BIGDATA:
            if vstart + dsize > self.psize:
                raise self._fail(f"{where}: its value of {dsize} bytes runs past its page (corrupt)")
            return key, page[vstart:vstart + dsize]
        if vstart + 8 > self.psize:
            raise self._fail(f"{where}: its overflow page number runs past its page (corrupt)")
        opg = _U64.unpack_from(page, vstart)[0]
        if not 2 <= opg <= self.last_pg:
            raise self._fail(f"{where}: its value points at page {opg}, outside pages 2.."
                             f"{self.last_pg} (corrupt or truncated)")
        head = os.pread(self.fd, PAGEHDRSZ, opg * self.psize)
        own, _, oflags, _, _ = _HEADER.unpack_from(head)
        npages = struct.unpack_from("<I", head, 12)[0]
        if own != opg or not oflags & P_OVERFLOW or npages < 1 or opg + npages - 1 > self.last_pg \
                or dsize > npages * self.psize - PAGEHDRSZ:
            raise self._fail(f"{where}: its overflow pages (page {opg}, {npages} page(s) for "
                             f"{dsize} bytes) are inconsistent (corrupt)")
        value = os.pread(self.fd, dsize, opg * self.psize + PAGEHDRSZ)
        if len(value) != dsize:
            raise self._fail(f"{where}: its value is cut short (truncated file)")
        return key, value


class Cursor:
    """Walks the records of an :class:`LMDBFile` in key order, wrapping around at the end."""

    def __init__(self, db: LMDBFile):
        self.db = db
        self.stack: list[tuple[bytes, list[int], int, int]] = []  # branch pages: data, offsets, i, pgno
        self.leaf: tuple[bytes, list[int], int] | None = None      # data, offsets, pgno
        self.i = 0
        self.first()

    def _descend(self, pgno: int) -> None:
        """From page ``pgno`` down the leftmost branch to a leaf."""
        while True:
            if len(self.stack) > min(self.db.depth, MAX_DEPTH):
                raise self.db._fail(f"corrupt LMDB: the tree is deeper than its meta page says "
                                    f"({self.db.depth})")
            data, offsets, leaf = self.db.page(pgno)
            if leaf:
                self.leaf, self.i = (data, offsets, pgno), 0
                return
            self.stack.append((data, offsets, 0, pgno))
            pgno = self.db.child(data, offsets[0], pgno)

    def first(self) -> None:
        """Position at the first record."""
        if self.db.root == P_INVALID:
            raise self.db._fail("database is empty")
        self.stack.clear()
        self._descend(self.db.root)

    def current(self) -> tuple[bytes, bytes]:
        data, offsets, pgno = self.leaf
        return self.db.record(data, offsets[self.i], pgno)

    def next(self) -> bool:
        """Move to the next record; False (and back at the first) after the last one."""
        data, offsets, pgno = self.leaf
        if self.i + 1 < len(offsets):
            self.i += 1
            return True
        while self.stack:
            bdata, boffsets, bi, bpgno = self.stack.pop()
            if bi + 1 < len(boffsets):
                self.stack.append((bdata, boffsets, bi + 1, bpgno))
                self._descend(self.db.child(bdata, boffsets[bi + 1], bpgno))
                return True
        self.first()
        return False

    def skip(self, k: int) -> None:
        """Move ``k`` records on from the first, a leaf page at a time."""
        self.first()
        while k > 0:
            left = len(self.leaf[1]) - self.i
            if k < left:
                self.i += k
                return
            k -= left
            self.i = len(self.leaf[1]) - 1
            if not self.next():
                return
