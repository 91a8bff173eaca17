"""The host-side layers on the cuda backend (Numba's simulator without a GPU): ImageData, HDF5Data,
MemoryData and WindowData give the same tops as on cpu (their batches are made on the host and
uploaded), and HDF5Output writes the same file from device blobs."""
from __future__ import annotations

import h5py
import numpy as np
from PIL import Image

from runner.net import Net
from tests.layers.test_window_data_layer import _images, _window_file
from tests.layers.test_window_data_layer import _net as _window_net


def _both(text: str, phase: str = "TRAIN", feed=None, steps: int = 2) -> None:
    outs = {}
    for device in ("cpu", "cuda"):
        net = Net(text if isinstance(text, str) else text(), phase, device=device, seed=4)
        try:
            if feed is not None:
                feed(net)
            outs[device] = [{k: np.array(v) for k, v in net.forward().items()} for _ in range(steps)]
        finally:
            net.close()
    for a, b in zip(outs["cpu"], outs["cuda"]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_image_hdf5_memory_and_window_data_on_cuda(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)).save(tmp_path / f"i{i}.png")
        lines.append(f"i{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    _both(f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" transform_param {{ '
          f'crop_size: 5 mirror: true }} image_data_param {{ source: "{tmp_path / "list.txt"}" '
          f'root_folder: "{tmp_path}/" batch_size: 3 shuffle: true }} }}')
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"] = rng.standard_normal((5, 2, 3)).astype(np.float32)
        f["label"] = np.arange(5, dtype=np.float32)
    (tmp_path / "h5.txt").write_text(f"{tmp_path / 'd.h5'}\n")
    _both(f'layer {{ name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ '
          f'source: "{tmp_path / "h5.txt"}" batch_size: 3 shuffle: true }} }}')
    x = rng.standard_normal((4, 1, 2, 2)).astype(np.float32)
    _both('layer { name: "m" type: "MemoryData" top: "data" top: "label" memory_data_param { '
          'batch_size: 2 channels: 1 height: 2 width: 2 } }',
          feed=lambda net: net.layer_dict["m"].set_input_arrays(x, np.arange(4)))
    p0, p1 = _images(tmp_path, [(9, 10), (7, 8)])
    src = _window_file(tmp_path, [(p0, (3, 9, 10), [(3, 0.8, 1, 2, 6, 7)]),
                                  (p1, (3, 7, 8), [(0, 0.1, 2, 1, 7, 5)])])
    _both(_window_net(src, crop=5, batch=4, transform="mirror: true"))


def test_hdf5_output_on_cuda_writes_the_device_blobs(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    files = {}
    for device in ("cpu", "cuda"):
        path = tmp_path / f"{device}.h5"
        net = Net(f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}'
                  f'layer {{ name: "y" type: "Input" top: "y" input_param {{ shape {{ dim: 2 }} }} }}'
                  f'layer {{ name: "r" type: "ReLU" bottom: "x" top: "r" }}'
                  f'layer {{ name: "o" type: "HDF5Output" bottom: "r" bottom: "y" hdf5_output_param {{ '
                  f'file_name: "{path}" }} }}', device=device)
        net.forward(x=x, y=np.arange(2, dtype=np.float32))
        with h5py.File(path, "r") as f:
            files[device] = (np.array(f["data"]), np.array(f["label"]))
    np.testing.assert_array_equal(files["cpu"][0], np.maximum(x, 0).reshape(2, 3, 1, 1))
    for a, b in zip(files["cpu"], files["cuda"]):
        np.testing.assert_array_equal(a, b)
