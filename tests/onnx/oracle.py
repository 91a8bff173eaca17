"""ONNX Runtime as the oracle for exported models, and the comparison every ONNX test uses.

``compare_net(net, tmp_path)`` exports a runner Net with a dynamic batch axis, then for each batch
size (1 and 7 by default) feeds the same random inputs to ONNX Runtime and to nbcaffe's forward
and requires every blob the model exposes (its outputs and, with ``all_blobs``, every blob whose
final value is a named tensor in the model) to agree: max |onnx - nbcaffe| <= 1e-5 * max |nbcaffe|.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

RTOL = 1e-5


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| over finite values (the blob's own scale); NaN
    matches only NaN, infinities only themselves; inf on a shape mismatch."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    if not e.size:
        return 0.0
    both_nan = np.isnan(a) & np.isnan(e)      # Caffe's 0/0 of an empty pooling window
    a, e = np.where(both_nan, 0.0, a), np.where(both_nan, 0.0, e)
    finite = np.isfinite(e) & (np.abs(e) < np.finfo(np.float32).max)   # not -FLT_MAX either
    scale = max(float(np.abs(e[finite]).max()) if finite.any() else 0.0, 1e-30)
    same = a == e                              # equal infinities and -FLT_MAX compare exactly
    err = np.where(same, 0.0, np.abs(a - e))
    return float("inf") if np.isnan(err).any() else float(err.max()) / scale


def with_blob_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the tensors ``names`` (declared in its value_info)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    declared = {v.name: v for v in m.graph.value_info}
    for n in names:
        if n not in have and n in declared:
            m.graph.output.append(declared[n])
    return m


def session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    data = model if isinstance(model, str) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto | str | ort.InferenceSession,
        feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All outputs of ``model`` (a model, a path, or a session made by ``session``) on ``feeds``."""
    s = model if isinstance(model, ort.InferenceSession) else session(model)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, dict(feeds))))


def input_shapes(model: onnx.ModelProto, batch: int) -> dict[str, tuple[int, ...]]:
    """The model's input shapes with the symbolic batch axis set to ``batch``."""
    out = {}
    for i in model.graph.input:
        dims = i.type.tensor_type.shape.dim
        out[i.name] = tuple(batch if d.dim_param else d.dim_value for d in dims)
    return out


def random_feeds(model: onnx.ModelProto, batch: int, rng: np.random.Generator,
                 make: Callable[[str, tuple[int, ...]], np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
    feeds = {}
    for name, shape in input_shapes(model, batch).items():
        x = make(name, shape) if make else None
        feeds[name] = (x if x is not None else rng.standard_normal(shape)).astype(np.float32)
    return feeds


def randomize(net, rng: np.random.Generator, scale_factor: float = 7.0) -> None:
    """Random parameters: weights N(0, 1/fan_in), other blobs N(0, 0.1); BatchNorm's statistics
    stored Caffe's way (sums times the moving-average scale factor ``scale_factor``)."""
    for layer in net.layers:
        blobs = layer.blobs
        if layer.type == "BatchNorm":
            c = blobs[0].shape
            blobs[0].data = rng.standard_normal(c) * scale_factor
            blobs[1].data = rng.uniform(0.5, 2.0, c) * scale_factor
            blobs[2].data = np.full(blobs[2].shape, scale_factor)
            continue
        for j, blob in enumerate(blobs):
            x = rng.standard_normal(blob.shape, dtype=np.float32)
            if j == 0 and len(blob.shape) > 1:
                x *= np.float32(np.sqrt(1.0 / max(blob.count // blob.shape[0], 1)))
            else:
                x = x * np.float32(0.1) + np.float32(1.0 if layer.type == "Scale" and j == 0 else 0.0)
            blob.data = x


def compare_net(net, tmp_path, batches: Sequence[int] = (1, 7), seed: int = 0, all_blobs: bool = True,
                make: Callable[[str, tuple[int, ...]], np.ndarray] | None = None,
                opset: int = 19, rtol: float = RTOL, batch: int | str = "dynamic") -> onnx.ModelProto:
    """Export ``net`` (dynamic batch, or ``batch`` N: then ``batches`` must be (N,)) and check ONNX
    Runtime against nbcaffe's forward at each batch size; returns the model. Inputs of the Net that
    the model does not take (labels read only by dropped loss layers, blobs read only for their
    shape) get random values (zeros for labels)."""
    path = tmp_path / f"{net.name or 'net'}.onnx"
    info = net.to_onnx(path, opset=opset, batch=batch)
    model = onnx.load(str(path))
    names = list(info.outputs)
    if all_blobs:
        names += [b for b in net.blobs if b not in names and b not in info.inputs]
    checked = session(with_blob_outputs(model, names) if len(names) > len(info.outputs) else model)
    rng = np.random.default_rng(seed)
    for b in batches:
        feeds = random_feeds(model, b, rng, make)
        extra = {n: (np.zeros if "label" in n else rng.standard_normal)(
                     (b,) + net.blobs[n].shape[1:]).astype(np.float32)
                 for n in net.inputs if n not in feeds}
        ours = run(checked, feeds)
        net.forward(**feeds, **extra)
        assert set(info.outputs) <= set(ours)
        for name, got in ours.items():
            want = net.blobs[info.blobs.get(name, name)].host_data()
            err = rel_err(got, want)
            assert err <= rtol, (f"{net.name}: blob {name!r} at batch {b}: ONNX Runtime vs nbcaffe "
                                 f"relative error {err:.3g} (shapes {got.shape} / {want.shape})")
    return model
