"""HDF5Output (Caffe's HDF5OutputLayer): the bottoms land in "data" and "label" with Caffe's legacy
4-D shapes and the net's float type, h5py reads them back (and so does the HDF5Data layer), each
forward rewrites the file whole, no temp file is left, and a bad path is a clear error."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from netdef.errors import CaffeError
from runner import Net


def _net(path, data=(2, 3, 2, 2), label=(2,)) -> str:
    def inp(name, shape):
        return (f'layer {{ name: "in_{name}" type: "Input" top: "{name}" input_param {{ shape {{ '
                + " ".join(f"dim: {d}" for d in shape) + " } } }\n")
    return (inp("data", data) + inp("label", label) +
            f'layer {{ name: "out" type: "HDF5Output" bottom: "data" bottom: "label" '
            f'hdf5_output_param {{ file_name: "{path}" }} }}\n')


def test_writes_data_and_label_with_legacy_shapes(tmp_path):
    path = tmp_path / "out.h5"
    net = Net(_net(path, data=(2, 5), label=(2,)))
    rng = np.random.default_rng(0)
    data, label = rng.standard_normal((2, 5)), np.array([3.0, 1.0])
    net.forward(data=data, label=label)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["data", "label"]
        assert f["data"].shape == (2, 5, 1, 1) and f["label"].shape == (2, 1, 1, 1)
        assert f["data"].dtype == np.float32
        np.testing.assert_array_equal(f["data"][...].reshape(2, 5), data.astype(np.float32))
        np.testing.assert_array_equal(f["label"][...].reshape(2), label.astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


def test_each_forward_rewrites_the_file_and_hdf5data_reads_it(tmp_path):
    path = tmp_path / "out.h5"
    net = Net(_net(path))
    rng = np.random.default_rng(1)
    net.forward(data=rng.standard_normal((2, 3, 2, 2)), label=np.zeros(2))
    data, label = rng.standard_normal((2, 3, 2, 2)).astype(np.float32), np.array([4.0, 2.0])
    net.forward(data=data, label=label)
    (tmp_path / "list.txt").write_text(f"{path}\n")
    reader = Net(f'layer {{ name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ '
                 f'source: "{tmp_path / "list.txt"}" batch_size: 2 }} }}', phase="TRAIN")
    out = reader.forward()
    np.testing.assert_array_equal(out["data"], data)
    np.testing.assert_array_equal(out["label"].reshape(2), label.astype(np.float32))


def test_float64_nets_write_doubles(tmp_path):
    path = tmp_path / "out.h5"
    Net(_net(path), dtype=np.float64).forward(data=np.ones((2, 3, 2, 2)), label=np.ones(2))
    with h5py.File(path, "r") as f:
        assert f["data"].dtype == np.float64


def test_errors_name_the_layer(tmp_path):
    net = Net(_net(tmp_path / "missing_dir" / "out.h5"))
    with pytest.raises(CaffeError, match="'out' \\(HDF5Output\\): cannot write"):
        net.forward(data=np.ones((2, 3, 2, 2)), label=np.ones(2))
    with pytest.raises(CaffeError, match="file_name is empty"):
        Net(_net(""))
    net = Net(_net(tmp_path / "x.h5", data=(2, 1, 1, 1, 2)))
    with pytest.raises(CaffeError, match="more than 4 axes"):
        net.forward(data=np.ones((2, 1, 1, 1, 2)), label=np.ones(2))
