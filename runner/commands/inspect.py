"""``nbcaffe inspect MODEL_OR_SOLVER``: a net's layers, blobs, shapes, parameter counts and FLOPs.

    nbcaffe inspect lenet_train_test.prototxt --phase TRAIN
    nbcaffe inspect lenet_solver.prototxt              # the solver's train net (phase TRAIN)
    nbcaffe inspect lenet_solver.prototxt --phase TEST # its first test net (--test-net K: K-th)
    nbcaffe inspect deploy.prototxt --weights w.caffemodel --json

Shapes of data layers come, in order of preference, from ``--input-shape BLOB=N,C,H,W`` (repeat
for several blobs); else from the data source when it exists: the first Datum of an LMDB ``Data``
source (batch_size and crop_size applied), the first HDF5 file of an ``HDF5Data`` list, the first
image of an ``ImageData`` list. Sources are looked up as the Net looks them up: as written
(relative to the working directory, like Caffe), then relative to the prototxt's directory.
Otherwise the command stops with an error naming the layer and the ``--input-shape`` to give.
Shapes of known example data sets are never assumed. ``--weights`` checks that a .caffemodel
loads into the net (Caffe's CopyTrainedLayersFrom rules) and reports which layers it fills.

A file ``inspect`` accepts builds: it runs the solver's checks (for a solver file) and constructs
the Net on the cpu backend as ``train``/``test``/``Net()`` would (the memory check before
allocating, every layer's own setup checks), then prints the memory the net needs (blobs and
parameters with their diffs, the convolution workspace; ``netdef.limits.estimate_memory``).

Columns: layer, type, bottoms -> tops, top shapes ("scalar" for a loss), parameter count (a layer
sharing another's blobs by ``param.name`` shows them too; the total counts each blob once) and
forward MFLOPs (netdef.shapes' convention: 2 x MACs for conv/inner product). ``--json`` prints
``{"layers": [{"name", "type", "bottoms", "tops", "top_shapes", "params", "flops", ...}],
"totals": {"layers", "params", "flops", "blobs"}, ...}``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from netdef.errors import NetDefinitionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_OR_SOLVER", help="net or solver prototxt")
    parser.add_argument("--phase", choices=["TRAIN", "TEST", "train", "test"], default=None,
                        help="net phase (default: TEST for a net, TRAIN for a solver)")
    parser.add_argument("--stage", action="append", default=None,
                        help="NetState stage (repeat for several)")
    parser.add_argument("--level", type=int, default=None, help="NetState level")
    parser.add_argument("--test-net", type=int, default=0,
                        help="for a solver with --phase TEST: which test net (default 0)")
    parser.add_argument("--weights", default=None, help=".caffemodel to check against the net")
    parser.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                        help="shape of a data/input blob (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def parse_input_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    """``["data=64,1,28,28"]`` -> ``{"data": (64, 1, 28, 28)}``; NetDefinitionError if malformed."""
    from netdef.errors import NetDefinitionError

    out = {}
    for item in items:
        name, eq, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not eq or not name or not shape or any(d < 0 for d in shape):
            raise NetDefinitionError(f"--input-shape '{item}': expected BLOB=N,C,H,W "
                                     "(non-negative integers)")
        out[name] = shape
    return out


class MissingSourceError(NetDefinitionError):
    """A data layer's shape needs its source, which is not at hand (``draw`` then goes on
    without shapes)."""


SOURCE_FIELDS = {"Data": "data_param", "HDF5Data": "hdf5_data_param",
                 "ImageData": "image_data_param"}


def _candidates(path: str, base: Path) -> list[Path]:
    """Where a source path written in a prototxt may be, as the Net looks for it
    (runner.data.sources.resolve_source): as written (relative to the working directory, like
    Caffe), then relative to the prototxt's directory."""
    return list(dict.fromkeys([Path(path), base / path]))


def _find(path: str, base: Path) -> Path | None:
    for cand in _candidates(path, base):
        if cand.exists():
            return cand
    return None


def source_shapes(lp, base: Path) -> list[tuple[int, ...]] | None:
    """Top shapes of a data layer read from its source if it exists, else None."""
    from netdef.errors import DataError
    from netdef.shapes import datum_top_shapes

    if lp.type == "Data" and lp.data_param.source:
        src = _find(lp.data_param.source, base)
        if src is None:
            return None
        if lp.data_param.backend != lp.data_param.LMDB and not (src / "data.mdb").exists():
            return None
        return datum_top_shapes(lp, first_datum_chw(src))
    if lp.type == "HDF5Data" and lp.hdf5_data_param.source:
        lst = _find(lp.hdf5_data_param.source, base)
        if lst is None:
            return None
        from runner.data.sources import read_hdf5_list
        files = read_hdf5_list(str(lst), lp.name)
        h5 = _find(files[0], lst.parent) or _find(files[0], base)
        if h5 is None:
            return None
        import h5py

        from netdef.weights import H5_ERRORS
        try:
            with h5py.File(h5, "r") as f:
                b = lp.hdf5_data_param.batch_size
                tops = []
                for t in lp.top:
                    if t not in f:
                        raise DataError(f"{h5}: no dataset '{t}' for top '{t}' of layer '{lp.name}'")
                    tops.append((b,) + tuple(f[t].shape[1:]))
                return tops
        except H5_ERRORS as e:
            raise DataError(f"{h5}: cannot open HDF5 file ({e})") from None
    if lp.type == "ImageData" and lp.image_data_param.source:
        lst = _find(lp.image_data_param.source, base)
        if lst is None:
            return None
        lines = [x.split() for x in lst.read_text().splitlines() if x.strip()]
        if not lines:
            raise DataError(f"{lst}: image list is empty")
        img = _find(lp.image_data_param.root_folder + lines[0][0], base)
        if img is None:
            return None
        from PIL import Image
        with Image.open(img) as im:
            w, h = im.size
        c = 3 if lp.image_data_param.is_color else 1
        crop = lp.transform_param.crop_size
        if crop:
            h = w = crop
        b = lp.image_data_param.batch_size
        return [(b, c, h, w)] + [(b,)] * (len(lp.top) - 1)
    return None


def first_datum_chw(lmdb_dir: Path) -> tuple[int, int, int]:
    """(channels, height, width) of the first Datum of a Caffe LMDB (decoding encoded images),
    read through the checked reader the Data layer uses (runner.data.db)."""
    from runner.data.datum import datum_to_array, parse_datum
    from runner.data.db import open_reader

    with open_reader(lmdb_dir, "lmdb") as r:
        key, value = r.next()
    where = f"{lmdb_dir} record {key.decode(errors='replace')!r}"
    return tuple(datum_to_array(parse_datum(value, where), where).shape)


def load(args, extra: dict | None = None) -> tuple:
    """(graph, net_param, title) for the command-line arguments. ``extra`` (a dict) receives
    what ``check_builds`` needs: the solver parameter, the NetState, the data shapes, the data
    layers whose sources were not read, the folder sources are looked for in."""
    from netdef.graph import build_graph, filter_layers
    from netdef.prototxt import is_solver, read_net, read_solver, solver_nets
    from netdef.shapes import needs_data_shapes
    from proto import caffe_pb2 as pb

    path = args.model
    phase = args.phase.upper() if args.phase else None
    solver_param = None
    if is_solver(path):
        solver_param = read_solver(path)
        nets = solver_nets(solver_param, path)
        if phase == "TEST":
            if not nets.tests:
                from netdef.errors import SolverError
                raise SolverError(f"{path}: the solver has no test net")
            if not 0 <= args.test_net < len(nets.tests):
                from netdef.errors import SolverError
                raise SolverError(f"{path}: --test-net {args.test_net} out of range "
                                  f"({len(nets.tests)} test nets)")
            net, src = nets.tests[args.test_net], nets.test_sources[args.test_net]
        else:
            net, src = nets.train, nets.train_source
        phase = None  # the solver set net.state
        title = f"{path} -> {src}"
        base = Path(src).parent if src and os.path.exists(src) else Path(path).parent
    else:
        net = read_net(path)
        phase = phase or "TEST"
        title = path
        base = Path(path).parent
    shapes = parse_input_shapes(args.input_shape)
    state = pb.NetState()
    state.CopyFrom(net.state)
    if phase:
        state.phase = pb.Phase.Value(phase)
    if args.stage is not None:
        del state.stage[:]
        state.stage.extend(args.stage)
    if args.level is not None:
        state.level = args.level
    unread: set[str] = set()
    for lp in filter_layers(net, state):
        if lp.type in SOURCE_FIELDS and (any(t in shapes for t in lp.top)
                                          or _find(getattr(lp, SOURCE_FIELDS[lp.type]).source,
                                                   base) is None):
            unread.add(lp.name)
        if needs_data_shapes(lp) and not any(t in shapes for t in lp.top):
            found = source_shapes(lp, base)
            if found is not None:
                shapes.update(zip(lp.top, found))
            elif lp.type in ("Data", "HDF5Data", "ImageData"):
                src = getattr(lp, {"Data": "data_param", "HDF5Data": "hdf5_data_param",
                                   "ImageData": "image_data_param"}[lp.type]).source
                tried = ", ".join(str(c) for c in _candidates(src, base))
                raise MissingSourceError(
                    f"layer '{lp.name}' ({lp.type}): the shape of top '{lp.top[0]}' comes from "
                    f"its data source '{src}', which was not found (tried: {tried}); build the "
                    f"data (e.g. nbcaffe data mnist) or pass --input-shape {lp.top[0]}=N,C,H,W")
    from runner.backend import get_backend
    from runner.layers.python import PythonLayers
    python = PythonLayers(get_backend("cpu"), pb.Phase.Name(state.phase), None, str(base.resolve()))
    graph = build_graph(net, phase, args.stage, args.level, shapes, layer_shapes=python)
    if extra is not None:
        extra.update(solver=solver_param, state=state, shapes=shapes, unread=unread, base=base)
    return graph, net, title


def check_builds(graph, net, extra: dict):
    """Run what ``nbcaffe train`` / ``Net()`` would run on this file beyond the graph: the
    solver's own checks (``runner.solver.solver.check_solver``) and the construction of the Net
    on the cpu backend (the memory check before allocating, every layer's setup: filler types,
    dropout ratio, ...; data layers whose sources were read open them as training would), so a
    file ``inspect`` accepts builds. Data layers whose sources were not read become Input layers
    of the shapes given. Nothing is computed; the Net is closed at once. Returns the memory
    estimate the Net checked (netdef.limits.MemoryEstimate, workspace capped as the cpu backend
    allocates it)."""
    from proto import caffe_pb2 as pb
    from runner.net import Net
    if extra.get("solver") is not None:
        from runner.solver.solver import check_solver
        check_solver(extra["solver"], extra.get("where"))
    from netdef.graph import filter_layers
    param = pb.NetParameter()
    param.CopyFrom(net)
    del param.layer[:]
    param.state.CopyFrom(extra["state"])
    for lp in filter_layers(net, extra["state"]):
        if lp.name in extra["unread"]:
            new = param.layer.add(name=lp.name, type="Input")
            new.top.extend(lp.top)
            for t in lp.top:
                new.input_param.shape.add().dim.extend(graph.blob_shapes[t])
        else:
            dst = param.layer.add()
            dst.CopyFrom(lp)
            del dst.include[:]
            del dst.exclude[:]
    built = Net(param, pb.Phase.Name(graph.phase), base_dir=str(extra["base"]))
    built.close()
    return built.memory


def run(args) -> int:
    from netdef.limits import human
    from netdef.weights import copy_trained_layers
    from proto import caffe_pb2 as pb

    extra: dict = {"where": args.model}
    graph, net, title = load(args, extra)
    memory = check_builds(graph, net, extra)
    loaded = copied = None
    if args.weights:
        copied = copy_trained_layers(graph, args.weights)
        if copied.no_match(graph.name):
            from netdef.errors import WeightsError
            raise WeightsError(copied.no_match(graph.name))
        loaded = sorted(copied)
    rows = []
    for n in graph.layers:
        rows.append({"name": n.name, "type": n.type, "bottoms": n.bottoms, "tops": n.tops,
                     "top_shapes": [list(s) for s in n.top_shapes],
                     "params": n.num_params,
                     "param_shapes": [list(s) for s in n.param_shapes],
                     "flops": n.flops, "loss_weights": n.loss_weights,
                     "need_backward": n.need_backward})
    totals = {"layers": len(graph.layers), "params": graph.num_params, "flops": graph.flops,
              "blobs": len(graph.blob_shapes),
              "memory_bytes": {"total": memory.total, "blobs": memory.blobs,
                               "params": memory.params, "workspace": memory.workspace}}
    if args.json:
        doc = {"net": graph.name, "source": title, "phase": pb.Phase.Name(graph.phase),
               "stages": list(graph.stages), "level": graph.level, "inputs": graph.inputs,
               "outputs": graph.outputs, "layers": rows, "totals": totals}
        if loaded is not None:
            doc["weights"] = {"file": args.weights, "layers_loaded": loaded,
                              "source_layers_ignored": copied.ignored,
                              "layers_left_fresh": copied.fresh}
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    stage = f" stages={','.join(graph.stages)}" if graph.stages else ""
    out.write(f"net {graph.name!r} ({title}) phase {pb.Phase.Name(graph.phase)}{stage} "
              f"level {graph.level}\n")
    table = [("layer", "type", "bottoms -> tops", "top shapes", "params", "MFLOPs")]
    for r in rows:
        shapes = " ".join("x".join(map(str, s)) if s else "scalar" for s in r["top_shapes"])
        table.append((r["name"], r["type"], f"{','.join(r['bottoms'])} -> {','.join(r['tops'])}",
                      shapes or "-", f"{r['params']:,}", f"{r['flops'] / 1e6:.3f}"))
    table.append(("total", f"{totals['layers']} layers", "", "", f"{totals['params']:,}",
                  f"{totals['flops'] / 1e6:.3f}"))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for k, row in enumerate(table):
        cells = [c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")
        if k == 0 or k == len(table) - 2:
            out.write("  ".join("-" * w for w in widths) + "\n")
    out.write(f"inputs: {', '.join(graph.inputs) or '-'}; outputs: {', '.join(graph.outputs)}\n")
    name, nbytes = memory.largest
    out.write(f"memory: {human(memory.total)} (blobs {human(memory.blobs)}, parameters "
              f"{human(memory.params)}, workspace {human(memory.workspace)}; largest blob "
              f"'{name}' {human(nbytes)}; data and diffs, float32, cpu)\n")
    if loaded is not None:
        out.write(f"weights {args.weights}: loaded {len(loaded)} layer(s): {', '.join(loaded)}\n")
        if copied.ignored:
            out.write(f"  ignored source layers (not in the net): {', '.join(copied.ignored)}\n")
        if copied.fresh:
            out.write(f"  left at their initialisation (not in the file): {', '.join(copied.fresh)}\n")
    return 0
