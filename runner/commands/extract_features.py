"""``nbcaffe extract_features WEIGHTS MODEL BLOB1[,BLOB2...] DB1[,DB2...] NUM_BATCHES DB_TYPE [CPU|GPU]
[DEVICE_ID]``: Caffe's tools/extract_features. Builds MODEL in the TEST phase with WEIGHTS, runs it
forward NUM_BATCHES times and writes, for every image of every batch, each named blob's row as a
Datum (channels/height/width of the blob's legacy 4-D shape, ``float_data``, no label) under the
key ``%010d`` (image index) into the matching new database (lmdb or leveldb)."""
from __future__ import annotations

import argparse

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="pretrained .caffemodel")
    p.add_argument("model", help="feature extraction net prototxt (with its data layer)")
    p.add_argument("blobs", help="comma-separated blob names to extract")
    p.add_argument("dbs", help="comma-separated output databases, one per blob (must not exist)")
    p.add_argument("num_batches", type=int, help="forward passes to run")
    p.add_argument("db_type", type=str.lower, choices=("lmdb", "leveldb"), help="lmdb or leveldb")
    p.add_argument("mode", nargs="?", default="CPU", type=str.upper, choices=("CPU", "GPU"))
    p.add_argument("device_id", nargs="?", type=int, default=0)


def run(args) -> int:
    from netdef.errors import CaffeError
    from proto import caffe_pb2 as pb
    from runner.data.db import DBWriter
    from runner.net import Net
    from runner.solver.glog import GLog

    log = GLog()
    names = [b for b in args.blobs.split(",") if b]
    dbs = [d for d in args.dbs.split(",") if d]
    if len(names) != len(dbs):
        raise CaffeError(f"{len(names)} blob names but {len(dbs)} database names: give one "
                         "database per blob")
    if args.num_batches < 1:
        raise CaffeError(f"num_mini_batches must be >= 1, got {args.num_batches}")
    device = "cpu"
    if args.mode == "GPU":
        from runner.backend import select_cuda_device
        select_cuda_device(args.device_id)
        device = "cuda"
        log(f"Using Device_id={args.device_id}")
    else:
        log("Using CPU")
    net = Net(args.model, "TEST", device=device, weights=args.weights)
    try:
        for name in names:
            if name not in net.blobs:
                raise CaffeError(f"Unknown feature blob name {name} in the network {args.model}")
        log("Extracting Features")
        writers = [DBWriter(d, args.db_type) for d in dbs]
        counts = [0] * len(names)
        try:
            for _ in range(args.num_batches):
                net.forward()
                for i, (name, w) in enumerate(zip(names, writers)):
                    blob = net.blobs[name]
                    rows = np.asarray(blob.host_data(), dtype=np.float32).reshape(blob.num, -1)
                    for row in rows:
                        d = pb.Datum(channels=blob.channels, height=blob.height, width=blob.width)
                        d.float_data.extend(row.tolist())
                        w.put(f"{counts[i]:010d}", d.SerializeToString())
                        counts[i] += 1
                        if counts[i] % 1000 == 0:
                            log(f"Extracted features of {counts[i]} query images for feature blob "
                                f"{name}")
        except BaseException:
            for w in writers:
                w.abort()
            raise
        for name, w, n in zip(names, writers, counts):
            w.close()
            if n % 1000 != 0:
                log(f"Extracted features of {n} query images for feature blob {name}")
        log("Successfully extracted the features!")
    finally:
        net.close()
    return 0
