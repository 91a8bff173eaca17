"""Layer registry keyed by Caffe type name (Caffe's LayerRegistry).

Each layer module registers its class on definition::

    @register("ReLU")
    class ReLULayer(Layer): ...

A duplicate type name is a programming error (ValueError). Looking up an unknown type raises
``NetDefinitionError`` naming the layer and listing the known types. ``load_all()`` imports every
module in ``runner.layers`` (including the data layers) so the table is complete.

"Known" means "runs": importing this module makes ``netdef.shapes``' unknown-type error (the one
``nbcaffe inspect`` and ``Net`` hit first) list the registered types, not every type with a shape
rule. Every registered type has a shape rule (tests/runner/test_registry.py).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from netdef import shapes as _shapes
from netdef.errors import NetDefinitionError

_REGISTRY: dict[str, type] = {}
_loaded = False


def register(type_name: str) -> Callable[[type], type]:
    """Class decorator: register a Layer subclass under the Caffe type ``type_name``."""
    def deco(cls: type) -> type:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise ValueError(f"layer type {type_name!r} registered twice: {_REGISTRY[type_name].__module__}."
                             f"{_REGISTRY[type_name].__name__} and {cls.__module__}.{cls.__name__}")
        _REGISTRY[type_name] = cls
        cls.type = type_name
        return cls
    return deco


def load_all() -> None:
    """Import every module of runner.layers once (registration happens at import)."""
    global _loaded
    if _loaded:
        return
    import runner.layers as pkg
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"runner.layers.{mod.name}")
    _loaded = True


def known_types() -> list[str]:
    """Sorted list of registered Caffe type names."""
    load_all()
    return sorted(_REGISTRY)


def get_layer_class(type_name: str, layer_name: str = "") -> type:
    """The class registered for ``type_name``; NetDefinitionError naming the layer otherwise."""
    load_all()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        where = f"layer {layer_name!r}: " if layer_name else ""
        raise NetDefinitionError(f"{where}unknown layer type {type_name!r}; known types: "
                                 f"{', '.join(sorted(_REGISTRY))}") from None


_shapes.set_known_types_source(known_types)
