"""``nbcaffe train -solver S [-weights W1,W2 | -snapshot S.solverstate] [-gpu 0 | -gpu 0,1 | -gpu all |
--device cuda]``: Caffe's ``caffe train``. Logs glog-style lines to stderr (and --log FILE) that
Caffe's tools/extra/parse_log.py and ``nbcaffe plot-log`` read. Several GPUs, or ``mpiexec -n K``
around the command, train data-parallel (runner/dist)."""
from __future__ import annotations

import argparse
import os
import sys

from runner.commands._common import add_device_flags, add_state_flags, make_log, resolve_device, stages_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", required=True, help="solver prototxt")
    p.add_argument("--weights", default="",
                   help="comma-separated .caffemodel files to fine-tune from (not with --snapshot)")
    p.add_argument("--snapshot", default="", help=".solverstate to resume training from")
    add_device_flags(p)
    add_state_flags(p)
    p.add_argument("--sigint-effect", default="stop", choices=("stop", "snapshot", "none"),
                   help="what Ctrl-C does: snapshot and stop (default), snapshot, none")
    p.add_argument("--sighup-effect", default="snapshot", choices=("stop", "snapshot", "none"),
                   help="what SIGHUP does (default: snapshot and go on)")
    p.add_argument("--sigterm-effect", default="stop", choices=("stop", "snapshot", "none"),
                   help="what SIGTERM (a batch scheduler's stop) does: snapshot and stop (default), "
                        "snapshot, none")
    p.add_argument("--max-iter", type=int, default=None, help="override the solver's max_iter")
    p.add_argument("--log", default=None, help="also append the log lines to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.add_argument("--no-replay", action="store_true",
                   help="cuda: run every launch through Python instead of replaying the recorded "
                        "steady-state launches (same results, slower; as NBCAFFE_REPLAY=0)")


def run(args) -> int:
    from netdef.errors import SolverError
    from netdef.prototxt import read_solver
    from runner.dist.launch import parse_gpus, relaunch, use_device
    from runner.dist.world import World
    from runner.solver.glog import GLog
    from runner.solver.solver import Solver

    if args.weights and args.snapshot:
        raise SolverError("Give a snapshot to resume training or weights to finetune but not both.")
    if not os.path.isfile(args.solver):
        raise SolverError(f"{args.solver}: solver file not found")
    world = World.from_environment()
    gpus = parse_gpus(args.gpu) if args.device is None else []
    if len(gpus) > 1 and world.size == 1:          # -gpu 0,1 / all: one process per device
        return relaunch(len(gpus), sys.argv[1:])
    if gpus and world.size > 1:                     # this rank's device, the only one it sees
        if len(gpus) != world.size:
            raise SolverError(f"-gpu {args.gpu} lists {len(gpus)} devices for {world.size} "
                              "processes; give one device per process")
        use_device(gpus[world.local_rank % len(gpus)])
        args.gpu = "0"
    log = make_log(args) if world.is_root else GLog(quiet=True)    # rank 0 logs
    try:
        param = read_solver(args.solver)
        device = resolve_device(args, param, log)
        if world.size > 1:
            log(f"Data-parallel: rank {world.rank} of {world.size}")
        solver = Solver(param, device=device, stages=stages_of(args), level=args.level, log=log,
                        solver_path=args.solver, world=world,
                        replay=False if getattr(args, "no_replay", False) else None,
                        precision=args.precision)
    except BaseException:
        log.close()
        raise
    try:
        if args.max_iter is not None:
            solver.param.max_iter = args.max_iter
        solver.set_actions(args.sigint_effect, args.sighup_effect, args.sigterm_effect)
        weights = [w for w in solver.param.weights] + [w for w in args.weights.split(",") if w]
        for w in weights:
            log(f"Finetuning from {w}")
            solver.net.copy_from(w)
        bar = None
        if sys.stderr.isatty() and not args.no_progress:
            try:
                from tqdm import tqdm
                bar = tqdm(total=solver.param.max_iter, unit="it", leave=False, file=sys.stderr)
                log.write = lambda text: tqdm.write(text, file=sys.stderr)
                solver.progress = bar
            except ImportError:
                bar = None
        log("Starting Optimization")
        if args.snapshot:
            log(f"Resuming from {args.snapshot}")
            solver.solve(resume=args.snapshot)
        else:
            solver.solve()
        if bar is not None:
            bar.close()
        log("Optimization Done.")
    finally:
        solver.close()
        log.close()
    return 0
