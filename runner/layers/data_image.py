"""ImageData layer: images listed in a text file (``path label`` per line) under ``root_folder``,
optionally resized to new_height x new_width, colour (BGR) or gray, shuffled every epoch when
``shuffle``, transformed by ``transform_param``. Tops: data (batch, C, H, W), label (batch,)."""
from __future__ import annotations

from runner.data.layer_base import PrefetchingDataLayer
from runner.registry import register


@register("ImageData")
class ImageDataLayer(PrefetchingDataLayer):
    """Caffe's ImageDataLayer (see the module docstring)."""

    def make_source(self, seed: int):
        from runner.data.sources import ImageListSource
        return ImageListSource(self.param, self.phase, seed)
