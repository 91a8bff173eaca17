"""HDF5Output (Caffe's HDF5OutputLayer): writes its two bottoms to the HDF5 file
``hdf5_output_param.file_name`` as the datasets "data" and "label", each with Caffe's legacy 4-D
shape (num, channels, height, width) -- a (N, D) bottom is saved as (N, D, 1, 1) -- in the net's
float type. Every forward rewrites the file with the current batch (Caffe 1.0 can save only once:
its second H5LTmake_dataset fails); the file is written to ``<name>.tmp`` and then renamed, so a
reader never sees half a file. No tops, no backward (its Backward does nothing, as Caffe's)."""
from __future__ import annotations

import os

import numpy as np

from netdef.errors import DataError
from netdef.shapes import legacy_shape
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty")

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        import h5py
        data, label = bottoms
        if data.shape[:1] != label.shape[:1]:
            raise self.error(f"data blob and label blob must have the same batch size: data "
                             f"{data.shape}, label {label.shape}")
        arrays = {}
        for what, blob in (("data", data), ("label", label)):
            four = legacy_shape(blob.shape)
            if four is None:
                raise self.error(f"{what} {blob.shape} has more than 4 axes (Caffe's legacy 4-D shape)")
            arrays[what] = np.array(blob.host_data()).reshape(four)
        tmp = f"{self.file_name}.tmp"
        try:
            with h5py.File(tmp, "w") as f:
                for name, a in arrays.items():
                    f.create_dataset(name, data=a)
            os.replace(tmp, self.file_name)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise DataError(f"layer '{self.name}' (HDF5Output): cannot write {self.file_name!r} "
                            f"({e})") from None

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        return None
