"""``nbcaffe convert-imageset ROOT/ LISTFILE OUT_DB [--resize_height H --resize_width W --gray
--shuffle --encoded --encode_type png --backend lmdb --check_size]``: Caffe's convert_imageset.
Keys are ``%08d_<path>``; images are stored BGR (or gray) like OpenCV, raw or encoded. A missing or
undecodable image is skipped with a warning line (Caffe goes on too) and counted at the end;
``--strict`` stops at the first one instead, writing nothing."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="folder the list's paths are relative to")
    p.add_argument("listfile", help="text file: 'path label' per line")
    p.add_argument("out", help="output database folder (must not exist)")
    p.add_argument("--resize-height", type=int, default=0)
    p.add_argument("--resize-width", type=int, default=0)
    p.add_argument("--gray", action="store_true", help="load images as gray")
    p.add_argument("--shuffle", action="store_true", help="shuffle the list (seeded by --seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoded", action="store_true", help="store the encoded image file in the Datum")
    p.add_argument("--encode-type", default="", help="re-encode as png/jpg (implies --encoded)")
    p.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    p.add_argument("--check-size", action="store_true", help="check all images have the same size")
    p.add_argument("--strict", action="store_true",
                   help="fail at the first missing or undecodable image (default: skip it with a "
                        "warning, as Caffe does, and count the skipped ones at the end)")


def run(args) -> int:
    from runner.data.imageset import convert_imageset
    from runner.solver.glog import GLog
    log = GLog()
    convert_imageset(args.root, args.listfile, args.out, args.resize_height, args.resize_width,
                     args.gray, args.shuffle, args.encoded, args.encode_type, args.backend,
                     args.check_size, args.seed, log=log, strict=args.strict)
    return 0
