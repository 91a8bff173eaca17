"""Damaged LMDBs fed to a training net, in a process of its own (run by
tests/netdef/test_fuzz.py::test_damaged_lmdbs_give_only_caffe_errors), so that a crash (a
signal) fails the test instead of killing pytest.

    python -m tests.netdef.fuzz_lmdb_worker WORKDIR

Hypothesis (seeded) draws a damage: bytes of data.mdb flipped, overwritten, cut or repeated, the
file truncated, or one record's Datum replaced by a damaged one (bytes mutated, another size,
negative or huge dimensions, float_data of the wrong length, a broken encoded image). A Net with
a Data layer (crop, mirror, mean values) is built on it and run over every record and past the
wrap-around. Each example prints one line before it runs (so the last line names the culprit
of a crash) and the process prints the tally as JSON at the end; it exits 0 when every outcome
was a valid run or a CaffeError.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from proto import caffe_pb2 as pb
from runner.data.datum import array_to_datum
from runner.data.db import DBWriter
from tests.netdef.fuzz_common import OUTCOMES, fuzz_settings, mutate_bytes, record, write_report

N_RECORDS = 12
NET = """name: "fuzz"
layer {{ name: "d" type: "Data" top: "data" top: "label"
  transform_param {{ crop_size: 4 mirror: true mean_value: 10 scale: 0.01 }}
  data_param {{ source: "{db}" batch_size: 5 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""


def records() -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(N_RECORDS):
        a = rng.integers(0, 255, (1, 6, 6), dtype=np.uint8)
        out.append((b"%08d" % i, array_to_datum(a, i % 3).SerializeToString()))
    return out


def damaged_datum(value: bytes, draw) -> bytes:
    d = pb.Datum()
    d.ParseFromString(value)
    kind = draw(st.sampled_from(["bytes", "shape", "float", "encoded", "label"]))
    if kind == "bytes":
        return mutate_bytes(value, draw)
    if kind == "shape":
        for f in ("channels", "height", "width"):
            if draw(st.booleans()):
                setattr(d, f, draw(st.sampled_from([0, -1, 2, 7, 100000, 2**31 - 1])))
    elif kind == "float":
        d.ClearField("data")
        d.float_data.extend([1.0] * draw(st.integers(0, 60)))
    elif kind == "encoded":
        d.encoded = True
        if draw(st.booleans()):
            import io

            from PIL import Image
            buf = io.BytesIO()
            Image.new("RGB", (6, 6)).save(buf, format="PNG")
            d.data = mutate_bytes(buf.getvalue(), draw)
    else:
        d.label = draw(st.sampled_from([-1, 3, 2**31 - 1]))
    return d.SerializeToString()


def build(folder: Path, recs: list[tuple[bytes, bytes]]) -> Path:
    db = folder / "db"
    shutil.rmtree(db, ignore_errors=True)
    with DBWriter(db) as w:
        for k, v in recs:
            w.put(k, v)
    return db


def run_net(folder: Path) -> None:
    from runner.net import Net
    (folder / "net.prototxt").write_text(NET.format(db=folder / "db"))
    net = Net(str(folder / "net.prototxt"), "TRAIN", seed=1)
    try:
        for _ in range(N_RECORDS // 5 + 2):
            net.forward_backward()
    finally:
        net.close()


def main() -> int:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    base = records()
    clean = build(folder / "clean", base)
    clean_bytes = (clean / "data.mdb").read_bytes()
    count = [0]

    @fuzz_settings(60)
    @given(data=st.data())
    def fuzz(data):
        count[0] += 1
        where = data.draw(st.sampled_from(["file", "record"]))
        if where == "file":
            db = folder / "db"
            shutil.rmtree(db, ignore_errors=True)
            db.mkdir()
            (db / "data.mdb").write_bytes(mutate_bytes(clean_bytes, data.draw))
        else:
            recs = list(base)
            i = data.draw(st.integers(0, N_RECORDS - 1))
            recs[i] = (recs[i][0], damaged_datum(recs[i][1], data.draw))
            build(folder, recs)
        print(f"example {count[0]}: {where}", flush=True)
        record(f"lmdb ({where})", lambda: run_net(folder))
    fuzz()
    tally = {f"{k[0]}: {k[1]}": n for k, n in sorted(OUTCOMES.items())}
    write_report()
    print(json.dumps({"examples": count[0], "outcomes": tally}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    sys.exit(main())
