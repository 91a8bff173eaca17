"""WindowData layer (Caffe 1.0's WindowDataLayer): foreground / background windows of the images
named in a window file, warped to ``transform_param.crop_size`` with ``context_pad`` and
``crop_mode`` (warp / square), mirrored at random when ``transform_param.mirror``, minus
``mean_file`` / ``mean_value``, times ``window_data_param.scale``. Tops: data (batch, 3, crop,
crop), label (batch,). The file format and the sampling are in runner/data/window.py."""
from __future__ import annotations

from runner.data.layer_base import PrefetchingDataLayer
from runner.registry import register


@register("WindowData")
class WindowDataLayer(PrefetchingDataLayer):
    """Caffe's WindowDataLayer (see the module docstring)."""

    def make_source(self, seed: int):
        from runner.data.window import WindowSource
        return WindowSource(self.param, self.phase, seed)
