"""Upgrade legacy Caffe net and solver definitions to the current format, as Caffe's
``src/caffe/util/upgrade_proto.cpp`` does (UpgradeNetAsNeeded / UpgradeSolverAsNeeded).

Passes, in Caffe's order (each is a no-op when the net does not need it):

1. V0 -> V1: ``layers { layer { type: "conv" ... } }`` (V0LayerParameter inside V1LayerParameter),
   including V0 "padding" layers folded into the following conv/pool layer's ``pad``.
2. Data transformation: ``scale``/``mean_file``/``crop_size``/``mirror`` in ``data_param``,
   ``image_data_param`` or ``window_data_param`` of V1 layers move to ``transform_param``.
3. V1 -> V2: ``layers`` (V1LayerParameter, enum types) -> ``layer`` (LayerParameter, string types);
   ``blobs_lr``/``weight_decay``/``param``/``blob_share_mode`` -> ``param { lr_mult decay_mult name
   share_mode }``; blobs, include/exclude, loss_weight and every ``*_param`` copied.
4. Net input: ``input``/``input_dim``/``input_shape`` -> an ``Input`` layer named "input" placed
   first (a legacy weights file with ``input`` but no shape just drops the field).
5. BatchNorm: a BatchNorm layer declaring 3 ``param`` entries (the old way to freeze its
   statistics) gets lr_mult = decay_mult = 0 on each (Caffe 9b89154's UpgradeNetBatchNorm).

A net mixing ``layer`` and ``layers`` is rejected (Caffe ignores one of them with a log line; we
make it an error because the result is never what the author meant).
"""
from __future__ import annotations

import logging

from netdef.errors import NetDefinitionError, SolverError
from proto import caffe_pb2 as pb

log = logging.getLogger(__name__)

V1 = pb.V1LayerParameter

# V1LayerParameter.LayerType -> current type string (UpgradeV1LayerType)
V1_TYPE_NAMES: dict[int, str] = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# V0LayerParameter.type string -> V1 enum (UpgradeV0LayerType)
V0_TYPES: dict[str, int] = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# the *_param fields V1LayerParameter and LayerParameter share (copied as-is by V1 -> V2)
V1_COPIED_PARAMS = [f.name for f in V1.DESCRIPTOR.fields
                    if f.name.endswith("_param") and f.name != "layer"]

SOLVER_TYPE_NAMES = {
    pb.SolverParameter.SGD: "SGD", pb.SolverParameter.NESTEROV: "Nesterov",
    pb.SolverParameter.ADAGRAD: "AdaGrad", pb.SolverParameter.RMSPROP: "RMSProp",
    pb.SolverParameter.ADADELTA: "AdaDelta", pb.SolverParameter.ADAM: "Adam",
}


def _where(source: str | None) -> str:
    return source or "<string>"


# ---------------------------------------------------------------------------- V0 -> V1

def net_needs_v0_upgrade(net: pb.NetParameter) -> bool:
    """True when any ``layers`` entry carries a V0 ``layer { ... }`` message."""
    return any(v.HasField("layer") for v in net.layers)


def _v0_fold_padding(net: pb.NetParameter, source: str | None) -> pb.NetParameter:
    """Remove V0 "padding" layers, moving their pad into the conv/pool layer that reads them."""
    out = pb.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    last_top: dict[str, int] = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise NetDefinitionError(
                    f"{_where(source)}: V0 layer '{v0.name}': unknown bottom blob '{blob}'")
            src = last_top[blob]
            if src == -1:
                continue
            src_conn = net.layers[src]
            if src_conn.layer.type == "padding":
                if v0.type not in ("conv", "pool"):
                    raise NetDefinitionError(
                        f"{_where(source)}: V0 layer '{v0.name}' of type '{v0.type}' reads padding "
                        f"layer '{src_conn.layer.name}'; only conv and pool layers may")
                if len(conn.bottom) != 1 or len(src_conn.bottom) != 1 or len(src_conn.top) != 1:
                    raise NetDefinitionError(
                        f"{_where(source)}: V0 padding layer '{src_conn.layer.name}' and its reader "
                        f"'{v0.name}' must each have exactly one bottom (and the padding one top)")
                dst = out.layers[len(out.layers) - 1]
                dst.layer.pad = src_conn.layer.pad
                dst.bottom[j] = src_conn.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return out


def _v0_layer_to_v1(conn: pb.V1LayerParameter, source: str | None) -> pb.V1LayerParameter:
    """One V0 layer connection -> V1LayerParameter (UpgradeV0LayerParameter)."""
    out = pb.V1LayerParameter()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return out
    v0 = conn.layer
    t = v0.type
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if t not in V0_TYPES:
            raise NetDefinitionError(
                f"{_where(source)}: V0 layer '{v0.name}': unknown V0 layer type '{t}' "
                f"(known: {', '.join(sorted(V0_TYPES))})")
        out.type = V0_TYPES[t]
    for b in v0.blobs:
        out.blobs.add().CopyFrom(b)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)

    def bad(field: str) -> None:
        log.error("%s: V0 layer '%s': parameter %s is not used by layer type '%s'; dropped",
                  _where(source), v0.name, field, t)

    conv_ip = {"conv": out.convolution_param, "innerproduct": out.inner_product_param}
    for field in ("num_output", "weight_filler", "bias_filler"):
        if v0.HasField(field):
            if t in conv_ip:
                dst = conv_ip[t]
                if field == "num_output":
                    dst.num_output = v0.num_output
                else:
                    getattr(dst, field).CopyFrom(getattr(v0, field))
            else:
                bad(field)
    if v0.HasField("biasterm"):
        if t in conv_ip:
            conv_ip[t].bias_term = v0.biasterm
        else:
            bad("biasterm")
    for v0f, convf in (("pad", "pad"), ("kernelsize", "kernel_size"), ("stride", "stride")):
        if v0.HasField(v0f):
            if t == "conv":
                getattr(out.convolution_param, convf).append(getattr(v0, v0f))
            elif t == "pool":
                setattr(out.pooling_param, convf, getattr(v0, v0f))
            else:
                bad(v0f)
    if v0.HasField("group"):
        if t == "conv":
            out.convolution_param.group = v0.group
        else:
            bad("group")
    if v0.HasField("pool"):
        if t == "pool":
            out.pooling_param.pool = int(v0.pool)  # same numbering MAX/AVE/STOCHASTIC
        else:
            bad("pool")
    if v0.HasField("dropout_ratio"):
        if t == "dropout":
            out.dropout_param.dropout_ratio = v0.dropout_ratio
        else:
            bad("dropout_ratio")
    for field in ("local_size", "alpha", "beta", "k"):
        if v0.HasField(field):
            if t == "lrn":
                setattr(out.lrn_param, field, getattr(v0, field))
            else:
                bad(field)
    data_like = {"data": out.data_param, "hdf5_data": out.hdf5_data_param,
                 "images": out.image_data_param, "window_data": out.window_data_param}
    if v0.HasField("source"):
        if t in data_like:
            data_like[t].source = v0.source
        elif t == "infogain_loss":
            out.infogain_loss_param.source = v0.source
        else:
            bad("source")
    if v0.HasField("scale"):
        out.transform_param.scale = v0.scale
    if v0.HasField("meanfile"):
        out.transform_param.mean_file = v0.meanfile
    if v0.HasField("batchsize"):
        if t in data_like:
            data_like[t].batch_size = v0.batchsize
        else:
            bad("batchsize")
    if v0.HasField("cropsize"):
        out.transform_param.crop_size = v0.cropsize
    if v0.HasField("mirror"):
        out.transform_param.mirror = v0.mirror
    if v0.HasField("rand_skip"):
        if t == "data":
            out.data_param.rand_skip = v0.rand_skip
        elif t == "images":
            out.image_data_param.rand_skip = v0.rand_skip
        else:
            bad("rand_skip")
    for v0f, imf in (("shuffle_images", "shuffle"), ("new_height", "new_height"),
                     ("new_width", "new_width")):
        if v0.HasField(v0f):
            if t == "images":
                setattr(out.image_data_param, imf, getattr(v0, v0f))
            else:
                bad(v0f)
    if v0.HasField("concat_dim"):
        if t == "concat":
            out.concat_param.concat_dim = v0.concat_dim
        else:
            bad("concat_dim")
    for v0f, wf in (("det_fg_threshold", "fg_threshold"), ("det_bg_threshold", "bg_threshold"),
                    ("det_fg_fraction", "fg_fraction"), ("det_context_pad", "context_pad"),
                    ("det_crop_mode", "crop_mode")):
        if v0.HasField(v0f):
            if t == "window_data":
                setattr(out.window_data_param, wf, getattr(v0, v0f))
            else:
                bad(v0f)
    if v0.HasField("hdf5_output_param"):
        if t == "hdf5_output":
            out.hdf5_output_param.CopyFrom(v0.hdf5_output_param)
        else:
            bad("hdf5_output_param")
    return out


def upgrade_v0_net(net: pb.NetParameter, source: str | None = None) -> pb.NetParameter:
    """V0 net (``layers { layer {...} }``) -> V1 net (``layers`` with V1 fields)."""
    padded = _v0_fold_padding(net, source)
    out = pb.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        out.layers.add().CopyFrom(_v0_layer_to_v1(conn, source))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


# ---------------------------------------------------------------------------- data transform

_TRANSFORM_HOLDERS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                      V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def net_needs_data_upgrade(net: pb.NetParameter) -> bool:
    """True when a V1 data layer keeps transformation fields in its own *_param."""
    for v1 in net.layers:
        holder = _TRANSFORM_HOLDERS.get(v1.type)
        if holder and any(getattr(v1, holder).HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def upgrade_data_transformation(net: pb.NetParameter) -> None:
    """Move scale/mean_file/crop_size/mirror of V1 data layers into transform_param (in place)."""
    for v1 in net.layers:
        holder = _TRANSFORM_HOLDERS.get(v1.type)
        if not holder:
            continue
        p = getattr(v1, holder)
        for f in _TRANSFORM_FIELDS:
            if p.HasField(f):
                setattr(v1.transform_param, f, getattr(p, f))
                p.ClearField(f)


# ---------------------------------------------------------------------------- V1 -> V2

def upgrade_v1_layer(v1: pb.V1LayerParameter, source: str | None = None) -> pb.LayerParameter:
    """One V1LayerParameter -> LayerParameter (UpgradeV1LayerParameter)."""
    out = pb.LayerParameter()
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    for r in v1.include:
        out.include.add().CopyFrom(r)
    for r in v1.exclude:
        out.exclude.add().CopyFrom(r)
    if v1.HasField("type"):
        if v1.type not in V1_TYPE_NAMES:
            raise NetDefinitionError(f"{_where(source)}: layer '{v1.name}': unknown V1 layer type "
                                     f"{v1.type}")
        out.type = V1_TYPE_NAMES[v1.type]
    for b in v1.blobs:
        out.blobs.add().CopyFrom(b)

    def spec(i: int) -> pb.ParamSpec:
        while len(out.param) <= i:
            out.param.add()
        return out.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = int(mode)  # STRICT/PERMISSIVE share numbering
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, wd in enumerate(v1.weight_decay):
        spec(i).decay_mult = wd
    out.loss_weight.extend(v1.loss_weight)
    for name in V1_COPIED_PARAMS:
        if v1.HasField(name):
            getattr(out, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        raise NetDefinitionError(
            f"{_where(source)}: layer '{v1.name}' still holds a V0 'layer' message after the V0 "
            "upgrade")
    return out


def upgrade_v1_net(net: pb.NetParameter, source: str | None = None) -> pb.NetParameter:
    """V1 net (``layers``) -> current net (``layer``)."""
    if len(net.layer):
        raise NetDefinitionError(
            f"{_where(source)}: the net mixes 'layer' (current format) and 'layers' (legacy V1 "
            "format) entries; use one of them")
    out = pb.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    for v1 in net.layers:
        out.layer.add().CopyFrom(upgrade_v1_layer(v1, source))
    return out


# ---------------------------------------------------------------------------- input, BatchNorm

def net_needs_input_upgrade(net: pb.NetParameter) -> bool:
    return len(net.input) > 0


def upgrade_net_input(net: pb.NetParameter, source: str | None = None) -> None:
    """Net-level input/input_dim/input_shape -> an ``Input`` layer named "input", first (in place)."""
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    if has_shape or has_dim:
        n = len(net.input)
        if has_shape and len(net.input_shape) != n:
            raise NetDefinitionError(
                f"{_where(source)}: net has {n} 'input' blobs but {len(net.input_shape)} "
                "'input_shape' entries; give one per input")
        if not has_shape and len(net.input_dim) != 4 * n:
            raise NetDefinitionError(
                f"{_where(source)}: net has {n} 'input' blobs but {len(net.input_dim)} "
                f"'input_dim' values; give 4 (num, channels, height, width) per input")
        layer = pb.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        layers = [layer] + [_copy(x) for x in net.layer]
        del net.layer[:]
        for x in layers:
            net.layer.add().CopyFrom(x)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def net_needs_batchnorm_upgrade(net: pb.NetParameter) -> bool:
    return any(lp.type == "BatchNorm" and len(lp.param) == 3 for lp in net.layer)


def upgrade_batchnorm(net: pb.NetParameter) -> None:
    """BatchNorm layers with 3 param entries: set lr_mult and decay_mult to 0 (in place)."""
    for lp in net.layer:
        if lp.type == "BatchNorm" and len(lp.param) == 3:
            for p in lp.param:
                p.lr_mult = 0.0
                p.decay_mult = 0.0


# ---------------------------------------------------------------------------- entry points

def upgrade_net(net: pb.NetParameter, source: str | None = None) -> pb.NetParameter:
    """Return ``net`` in the current format (a new message when anything changed, else ``net``).
    ``source`` names the file in error messages and logs."""
    if len(net.layer) and len(net.layers):
        raise NetDefinitionError(
            f"{_where(source)}: the net mixes 'layer' (current format) and 'layers' (legacy V1 "
            "format) entries; use one of them")
    if net_needs_v0_upgrade(net):
        log.warning("%s: upgrading deprecated V0LayerParameter net", _where(source))
        net = upgrade_v0_net(net, source)
    if net_needs_data_upgrade(net):
        log.warning("%s: upgrading deprecated data transformation parameters", _where(source))
        net = _copy(net)
        upgrade_data_transformation(net)
    if len(net.layers):
        log.warning("%s: upgrading deprecated V1LayerParameter net", _where(source))
        net = upgrade_v1_net(net, source)
    if net_needs_input_upgrade(net):
        net = _copy(net)
        upgrade_net_input(net, source)
    if net_needs_batchnorm_upgrade(net):
        net = _copy(net)
        upgrade_batchnorm(net)
    return net


def upgrade_solver(solver: pb.SolverParameter, source: str | None = None) -> pb.SolverParameter:
    """solver_type enum -> type string (UpgradeSolverType); inline nets upgraded too."""
    solver = _copy(solver)
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise SolverError(
                f"{_where(source)}: the old 'solver_type' field (enum) and the new 'type' field "
                "(string) cannot both be given")
        solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
    for field in ("net_param", "train_net_param"):
        if solver.HasField(field):
            up = upgrade_net(getattr(solver, field), f"{_where(source)} ({field})")
            getattr(solver, field).CopyFrom(up)
    for i in range(len(solver.test_net_param)):
        up = upgrade_net(solver.test_net_param[i], f"{_where(source)} (test_net_param #{i})")
        solver.test_net_param[i].CopyFrom(up)
    return solver


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out
