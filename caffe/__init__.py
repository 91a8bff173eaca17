"""``import caffe``: pycaffe's Python interface on nbcaffe, so pycaffe 1.0 scripts, notebooks and
Python layers run unchanged (a thin layer over ``runner`` and ``netdef``).

    import caffe
    caffe.set_mode_gpu()                        # or set_mode_cpu() (the default)
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    net.blobs["data"].data[...] = transformer.preprocess("data", caffe.io.load_image("cat.jpg"))
    prob = net.forward()["prob"]
    solver = caffe.get_solver("solver.prototxt"); solver.step(100)

Contents: ``Net`` and the solvers (caffe/pycaffe.py), ``io`` (Transformer, images, blob and datum
conversions), ``Classifier``, ``Detector``, ``NetSpec``/``layers``/``params``/``to_proto``
(caffe/net_spec.py), ``Layer`` (base of Python layers, runner/layers/python.py), ``draw`` (import
``caffe.draw``), ``proto.caffe_pb2`` (the schema module ``proto.caffe_pb2`` itself), the mode
functions (caffe/_mode.py) and ``TRAIN``/``TEST``.
"""
from __future__ import annotations

from caffe import io
from caffe._mode import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from caffe.classifier import Classifier
from caffe.detector import Detector
from caffe.nccl import (
    NCCL,
    set_multiprocess,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from caffe.net_spec import NetSpec, layers, params, to_proto
from caffe.proto.caffe_pb2 import TEST, TRAIN
from caffe.pycaffe import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    Net,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)
from runner.layers.python import PyLayer as Layer

__version__ = "1.0.0"   # the pycaffe interface this package provides


def layer_type_list() -> list[str]:
    """The layer types nets can use (Caffe's LayerRegistry::LayerTypeList)."""
    from runner.registry import known_types
    return known_types()


__all__ = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Classifier", "Detector", "Layer", "NCCL",
           "Net", "NesterovSolver", "NetSpec", "RMSPropSolver", "SGDSolver", "TEST", "TRAIN",
           "get_solver", "io", "layer_type_list", "layers", "params", "set_device", "set_mode_cpu",
           "set_mode_gpu", "set_multiprocess", "set_random_seed", "set_solver_count",
           "set_solver_rank", "solver_count", "solver_rank", "to_proto"]
