"""Helpers for tests over ../shared/caffe-models: the data shapes its LMDB/HDF5 sources would
give (the data themselves are not shipped) and the NetStates each file declares."""
from __future__ import annotations

import re
from pathlib import Path

from netdef.graph import filter_layers
from netdef.shapes import datum_top_shapes
from proto import caffe_pb2 as pb

# Datum (C, H, W) of each data set the corpus names, by a substring of the source path. These are
# facts about the data sets (MNIST 28x28 gray, its siamese pairs 2x28x28, CIFAR-10 32x32 RGB,
# ILSVRC12 LMDBs 256x256 RGB, the hdf5_classification example's 4 features), used only because
# the sources are absent.
SOURCE_CHW = {"siamese": (2, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32),
              "ilsvrc12": (3, 256, 256)}
HDF5_FEATURES = 4

DEPLOY_NETS = ["lenet_deploy", "cifar10_quick_deploy", "cifar10_full_deploy", "bvlc_alexnet_deploy",
               "bvlc_reference_caffenet_deploy", "bvlc_googlenet_deploy", "mnist_siamese_deploy"]


def aliases(models: Path) -> dict[str, str]:
    """Caffe-checkout path -> file here, from the SOURCES.md table."""
    out = {}
    for line in (models / "SOURCES.md").read_text().splitlines():
        m = re.match(r"^\| `([^`]+)` \| `([^`]+)` \|", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def input_shapes_for(net: pb.NetParameter, phase: str, stages=()) -> dict[str, tuple]:
    """Shapes for the tops of the data layers this NetState keeps."""
    state = pb.NetState(phase=pb.Phase.Value(phase), stage=list(stages))
    shapes: dict[str, tuple] = {}
    for lp in filter_layers(net, state):
        if lp.type == "Data":
            src = lp.data_param.source
            chw = next(v for k, v in SOURCE_CHW.items() if k in src)
            for t, s in zip(lp.top, datum_top_shapes(lp, chw)):
                shapes[t] = s
        elif lp.type == "HDF5Data":
            b = lp.hdf5_data_param.batch_size
            shapes[lp.top[0]] = (b, HDF5_FEATURES)
            for t in lp.top[1:]:
                shapes[t] = (b,)
    return shapes


def declared_states(net: pb.NetParameter) -> list[tuple[str, tuple[str, ...]]]:
    """(phase, stages) of every include rule with a phase; (TEST, ()) for a net without any."""
    states = []
    for lp in net.layer:
        for r in lp.include:
            if r.HasField("phase"):
                s = (pb.Phase.Name(r.phase), tuple(r.stage))
                if s not in states:
                    states.append(s)
    return states or [("TEST", ())]
