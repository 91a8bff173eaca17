"""pycaffe-style Net on a training prototxt: data layer shapes come from the LMDB itself, and the
source path resolves relative to the prototxt's folder as well as the working directory."""
import numpy as np

from runner import Net
from runner.data.datum import array_to_datum
from runner.data.db import DBWriter

NET = """
name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 }
        data_param { source: "tiny_lmdb" batch_size: 3 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_train_net_reads_data_shapes_from_lmdb(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    with DBWriter(str(tmp_path / "tiny_lmdb"), "lmdb") as w:
        for i in range(5):
            w.put(f"{i:08d}", array_to_datum(rng.integers(0, 256, (1, 4, 5), dtype=np.uint8), i % 2)
                  .SerializeToString())
    proto = tmp_path / "train.prototxt"
    proto.write_text(NET)
    monkeypatch.chdir("/")          # the source is found next to the prototxt, not in the cwd
    net = Net(str(proto), phase="TRAIN", seed=1)
    assert net.blobs["data"].data.shape == (3, 1, 4, 5)
    assert net.blobs["label"].data.shape == (3,)
    loss = net.forward_backward()
    assert np.isfinite(loss) and loss > 0
