"""pycaffe's net_spec: write a net in Python, get a NetParameter.

    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="train_lmdb",
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.loss = L.SoftmaxWithLoss(n.conv1, n.label)
    open("train.prototxt", "w").write(str(n.to_proto()))

Rules (pycaffe's): ``L.<Type>(*bottoms, **kwargs)`` makes a layer of that type; it returns its top
(``ntop=k`` gives k tops, ``ntop=0`` the layer itself); ``in_place=True`` reuses the bottom as the
top. A keyword ending in ``param`` (``transform_param``, ``param``) sets that LayerParameter field;
any other keyword goes to the type's own ``<type>_param`` message when that message has the field
(``kernel_size`` -> ``convolution_param``), else to the LayerParameter (``loss_weight``,
``include``, ``propagate_down``). Values: a dict fills a message, a list of dicts adds repeated
messages, a list extends a repeated field and a single value is wrapped for a repeated field.
Layer names and top names come from the NetSpec attributes they are assigned to (a layer is
named after its first top); unnamed ones get ``<Type><k>``. ``P.<Type>.<ENUM>`` is the enum value
of ``<Type>Parameter`` (``P.Pooling.MAX``, ``P.Data.LMDB``).
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from proto import caffe_pb2


def _param_field_names() -> dict[str, str]:
    """Layer type -> the name of its ``*_param`` field: the message type's name without
    'Parameter' (``ConvolutionParameter`` -> 'Convolution') to the field's without '_param'."""
    out = {}
    for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if f.name.endswith("_param") and f.message_type is not None:
            out[f.message_type.name[:-len("Parameter")]] = f.name[:-len("_param")]
    return out


_PARAM_NAMES = _param_field_names()


def assign_proto(proto: Any, name: str, value: Any) -> None:
    """Set field ``name`` of message ``proto`` from a Python value (see the module docstring)."""
    field = getattr(proto, name)
    repeated = hasattr(field, "extend")
    if repeated and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            for item in value:
                msg = field.add()
                for k, v in item.items():
                    assign_proto(msg, k, v)
        else:
            field.extend(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(field, k, v)
    else:
        setattr(proto, name, value)


class Top:
    """One output blob of a layer (its ``n``-th top)."""

    def __init__(self, fn: Function, n: int):
        self.fn, self.n = fn, n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, its bottoms (Tops of other layers) and its parameters."""

    def __init__(self, type_name: str, inputs: tuple, params: dict):
        self.type_name = type_name
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto_name(self, key: Any, names: dict, autonames: Counter) -> str:
        if key not in names:
            autonames[self.type_name] += 1
            names[key] = f"{self.type_name}{autonames[self.type_name]}"
        return names[key]

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._auto_name(top, names, autonames) for top in self.tops)
        if self not in names:
            names[self] = (self._auto_name(self.tops[0], names, autonames) if self.ntop
                           else self._auto_name(self, names, autonames))
        layer.name = names[self]
        for k, v in self.params.items():
            if k.endswith("param"):
                assign_proto(layer, k, v)
                continue
            try:
                assign_proto(getattr(layer, _PARAM_NAMES[self.type_name] + "_param"), k, v)
            except (AttributeError, KeyError):
                assign_proto(layer, k, v)
        layers[self] = layer


def to_proto(*tops: Top) -> caffe_pb2.NetParameter:
    """A NetParameter with every layer needed to compute ``tops`` (names generated)."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (``n.conv1 = L.Convolution(...)``) or items (``n['conv1']``);
    ``to_proto()`` names layers and tops after them."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.tops[item]

    def __delitem__(self, name: str) -> None:
        del self.tops[name]

    def keys(self) -> list[str]:
        return list(self.tops)

    def vals(self) -> list[Any]:
        return list(self.tops.values())

    def to_proto(self) -> caffe_pb2.NetParameter:
        names = {v: k for k, v in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``layers.<Type>(*bottoms, **params)``: a layer of that Caffe type (see the module doc)."""

    def __getattr__(self, name: str) -> Any:
        def layer_fn(*args: Top, **kwargs: Any) -> Any:
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        return layer_fn


class Parameters:
    """``params.<Type>.<NAME>``: the value of enum NAME in ``<Type>Parameter``."""

    def __getattr__(self, name: str) -> Any:
        message = getattr(caffe_pb2, name + "Parameter")

        class _Enums:
            def __getattr__(self, param_name: str) -> Any:
                return getattr(message, param_name)
        return _Enums()


layers = Layers()
params = Parameters()
