"""Flags shared by the train/test/time verbs (Caffe's gflags spellings are normalized by cli.py)."""
from __future__ import annotations

import argparse


def add_device_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default=None, metavar="ID",
                   help="Caffe's -gpu: any value but -1 selects the cuda backend (e.g. -gpu 0, -gpu all)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="backend to run on (overrides --gpu); default cpu")
    p.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16"), default="fp32",
                   help="cuda: input format of the Convolution/Deconvolution/InnerProduct GEMMs: fp32 "
                        "(default, as Caffe) or tf32/fp16/bf16 on the tensor cores (FP32 accumulation)")


def add_state_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", default="", help="comma-separated NetState stages (Caffe's -stage)")
    p.add_argument("--level", type=int, default=0, help="NetState level (Caffe's -level)")


def device_of(args) -> str:
    """cpu or cuda from --device / --gpu."""
    if getattr(args, "device", None):
        return args.device
    gpu = getattr(args, "gpu", None)
    if gpu is not None and str(gpu).strip() not in ("", "-1"):
        return "cuda"
    return "cpu"


def stages_of(args) -> tuple[str, ...]:
    return tuple(s for s in (args.stage or "").split(",") if s)


def make_log(args):
    from runner.solver.glog import GLog
    return GLog(path=getattr(args, "log", None))
