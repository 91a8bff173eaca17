"""Top shapes of data layers, read from their sources before the net is built.

``netdef.graph.build_graph`` needs the shapes of tops that depend on a data source (a Data
layer's first Datum, an HDF5 file's datasets, the first image of an ImageData list).
``data_input_shapes(net_param, phase, stages, level)`` opens the source of every data layer that
the NetState keeps and returns ``{top name: shape}`` for ``build_graph(..., input_shapes=...)`` /
``Net(..., input_shapes=...)``. Errors name the layer and the source (missing/corrupt LMDB, ...).
"""
from __future__ import annotations

from collections.abc import Sequence

from proto import caffe_pb2 as pb

SOURCE_CLASSES = {"Data": "DatumDBSource", "ImageData": "ImageListSource", "HDF5Data": "HDF5Source"}


def layer_source(lp: pb.LayerParameter, phase: str, seed: int = 0):
    """The batch source (runner.data.sources) a data layer reads; caller closes it."""
    from runner.data import sources
    return getattr(sources, SOURCE_CLASSES[lp.type])(lp, phase, seed)


def data_input_shapes(net_param: pb.NetParameter, phase: str | int | None = None,
                      stages: Sequence[str] | None = None, level: int | None = None
                      ) -> dict[str, tuple[int, ...]]:
    """{top: shape} of the Data / ImageData / HDF5Data layers kept for this NetState (None values
    take the net's own state) whose shapes come from their source."""
    from netdef.graph import filter_layers, net_state
    from netdef.shapes import needs_data_shapes
    state = net_state(net_param, phase, stages, level)
    ph = "TRAIN" if state.phase == pb.TRAIN else "TEST"
    out: dict[str, tuple[int, ...]] = {}
    for lp in filter_layers(net_param, state):
        if lp.type not in SOURCE_CLASSES or not needs_data_shapes(lp):
            continue
        src = layer_source(lp, ph)
        try:
            for top, shape in zip(lp.top, src.top_shapes()):
                out[top] = tuple(shape)
        finally:
            src.close()
    return out
