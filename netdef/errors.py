"""The project's error types. Everything that is the user's input's fault raises a CaffeError
subclass with a message naming the file, line/column or layer and what is wrong; the CLI prints it
as one line (no traceback)."""
from __future__ import annotations


class CaffeError(Exception):
    """Base of every error nbcaffe raises for bad input (files, prototxt, shapes, weights, data)."""


class ParseError(CaffeError):
    """A prototxt / binary protobuf could not be parsed. Message: ``file:line:col: what``."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.path, self.line, self.column = path, line, column
        self.message = message  # without the file:line:col prefix
        where = path or "<string>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class NetDefinitionError(CaffeError):
    """The net is well-formed protobuf but not a valid Caffe net (unknown type, missing bottom,
    mixed layer/layers, bad param sharing, ...). The message names the layer."""


class ShapeError(NetDefinitionError):
    """A layer cannot produce a top shape from its bottoms; the message names layer and shapes."""


class WeightsError(CaffeError):
    """A .caffemodel / .binaryproto / .solverstate is truncated, foreign, or disagrees with the net."""


class DataError(CaffeError):
    """A data source (LMDB, HDF5, image list, MNIST file) is missing, corrupt or mis-shaped."""


class SolverError(CaffeError):
    """Training cannot go on (bad solver settings, NaN loss, snapshot for another net, ...)."""


class ExportError(CaffeError):
    """A net cannot be exported faithfully (to ONNX): the message names the layer, its type and why
    (an operation ONNX cannot express exactly, a shape fixed to one batch size, ...)."""


class LayerError(CaffeError):
    """A layer failed while it ran (e.g. a Python layer's code raised); the message names the
    layer, its type (for a Python layer its module and class) and what went wrong, in one line."""


class ResourceError(CaffeError):
    """The machine cannot run what was asked: the net needs more memory than is free, or a GPU
    was asked for and none was found. The message names what was asked and what was found."""
