"""The table of mappings, keyed by Caffe type name (like runner.registry for layers).

    @maps("ReLU")
    def relu(ctx: LayerContext) -> None: ...      # writes ctx.outputs from ctx.inputs

    refused("Python", "why ...")                  # a type ONNX cannot express faithfully

Mappings live in ``runner/onnx_export/mappings/<family>.py`` and register at import; ``load_all()``
imports them all. A type registered twice is a programming error (ValueError).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from runner.onnx_export.builder import LayerContext

Mapping = Callable[[LayerContext], None]
MAPPINGS: dict[str, Mapping] = {}
REFUSED: dict[str, str] = {}
_loaded = False


def maps(*types: str) -> Callable[[Mapping], Mapping]:
    """Decorator: the mapping of the Caffe types ``types``."""
    def deco(fn: Mapping) -> Mapping:
        for t in types:
            if t in MAPPINGS or t in REFUSED:
                raise ValueError(f"ONNX mapping for '{t}' registered twice")
            MAPPINGS[t] = fn
        return fn
    return deco


def refused(type_name: str, why: str) -> None:
    """Record that ``type_name`` is refused, and why (the error message names the layer too)."""
    if type_name in MAPPINGS or type_name in REFUSED:
        raise ValueError(f"ONNX mapping for '{type_name}' registered twice")
    REFUSED[type_name] = why


def load_all() -> None:
    """Import every module of runner.onnx_export.mappings once."""
    global _loaded
    if _loaded:
        return
    import runner.onnx_export.mappings as pkg
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"runner.onnx_export.mappings.{mod.name}")
    _loaded = True


def mapped_types() -> list[str]:
    """Caffe types with an ONNX mapping, sorted."""
    load_all()
    return sorted(MAPPINGS)
