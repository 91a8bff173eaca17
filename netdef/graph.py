"""Build a net's layer graph as Caffe's Net::Init does, as pure passes over a NetParameter.

    graph = build_graph(net_param, phase="TEST", stages=(), level=0, input_shapes=None)

1. NetState filter (Net::FilterNet / StateMeetsRule): a layer with ``include`` rules is kept when
   one rule matches the state; a layer with ``exclude`` rules is dropped when one matches. A rule
   matches when its phase (if set) equals the state's, min_level <= level <= max_level (if set),
   the state has all of the rule's ``stage`` and none of its ``not_stage``.
2. Split insertion (insert_splits.cpp): a top read by several bottoms (or read once and also
   carrying an explicit non-zero loss_weight) feeds a ``Split`` layer named
   ``<blob>_<layer>_<top_idx>_split`` with tops ``<blob>_<layer>_<top_idx>_split_<k>``; each reader
   gets its own split top. A loss weight moves onto the split's first top.
3. Blobs and shapes: bottoms must exist; a top equal to the bottom at the same index is in-place;
   any other reuse of a blob name as a top is an error. Shapes come from netdef.shapes.infer;
   tops of data layers (and Input) can be given with ``input_shapes`` {blob name: shape}.
4. Loss weights (``loss_weight`` given once per top, else 1 on the first top of loss layers, 0
   elsewhere), parameters (``param`` specs, sharing by ``param.name`` with STRICT shape or
   PERMISSIVE count checks, lr_mult/decay_mult consistency), propagate_down and which layers need
   backward (Net::Init's forward pass over need_backward, then the backward sweep that drops
   layers not contributing to a loss, then ``force_backward``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netdef import shapes as shp
from netdef.errors import NetDefinitionError, ShapeError
from netdef.limits import check_count, check_int32_fields
from proto import caffe_pb2 as pb

Shape = tuple[int, ...]

_PHASES = {"TRAIN": pb.TRAIN, "TEST": pb.TEST}
# loss layers whose bottom k must not receive a gradient under force_backward (AllowForceBackward)
_NO_FORCE_BACKWARD = {t: {1} for t in ("SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
                                       "InfogainLoss", "MultinomialLogisticLoss")}
_NO_FORCE_BACKWARD["ContrastiveLoss"] = {2}
# sequence continuation indicators never receive a gradient (RecurrentLayer / LSTMUnitLayer)
_NO_FORCE_BACKWARD.update({"RNN": {1}, "LSTM": {1}, "LSTMUnit": {2}})


@dataclass
class ParamInfo:
    """One parameter blob of a layer: its spec and, if shared, who owns it."""
    name: str                      # param.name ("" when anonymous)
    lr_mult: float                 # effective (the owner's, for a shared blob)
    decay_mult: float
    shape: Shape
    share_mode: int = pb.ParamSpec.STRICT
    owner: tuple[str, int] | None = None   # (layer name, param index) when shared, else None
    fixed: bool = False            # statistics no solver or gradient touches (BatchNorm's blobs)

    @property
    def shared(self) -> bool:
        return self.owner is not None


@dataclass
class LayerNode:
    """A layer after filtering and split insertion, with its shapes and backward flags."""
    name: str
    type: str
    param: pb.LayerParameter
    bottoms: list[str]
    tops: list[str]
    bottom_shapes: list[Shape]
    top_shapes: list[Shape]
    param_shapes: list[Shape]
    flops: int
    loss_weights: list[float]
    propagate_down: list[bool]           # per bottom: does backward compute this bottom's diff
    param_specs: list[ParamInfo]
    need_backward: bool = False
    in_place: bool = False               # a top reuses the bottom name at the same index

    @property
    def num_params(self) -> int:
        """Parameter count of this layer's own blobs (shared blobs counted here too)."""
        return sum(shp.count(s) for s in self.param_shapes)

    @property
    def is_loss(self) -> bool:
        return any(w != 0 for w in self.loss_weights)


@dataclass
class Graph:
    """The result of build_graph."""
    name: str
    layers: list[LayerNode]
    blob_shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    phase: int = pb.TEST
    stages: tuple[str, ...] = ()
    level: int = 0
    force_backward: bool = False
    blob_need_backward: dict[str, bool] = field(default_factory=dict)

    def layer(self, name: str) -> LayerNode:
        for node in self.layers:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def num_params(self) -> int:
        """Learnable parameter count, each shared blob counted once."""
        return sum(shp.count(p.shape) for n in self.layers for p in n.param_specs if not p.shared)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.layers)


# ---------------------------------------------------------------------------- pass 1: filter

def rule_mismatch(state: pb.NetState, rule: pb.NetStateRule) -> str | None:
    """Why ``state`` does not meet ``rule``, in the words of Caffe's Net::StateMeetsRule log
    line (without its " specified by a rule in layer X" tail), or None when it meets it."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return f"The NetState phase ({state.phase}) differed from the phase ({rule.phase})"
    if rule.HasField("min_level") and state.level < rule.min_level:
        return f"The NetState level ({state.level}) is above the min_level ({rule.min_level})"
    if rule.HasField("max_level") and state.level > rule.max_level:
        return f"The NetState level ({state.level}) is above the max_level ({rule.max_level})"
    stages = set(state.stage)
    for s in rule.stage:
        if s not in stages:
            return f"The NetState did not contain stage '{s}'"
    for s in rule.not_stage:
        if s in stages:
            return f"The NetState contained a not_stage '{s}'"
    return None


def state_meets_rule(state: pb.NetState, rule: pb.NetStateRule) -> bool:
    """Caffe's Net::StateMeetsRule."""
    return rule_mismatch(state, rule) is None


def filter_layers(net: pb.NetParameter, state: pb.NetState,
                  messages: list[str] | None = None) -> list[pb.LayerParameter]:
    """The layers of ``net`` that ``state`` includes (Net::FilterNet), in order. ``messages``
    collects Caffe's log line for each rule it evaluates and finds unmet, in Caffe's order
    (exclude rules while the layer is in, then include rules while it is out)."""
    kept = []
    for lp in net.layer:
        if len(lp.include) and len(lp.exclude):
            raise NetDefinitionError(f"layer '{lp.name}': specify either include rules or exclude "
                                     "rules; not both")
        included = len(lp.include) == 0
        for rules, flips_to in ((lp.exclude, False), (lp.include, True)):
            for r in rules:
                if included == flips_to:
                    break
                why = rule_mismatch(state, r)
                if why is None:
                    included = flips_to
                elif messages is not None:
                    messages.append(f"{why} specified by a rule in layer {lp.name}")
        if included:
            kept.append(lp)
    return kept


# ---------------------------------------------------------------------------- pass 2: splits

def split_layer_name(layer: str, blob: str, top_idx: int) -> str:
    return f"{blob}_{layer}_{top_idx}_split"


def split_blob_name(layer: str, blob: str, top_idx: int, k: int) -> str:
    return f"{blob}_{layer}_{top_idx}_split_{k}"


def _unknown_bottom(lp: pb.LayerParameter, j: int, known: Iterable[str]) -> NetDefinitionError:
    avail = ", ".join(sorted(known)) or "none"
    return NetDefinitionError(f"layer '{lp.name}' ({lp.type}): unknown bottom blob "
                              f"'{lp.bottom[j]}' (bottom index {j}); blobs produced before it: "
                              f"{avail}")


def insert_splits(layers: Sequence[pb.LayerParameter]) -> list[pb.LayerParameter]:
    """Caffe's InsertSplits over already-filtered layers; returns new LayerParameters."""
    last_top: dict[str, tuple[int, int]] = {}
    source_of: dict[tuple[int, int], tuple[int, int]] = {}
    readers: dict[tuple[int, int], int] = {}
    loss_w: dict[tuple[int, int], float] = {}
    for i, lp in enumerate(layers):
        for j, blob in enumerate(lp.bottom):
            if blob not in last_top:
                raise _unknown_bottom(lp, j, last_top)
            src = last_top[blob]
            source_of[(i, j)] = src
            readers[src] = readers.get(src, 0) + 1
        for j, blob in enumerate(lp.top):
            last_top[blob] = (i, j)
        for j in range(min(len(lp.loss_weight), len(lp.top))):
            src = last_top[lp.top[j]]
            loss_w[src] = lp.loss_weight[j]
            if loss_w[src]:
                readers[src] = readers.get(src, 0) + 1
    out: list[pb.LayerParameter] = []
    next_split: dict[tuple[int, int], int] = {}
    for i, orig in enumerate(layers):
        lp = pb.LayerParameter()
        lp.CopyFrom(orig)
        out.append(lp)
        for j in range(len(lp.bottom)):
            src = source_of[(i, j)]
            if readers.get(src, 0) > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                lp.bottom[j] = split_blob_name(layers[src[0]].name, lp.bottom[j], src[1], k)
        for j, blob in enumerate(lp.top):
            n = readers.get((i, j), 0)
            if n > 1:
                w = loss_w.get((i, j), 0.0)
                split = pb.LayerParameter(name=split_layer_name(lp.name, blob, j), type="Split")
                split.bottom.append(blob)
                for k in range(n):
                    split.top.append(split_blob_name(lp.name, blob, j, k))
                    if w:
                        split.loss_weight.append(w if k == 0 else 0.0)
                out.append(split)
                if w:
                    lp.ClearField("loss_weight")
                    next_split[(i, j)] = next_split.get((i, j), 0) + 1
    return out


# ---------------------------------------------------------------------------- pass 3/4

def net_state(net: pb.NetParameter, phase: str | int | None = None,
              stages: Sequence[str] | None = None, level: int | None = None) -> pb.NetState:
    """The NetState build_graph uses: ``net.state`` with phase / stages / level replaced by the
    arguments that are not None (phase "TRAIN"/"TEST" or caffe_pb2.TRAIN/TEST)."""
    state = pb.NetState()
    state.CopyFrom(net.state)
    if phase is not None:
        if isinstance(phase, str):
            if phase.upper() not in _PHASES:
                raise NetDefinitionError(f"phase must be TRAIN or TEST, got '{phase}'")
            phase = _PHASES[phase.upper()]
        state.phase = int(phase)
    if stages is not None:
        if isinstance(stages, str):
            stages = (stages,)
        del state.stage[:]
        state.stage.extend(stages)
    if level is not None:
        state.level = int(level)
    return state


_state = net_state  # old private name, used by runner modules


def default_loss_weights(lp: pb.LayerParameter) -> list[float]:
    """Per-top loss weights: ``loss_weight`` if given (once per top), else 1 for the first top of
    a loss layer type, else 0."""
    n = len(lp.top)
    if len(lp.loss_weight):
        if len(lp.loss_weight) != n:
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}): loss_weight must be "
                                     f"unspecified or specified once per top blob ({n} tops, "
                                     f"{len(lp.loss_weight)} loss_weight)")
        return [float(w) for w in lp.loss_weight]
    if lp.type in shp.LOSS_TYPES and n:
        return [1.0] + [0.0] * (n - 1)
    return [0.0] * n


LayerShapesHook = Callable[[pb.LayerParameter, list[Shape]], "shp.LayerShapes | None"]


def build_graph(net_param: pb.NetParameter, phase: str | int | None = None,
                stages: Sequence[str] | None = None, level: int | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                layer_shapes: LayerShapesHook | None = None) -> Graph:
    """Filter ``net_param`` for the NetState (phase "TRAIN"/"TEST", stages, level; None takes the
    value from ``net_param.state``, whose defaults are TEST, no stages, level 0), insert Split
    layers, and compute every blob's shape, each layer's parameters, FLOPs, loss weights and
    backward flags. ``input_shapes`` maps top blob names of data layers (Data, HDF5Data, Input,
    ...) to full shapes, for tops whose shape depends on the data source or to override an Input
    layer's shape. ``layer_shapes(layer_param, bottom_shapes)``, when given, is asked first for
    every layer (in execution order, Splits included): a ``netdef.shapes.LayerShapes`` answers
    for layers whose shapes only running them can tell (runner sets up Python layers this way,
    as Caffe's Net::Init does), None leaves the layer to Caffe's rules. Raises
    NetDefinitionError / ShapeError naming the layer."""
    if len(net_param.layers):
        raise NetDefinitionError("net uses legacy 'layers' entries: read it with "
                                 "netdef.prototxt.read_net (which upgrades it) first")
    check_int32_fields(net_param)
    state = net_state(net_param, phase, stages, level)
    layers = insert_splits(filter_layers(net_param, state))
    given = dict(input_shapes or {})
    used_inputs: set[str] = set()

    blob_shapes: dict[str, Shape] = {}
    need_bw: dict[str, bool] = {}
    available: list[str] = []
    nodes: list[LayerNode] = []
    param_owner: dict[str, tuple[int, int]] = {}  # param name -> (node index, param index)
    explicit: set[tuple[int, int, str]] = set()     # (node, param, field) given in the prototxt
    inputs: list[str] = []
    for lp in layers:
        for j, b in enumerate(lp.bottom):
            if b not in blob_shapes:
                raise _unknown_bottom(lp, j, blob_shapes)
        if len(lp.propagate_down) not in (0, len(lp.bottom)):
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}): propagate_down must be "
                                     f"given 0 or {len(lp.bottom)} (bottom count) times, got "
                                     f"{len(lp.propagate_down)}")
        in_place = False
        for j, t in enumerate(lp.top):
            if j < len(lp.bottom) and lp.bottom[j] == t:
                in_place = True
            elif t in blob_shapes or t in lp.top[:j]:
                raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}): top blob '{t}' produced "
                                         "by multiple sources (only a top that repeats the bottom "
                                         "at the same index is computed in place)")
        bshapes = [blob_shapes[b] for b in lp.bottom]
        data_shapes = None
        if not len(lp.bottom) and any(t in given for t in lp.top):
            data_shapes = [given.get(t) for t in lp.top]
            used_inputs.update(t for t in lp.top if t in given)
        res = layer_shapes(lp, bshapes) if layer_shapes is not None else None
        if res is None:
            res = shp.infer(lp, bshapes, data_shapes)
        for t, s in zip(lp.top, res.top_shapes):
            check_count(s, f"layer '{lp.name}' ({lp.type}): top '{t}'")
        for pi, s in enumerate(res.param_shapes):
            check_count(s, f"layer '{lp.name}' ({lp.type}): parameter blob {pi}")

        if lp.type == "Input":
            inputs.extend(lp.top)

        # bottoms: need backward from the producing blob, overridden by propagate_down
        need = False
        bottom_bw = []
        for j, b in enumerate(lp.bottom):
            bw = need_bw[b]
            need = need or bw
            if len(lp.propagate_down):
                bw = bool(lp.propagate_down[j])
            bottom_bw.append(bw)
            if b in available:
                available.remove(b)
        # parameters: specs, sharing, backward
        if len(lp.param) > len(res.param_shapes):
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}): too many params specified "
                                     f"({len(lp.param)} param entries for "
                                     f"{len(res.param_shapes)} parameter blobs)")
        specs: list[ParamInfo] = []
        for pi, pshape in enumerate(res.param_shapes):
            spec = lp.param[pi] if pi < len(lp.param) else pb.ParamSpec()
            info = ParamInfo(spec.name, spec.lr_mult, spec.decay_mult, tuple(pshape),
                             spec.share_mode)
            need = need or spec.lr_mult != 0  # Net::Init reads the prototxt's spec (default 1)
            if lp.type == "BatchNorm":
                # BatchNormLayer::LayerSetUp masks its statistics from the solver: lr_mult 0
                if spec.HasField("lr_mult") and spec.lr_mult != 0:
                    raise NetDefinitionError(
                        f"layer '{lp.name}' (BatchNorm): cannot configure batch normalization "
                        f"statistics as layer parameters (param {pi} has lr_mult "
                        f"{spec.lr_mult}; it must be 0 or absent)")
                info.lr_mult = 0.0
                info.fixed = True
            if spec.name and spec.name in param_owner:
                oi, op = param_owner[spec.name]
                owner_node = nodes[oi]
                owner = owner_node.param_specs[op]
                if spec.share_mode == pb.ParamSpec.PERMISSIVE:
                    if shp.count(owner.shape) != shp.count(pshape):
                        raise ShapeError(
                            f"layer '{lp.name}' ({lp.type}): cannot share param '{spec.name}' "
                            f"owned by layer '{owner_node.name}'; count mismatch. Owner layer "
                            f"param shape is {shp.fmt(owner.shape)}; sharing layer shape is "
                            f"{shp.fmt(pshape)}")
                elif tuple(owner.shape) != tuple(pshape):
                    raise ShapeError(
                        f"layer '{lp.name}' ({lp.type}): cannot share param '{spec.name}' owned "
                        f"by layer '{owner_node.name}'; shape mismatch. Owner layer param shape "
                        f"is {shp.fmt(owner.shape)}; sharing layer expects shape "
                        f"{shp.fmt(pshape)}")
                for fname in ("lr_mult", "decay_mult"):
                    if spec.HasField(fname):
                        if (oi, op, fname) in explicit:
                            if getattr(owner, fname) != getattr(spec, fname):
                                raise NetDefinitionError(
                                    f"layer '{lp.name}' ({lp.type}): shared param '{spec.name}' "
                                    f"has mismatched {fname} ({getattr(spec, fname)} here, "
                                    f"{getattr(owner, fname)} in layer '{owner_node.name}')")
                        else:
                            setattr(owner, fname, getattr(spec, fname))
                            explicit.add((oi, op, fname))
                info.owner = (owner_node.name, op)
            else:
                if spec.name:
                    param_owner[spec.name] = (len(nodes), pi)
                for fname in ("lr_mult", "decay_mult"):
                    if spec.HasField(fname):
                        explicit.add((len(nodes), pi, fname))
            specs.append(info)

        node = LayerNode(
            name=lp.name, type=lp.type, param=lp, bottoms=list(lp.bottom), tops=list(lp.top),
            bottom_shapes=bshapes, top_shapes=list(res.top_shapes),
            param_shapes=list(res.param_shapes), flops=res.flops,
            loss_weights=default_loss_weights(lp), propagate_down=bottom_bw, param_specs=specs,
            need_backward=need, in_place=in_place)
        nodes.append(node)
        for t, s in zip(lp.top, res.top_shapes):
            blob_shapes[t] = tuple(s)
            need_bw[t] = need_bw.get(t, False) or need
            if t not in available:
                available.append(t)

    unused = set(given) - used_inputs
    if unused:
        raise NetDefinitionError(
            f"input_shapes names {', '.join(sorted(repr(u) for u in unused))}, not a top of a data "
            f"or Input layer of this net in phase {pb.Phase.Name(state.phase)}")

    # shared params take the owner's (possibly sharer-provided) lr/decay
    owner_specs = {name: nodes[i].param_specs[j] for name, (i, j) in param_owner.items()}
    for node in nodes:
        for p in node.param_specs:
            if p.owner is not None:
                owner = owner_specs[p.name]
                p.lr_mult, p.decay_mult = owner.lr_mult, owner.decay_mult

    # backward sweep: only layers contributing to a loss need backward
    under_loss: set[str] = set()
    skip_bp: set[str] = set()
    for node in reversed(nodes):
        contributes = False
        skip = True
        for t, w in zip(node.tops, node.loss_weights):
            if w != 0 or t in under_loss:
                contributes = True
            if t not in skip_bp:
                skip = False
            if contributes and not skip:
                break
        if node.need_backward and skip:
            node.need_backward = False
            node.propagate_down = [False] * len(node.bottoms)
        if not contributes:
            node.need_backward = False
        for j, b in enumerate(node.bottoms):
            if contributes:
                under_loss.add(b)
            else:
                node.propagate_down[j] = False
            if not node.propagate_down[j]:
                skip_bp.add(b)
    if net_param.force_backward:
        for node in nodes:
            node.need_backward = True
            banned = _NO_FORCE_BACKWARD.get(node.type, set())
            for j, b in enumerate(node.bottoms):
                node.propagate_down[j] = node.propagate_down[j] or j not in banned
                need_bw[b] = need_bw[b] or node.propagate_down[j]

    return Graph(name=net_param.name, layers=nodes, blob_shapes=blob_shapes, inputs=inputs,
                 outputs=available, phase=state.phase, stages=tuple(state.stage),
                 level=state.level, force_backward=net_param.force_backward,
                 blob_need_backward=need_bw)
