"""Data layer: Caffe Datum records from an LMDB (or LevelDB with plyvel), in key order with
wrap-around, transformed by ``transform_param``, prefetched in a background thread.

Tops: data (batch_size, C, H', W') float32, optional label (batch_size,) float32. The data shape
comes from the first record (H', W' = crop_size when set)."""
from __future__ import annotations

from runner.data.layer_base import PrefetchingDataLayer
from runner.registry import register


@register("Data")
class DataLayer(PrefetchingDataLayer):
    """Caffe's DataLayer over a Datum database (see the module docstring)."""

    def make_source(self, seed: int):
        from runner.data.sources import DatumDBSource
        self.prefetch_depth = max(1, int(self.param.data_param.prefetch or 4))
        return DatumDBSource(self.param, self.phase, seed)
