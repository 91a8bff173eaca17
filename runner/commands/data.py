"""``nbcaffe data mnist [--from DIR] [--out examples/mnist] [--force]``: get the four MNIST .gz files
(downloaded from a public mirror, or taken from DIR), check their MD5s, and build
``examples/mnist/mnist_train_lmdb`` and ``examples/mnist/mnist_test_lmdb`` like Caffe's
data/mnist/get_mnist.sh + examples/mnist/create_mnist.sh."""
from __future__ import annotations

import argparse
import os
import shutil


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=("mnist",), help="data set to prepare")
    p.add_argument("--from", dest="source", default=None,
                   help="folder holding the four MNIST .gz files (no download)")
    p.add_argument("--download-dir", default="data/mnist", help="where downloads go (default data/mnist)")
    p.add_argument("--out", default="examples/mnist", help="folder for the LMDBs (default examples/mnist)")
    p.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    p.add_argument("--force", action="store_true", help="rebuild the databases if they exist")


def run(args) -> int:
    from netdef.errors import DataError
    from runner.data.mnist import MNIST_FILES, convert_mnist, fetch_mnist, md5sum
    from runner.solver.glog import GLog
    log = GLog()
    if args.source:
        src = args.source
        for name, md5 in MNIST_FILES.items():
            path = os.path.join(src, name)
            if not os.path.isfile(path):
                raise DataError(f"{path}: not found (--from must hold {', '.join(MNIST_FILES)})")
            got = md5sum(path)
            if got != md5:
                raise DataError(f"{path}: MD5 {got} does not match the published {md5}")
        log(f"Using MNIST from {src} (MD5s verified)")
    else:
        src = str(fetch_mnist(args.download_dir, log=log))
    sets = (("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            ("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
    for split, images, labels in sets:
        out = os.path.join(args.out, f"mnist_{split}_{args.backend}")
        if os.path.exists(out):
            if not args.force:
                log(f"{out} exists; keeping it (--force rebuilds)")
                continue
            shutil.rmtree(out)
        log(f"Creating {out}")
        convert_mnist(os.path.join(src, images), os.path.join(src, labels), out, args.backend,
                      log=log)
    log("Done.")
    return 0
