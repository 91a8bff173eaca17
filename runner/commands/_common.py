"""Flags shared by the train/test/time verbs (Caffe's gflags spellings are normalized by cli.py),
and the device choice as Caffe's tools/caffe.cpp makes it."""
from __future__ import annotations

import argparse


def add_device_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default=None, metavar="ID",
                   help="Caffe's -gpu: the GPU to run on (cuda backend), e.g. -gpu 0; -1 = cpu")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="backend to run on (overrides --gpu); default cpu")
    p.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16"), default="fp32",
                   help="cuda: input format of the Convolution/Deconvolution/InnerProduct GEMMs: fp32 "
                        "(default, as Caffe) or tf32/fp16/bf16 on the tensor cores (FP32 accumulation)")


def add_state_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", default="", help="comma-separated NetState stages (Caffe's -stage)")
    p.add_argument("--level", type=int, default=0, help="NetState level (Caffe's -level)")


def resolve_device(args, solver_param=None, log=None) -> str:
    """'cpu' or 'cuda', as Caffe's ``caffe`` tool chooses, with its log lines:

    - ``--device cpu|cuda`` wins; then ``-gpu N`` (-1: cpu); for ``train`` with neither flag, an
      explicit ``solver_mode: GPU`` in the solver selects GPU ``device_id`` (default 0), as
      caffe.cpp does;
    - a GPU asked for by a flag on a machine without one is a ResourceError naming the flag and
      what was found; asked for by ``solver_mode`` it is one log line and the cpu backend (so
      Caffe's own example solvers, which say GPU, run anywhere).
    """
    from netdef.errors import ResourceError
    from runner.backend import cuda_problem, select_gpu
    log = log or (lambda *a, **k: None)
    asked = None
    ids: list[int] | None = None
    if getattr(args, "device", None):
        if args.device == "cpu":
            log("Use CPU.")
            return "cpu"
        asked, ids = "--device cuda", [0]
    elif getattr(args, "gpu", None) is not None:
        from runner.dist.launch import parse_gpus
        ids = parse_gpus(args.gpu)
        asked = f"-gpu {args.gpu}"
    elif solver_param is not None and solver_param.HasField("solver_mode") and \
            solver_param.solver_mode == solver_param.GPU:
        dev = int(solver_param.device_id) if solver_param.HasField("device_id") else 0
        problem = cuda_problem()
        if problem is not None:
            log(f"solver_mode is GPU (device_id {dev}) but {problem}: using the cpu backend")
            return "cpu"
        ids, asked = [dev], f"solver_mode: GPU, device_id: {dev}"
    if not ids:
        log("Use CPU.")
        return "cpu"
    problem = cuda_problem()
    if problem is not None:
        raise ResourceError(f"{asked} asks for the cuda backend, but {problem}; leave out "
                            f"{asked.split(',')[0]} to run on the cpu backend")
    if len(ids) > 1:
        log(f"{asked}: this command runs on one GPU; using GPU {ids[0]} (training on several: "
            "nbcaffe train)", "W")
    name = select_gpu(ids[0])
    log(f"Using GPUs {ids[0]}")
    log(f"GPU {ids[0]}: {name}")
    return "cuda"


def device_of(args) -> str:
    """cpu or cuda from --device / --gpu (no GPU check: ``resolve_device`` does that)."""
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
