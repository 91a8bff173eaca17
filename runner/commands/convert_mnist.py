"""``nbcaffe convert-mnist IMAGES LABELS OUT_DB [--backend lmdb|leveldb]``: Caffe's
convert_mnist_data (keys ``%08d``; Datum 1 x 28 x 28 raw bytes + label). Inputs may be .gz."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", help="idx3 image file (e.g. train-images-idx3-ubyte[.gz])")
    p.add_argument("labels", help="idx1 label file")
    p.add_argument("out", help="output database folder (must not exist)")
    p.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))


def run(args) -> int:
    from runner.data.mnist import convert_mnist
    from runner.solver.glog import GLog
    log = GLog()
    convert_mnist(args.images, args.labels, args.out, args.backend,
                  log=log)
    return 0
