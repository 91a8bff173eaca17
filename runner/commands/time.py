"""``nbcaffe time -model M [-iterations 50] [-phase TRAIN] [-gpu 0]``: Caffe's ``caffe time``.

Times every layer's forward and backward pass (the backend synchronized around each layer on
cuda) and prints Caffe's benchmark block: ``<layer>\\tforward: X ms.`` / ``backward: X ms.`` per
layer (with the layer's achieved GFLOP/s from netdef's FLOP count; backward counted as 2x forward
FLOPs for layers with parameters, 1x otherwise), then ``Average Forward pass``, ``Average Backward
pass``, ``Average Forward-Backward`` and ``Total Time``. On cuda it adds the forward-backward time
with the launches replayed (``runner/backend/replay.py``), which is what a training iteration pays.

``--compare cpu,cuda --batch 64,128,256`` replaces the data layers by Input layers of the same
shapes filled with random data (labels 0), and prints a table, a row per batch as soon as it is
measured: batch, CPU ms and GPU ms per forward-backward, the speed-up, and each device's seconds
for 20 iterations (the unit of Caffe's published CPU-vs-K40 AlexNet table).
"""
from __future__ import annotations

import argparse
import os
import time as _time

import numpy as np

from runner.commands._common import add_device_flags, add_state_flags, make_log, resolve_device, stages_of

DATA_TYPES = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "Input")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="net prototxt")
    p.add_argument("--iterations", type=int, default=50, help="timed iterations (default 50)")
    p.add_argument("--phase", default="TRAIN", choices=("TRAIN", "TEST"), type=str.upper)
    add_device_flags(p)
    add_state_flags(p)
    p.add_argument("--compare", default="", help="devices to compare, e.g. cpu,cuda")
    p.add_argument("--batch", default="", help="batch sizes for --compare (or to override), e.g. 64,128")
    p.add_argument("--log", default=None, help="also append the log lines to this file")


def synthetic_net_param(param, phase: str, stages, level: int, batch: int | None):
    """A copy of ``param`` whose data layers (kept for this NetState) are replaced by Input layers
    with the same top shapes (batch axis set to ``batch`` when given)."""
    from netdef.graph import filter_layers, net_state
    from proto import caffe_pb2 as pb
    from runner.data.probe import data_input_shapes
    state = net_state(param, phase, stages, level)
    kept = filter_layers(param, state)
    shapes = data_input_shapes(param, phase, stages, level)
    from netdef.shapes import infer
    out = pb.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    out.state.CopyFrom(state)
    for lp in kept:
        if lp.type in DATA_TYPES and not len(lp.bottom):
            tops = infer(lp, [], [shapes.get(t) for t in lp.top]).top_shapes
            new = out.layer.add(name=lp.name, type="Input")
            new.top.extend(lp.top)
            for s in tops:
                s = list(s)
                if batch:
                    s[0] = batch
                new.input_param.shape.add().dim.extend(s)
        else:
            dst = out.layer.add()
            dst.CopyFrom(lp)
            del dst.include[:]
            del dst.exclude[:]
    return out


def _fill_inputs(net, rng) -> None:
    for name in net.inputs:
        b = net.blobs[name]
        if len(b.shape) <= 2:       # labels
            b.data = np.zeros(b.shape, np.float32)
        else:
            b.data = rng.random(b.shape, dtype=np.float32)


def time_net(net, iterations: int, log=None) -> dict:
    """Caffe's time(): per-layer forward/backward ms averaged over ``iterations``; returns
    {'forward': {layer: ms}, 'backward': {...}, 'fwd_ms', 'bwd_ms', 'total_ms', 'fb_ms'}."""
    log = log or (lambda *a, **k: None)
    from runner.solver.glog import fmt
    be = net.backend
    layers = net.layers
    bottoms, tops = net.bottom_vecs, net.top_vecs
    need_bw, prop = net.need_backward_flags, net.bottom_need_backward
    log("Performing Forward")
    loss = net.forward_loss()
    log(f"Initial loss: {fmt(loss)}")
    log("Performing Backward")
    net.backward()
    fwd = np.zeros(len(layers))
    bwd = np.zeros(len(layers))
    log("*** Benchmark begins ***")
    log(f"Testing for {iterations} iterations.")
    t_total = _time.perf_counter()
    fwd_total = bwd_total = 0.0
    for j in range(iterations):
        t_iter = _time.perf_counter()
        t0 = _time.perf_counter()
        for i, layer in enumerate(layers):
            t = _time.perf_counter()
            layer.reshape(bottoms[i], tops[i])
            layer.forward(bottoms[i], tops[i])
            be.synchronize()
            fwd[i] += _time.perf_counter() - t
        fwd_total += _time.perf_counter() - t0
        t0 = _time.perf_counter()
        for i in range(len(layers) - 1, -1, -1):
            t = _time.perf_counter()
            if need_bw[i]:
                layers[i].backward(tops[i], prop[i], bottoms[i])
            be.synchronize()
            bwd[i] += _time.perf_counter() - t
        bwd_total += _time.perf_counter() - t0
        log(f"Iteration: {j + 1} forward-backward time: {fmt((_time.perf_counter() - t_iter) * 1e3)} ms.")
    total = (_time.perf_counter() - t_total) * 1e3
    log("Average time per layer: ")
    nodes = {n.name: n for n in net.graph.layers}
    res = {"forward": {}, "backward": {}}
    for i, layer in enumerate(layers):
        f_ms = fwd[i] * 1e3 / iterations
        b_ms = bwd[i] * 1e3 / iterations
        flops = float(getattr(nodes.get(layer.name), "flops", 0) or 0)
        bflops = flops * (2 if layer.blobs else 1)
        fr = f" ({fmt(flops / f_ms / 1e6)} GFLOP/s)" if flops and f_ms > 0 else ""
        br = f" ({fmt(bflops / b_ms / 1e6)} GFLOP/s)" if flops and b_ms > 0 and need_bw[i] else ""
        log(f"{layer.name:>10}\tforward: {fmt(f_ms)} ms.{fr}")
        log(f"{layer.name:>10}\tbackward: {fmt(b_ms)} ms.{br}")
        res["forward"][layer.name], res["backward"][layer.name] = f_ms, b_ms
    res["fwd_ms"] = fwd_total * 1e3 / iterations
    res["bwd_ms"] = bwd_total * 1e3 / iterations
    res["fb_ms"] = total / iterations
    res["total_ms"] = total
    log(f"Average Forward pass: {fmt(res['fwd_ms'])} ms.")
    log(f"Average Backward pass: {fmt(res['bwd_ms'])} ms.")
    log(f"Average Forward-Backward: {fmt(res['fb_ms'])} ms.")
    log(f"Total Time: {fmt(total)} ms.")
    fb = _replayed_fb_ms(net, iterations)
    if fb is not None:
        res["fb_replay_ms"] = fb
        log(f"Average Forward-Backward with replayed launches (as training runs): {fmt(fb)} ms.")
    log("*** Benchmark ends ***")
    return res


def _replayed_fb_ms(net, iterations: int) -> float | None:
    """cuda (replay on): ms per forward-backward through runner.backend.replay.NetReplay -- no
    synchronisation between layers, launches re-issued pre-bound, the loss read on the host once
    per pass as the solver does -- after an eager and a recording pass. None on cpu or with
    NBCAFFE_REPLAY=0."""
    rep = net.backend.executor(net)
    if not rep.replays:
        return None
    for _ in range(2):              # first sight (eager), then the recording pass
        rep.forward_backward()
    net.backend.synchronize()
    t0 = _time.perf_counter()
    for _ in range(iterations):
        rep.forward_backward()
    net.backend.synchronize()
    return (_time.perf_counter() - t0) * 1e3 / iterations


def _build(model, phase, device, stages, level, batch, synthetic: bool, log=None,
           precision: str | None = None):
    from netdef.prototxt import read_net
    from runner.net import Net
    if not synthetic:
        return Net(model, phase, device=device, stages=stages, level=level, seed=0, log=log,
                   precision=precision)
    from runner.data.sources import resolve_data_paths
    param = read_net(model)
    resolve_data_paths(param, os.path.dirname(os.path.abspath(model)))
    net = Net(synthetic_net_param(param, phase, stages, level, batch), phase, device=device, seed=0,
              log=log, precision=precision)
    _fill_inputs(net, np.random.default_rng(0))
    return net


COMPARE_ITERATIONS = 20   # Caffe's published CPU-vs-K40 table: seconds for 20 iterations per batch


def _compare(args, devices: list[str], batches: list[int], stages) -> None:
    """The CPU-vs-GPU table: one row per batch size, printed as soon as it is measured (so a run
    stopped part way keeps its rows): the forward-backward ms per iteration on each device (the
    mean of ``args.iterations``), the speed-up of the second device over the first, and each
    device's time for COMPARE_ITERATIONS iterations in seconds (that mean x 20), the unit of
    Caffe's published table (AlexNet: CPU 64/124/257 s, K40 7.5/14.5/28.5 s at batch
    64/128/256)."""
    head = "batch\t" + "\t".join(f"{d} ms" for d in devices)
    if len(devices) == 2:
        head += f"\tspeed-up ({devices[0]}/{devices[1]})"
    head += "".join(f"\t{d} s/{COMPARE_ITERATIONS} it" for d in devices)
    print(head, flush=True)
    for b in batches or [None]:
        row: dict = {}
        for d in devices:
            net = _build(args.model, args.phase, d, stages, args.level, b, True,
                         precision=args.precision if d == "cuda" else None)
            try:
                row["batch"] = net.blobs[net.inputs[0]].shape[0] if net.inputs else b
                row[d] = time_net(net, args.iterations)["fb_ms"]
            finally:
                net.close()
        line = f"{row['batch']}\t" + "\t".join(f"{row[d]:.3f}" for d in devices)
        if len(devices) == 2:
            line += f"\t{row[devices[0]] / row[devices[1]]:.2f}x"
        line += "".join(f"\t{row[d] * COMPARE_ITERATIONS / 1e3:.2f}" for d in devices)
        print(line, flush=True)


def run(args) -> int:
    from netdef.errors import CaffeError
    if args.iterations < 1:
        raise CaffeError("--iterations must be >= 1")
    log = make_log(args)
    stages = stages_of(args)
    batches = [int(b) for b in args.batch.split(",") if b]
    try:
        if args.compare:
            devices = [d.strip() for d in args.compare.split(",") if d.strip()]
            for d in devices:
                if d not in ("cpu", "cuda"):
                    raise CaffeError(f"--compare: unknown device {d!r} (cpu, cuda)")
            _compare(args, devices, batches, stages)
            return 0
        synthetic = bool(batches)
        net = _build(args.model, args.phase, resolve_device(args, None, log), stages, args.level,
                     batches[0] if batches else None, synthetic, log, args.precision)
        try:
            time_net(net, args.iterations, log)
        finally:
            net.close()
    finally:
        log.close()
    return 0
