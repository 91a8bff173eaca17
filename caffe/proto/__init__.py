"""``from caffe.proto import caffe_pb2``: Caffe's schema module, the very module ``proto.caffe_pb2``
(so messages and isinstance checks agree across both names)."""
from __future__ import annotations

import sys

from proto import caffe_pb2

sys.modules[__name__ + ".caffe_pb2"] = caffe_pb2

__all__ = ["caffe_pb2"]
