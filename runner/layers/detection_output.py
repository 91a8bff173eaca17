"""DetectionOutput (the SSD fork's DetectionOutputLayer, ``detection_output_param``): bottoms
loc (N, P * L * 4), conf (N, P * num_classes) (softmax already applied), prior (1, 2, P * 4);
top (1, 1, K, 7), one row (image_id, label, confidence, xmin, ymin, xmax, ymax) per kept box.

The boxes are decoded on the backend's device (``bbox_decode``: code_type CORNER, CENTER_SIZE or
CORNER_SIZE, variance_encoded_in_target), then per image and class (background_label_id skipped)
the confidence threshold, top_k, greedy NMS (nms_threshold, eta) and keep_top_k run on the host
(``Backend.detection_rows``), as Caffe-SSD's GPU path does. K is known only then: the top is
reshaped in forward (the shape rule gives Caffe-SSD's placeholder (1, 1, 1, 7)); with no detection
it is (1, 1, N, 7) with rows (i, -1, -1, -1, -1, -1, -1), as the fork writes. ``save_output_param``
(result files for VOC/COCO evaluation) and ``visualize`` (a window) are not supported: they are
logged and ignored, as OpenCV does, and the detections are in the top. No backward (the fork has
none)."""
from __future__ import annotations

import logging

import numpy as np

from runner.layers.base import Layer
from runner.registry import register

log = logging.getLogger(__name__)


@register("DetectionOutput")
class DetectionOutputLayer(Layer):

    def setup(self, bottoms, tops) -> None:
        p = self.param.detection_output_param
        ignored = [f for f, on in (("save_output_param.output_directory",
                                    p.save_output_param.output_directory != ""),
                                   ("visualize", p.visualize)) if on]
        if ignored:
            log.warning("layer '%s' (DetectionOutput): %s not supported, ignored; the detections "
                        "are in the top blob", self.name, " and ".join(ignored))
        self.boxes = None

    def on_reshape(self, bottoms, tops, shapes) -> None:
        self.g = shapes.geometry
        self.boxes = self.backend.empty(bottoms[0].shape)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        be.bbox_decode(bottoms[0].dev_data, bottoms[2].dev_data, self.boxes, self.g)
        rows = be.detection_rows(self.boxes, bottoms[1].dev_data, self.g)
        tops[0].reshape((1, 1, rows.shape[0], 7))
        be.to_device(np.ascontiguousarray(rows, dtype=be.dtype), out=tops[0].dev_data)
