"""HDF5Data layer: ``source`` is a text file listing .h5 files; each file holds one dataset per top
(named like the top, same number of rows). Rows are served in order across files, wrapping
around; ``shuffle`` permutes files and rows every epoch. No transform_param (as in Caffe)."""
from __future__ import annotations

from runner.data.layer_base import PrefetchingDataLayer
from runner.registry import register


@register("HDF5Data")
class HDF5DataLayer(PrefetchingDataLayer):
    """Caffe's HDF5DataLayer (see the module docstring)."""

    def make_source(self, seed: int):
        from runner.data.sources import HDF5Source
        return HDF5Source(self.param, self.phase, seed)
