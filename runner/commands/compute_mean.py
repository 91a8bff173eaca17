"""``nbcaffe compute-mean DB [OUT.binaryproto] [--backend lmdb]`` (also ``compute_image_mean``):
Caffe's compute_image_mean: the mean of every Datum as a BlobProto with num=1, channels, height,
width (float data); the per-channel means are logged, and without OUT only logged."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("db", help="input database (LMDB folder)")
    p.add_argument("out", nargs="?", default=None, help="output .binaryproto (optional, as in Caffe)")
    p.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))


def run(args) -> int:
    from netdef.weights import write_binaryproto
    from runner.data.imageset import compute_mean
    from runner.solver.glog import GLog
    log = GLog()
    mean = compute_mean(args.db, args.backend, log=log)
    if args.out:
        log(f"Write to {args.out}")
        write_binaryproto(args.out, mean, legacy_4d=True)
    return 0
