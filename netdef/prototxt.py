"""Read Caffe net and solver prototxt files (protobuf text format) into upgraded messages.

``read_net`` / ``read_solver`` accept a path (str or os.PathLike) or the prototxt text itself; the
result is always in the current format (see netdef.upgrade). Syntax errors raise
``netdef.errors.ParseError`` whose message is ``file:line:col: what was expected``.

``solver_nets`` resolves the train and test nets of a solver as Caffe's Solver::InitTrainNet /
InitTestNets do (net / net_param / train_net / train_net_param / test_net / test_net_param, with
each net's NetState merged from phase, the net's own state and train_state / test_state).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

from netdef.errors import NetDefinitionError, ParseError, SolverError
from netdef.upgrade import upgrade_net, upgrade_solver
from proto import caffe_pb2 as pb

Source = str | os.PathLike

_PATH_SUFFIXES = (".prototxt", ".pt", ".pbtxt", ".txt", ".solver")


def _load_text(source: Source) -> tuple[str, str | None]:
    """Return (text, path or None). A str is a path when it names an existing file, or is one line
    without '{' that ends like a prototxt file name or has no ':' (prototxt text always has a
    ':' or '{'); otherwise it is prototxt text."""
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
    elif isinstance(source, str):
        looks_like_path = ("\n" not in source and "{" not in source and source.strip() != ""
                           and (os.path.exists(source) or source.endswith(_PATH_SUFFIXES)
                                or ":" not in source))
        if not looks_like_path:
            return source, None
        path = source
    else:
        raise TypeError(f"expected a path or prototxt text, got {type(source).__name__}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ParseError("no such file", path) from None
    except IsADirectoryError:
        raise ParseError("is a directory, not a prototxt file", path) from None
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", path) from None
    try:
        return data.decode("utf-8"), path
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ParseError("not a text prototxt (invalid UTF-8; is it a binary file?)",
                         path, line, col) from None


_PREFIX = re.compile(r"^\s*(\d+):(\d+)\s*:\s*")


def parse_text(text: str, message, path: str | None = None):
    """Merge prototxt ``text`` into ``message`` (any protobuf message) and return it; raise
    ParseError(file:line:col) on a syntax or schema error."""
    try:
        text_format.Parse(text, message, allow_unknown_field=False)
    except text_format.ParseError as e:
        line, col = e.GetLine(), e.GetColumn()
        msg = _PREFIX.sub("", str(e))
        if line is None:
            m = _PREFIX.match(str(e))
            if m:
                line, col = int(m.group(1)), int(m.group(2))
        raise ParseError(msg or "syntax error", path, line, col) from None
    except (ValueError, TypeError, RecursionError) as e:  # e.g. deeply nested braces
        raise ParseError(f"cannot parse: {e}", path) from None
    return message


_NO_FIELD = re.compile(r'Message type "caffe\.(\w+)" has no field named "(\w+)"')


def _parse_with_hint(text: str, message, path: str | None, other, other_kind: str):
    """parse_text, adding a hint when the unknown top-level field belongs to ``other`` (a net
    given where a solver is expected, or the reverse)."""
    try:
        return parse_text(text, message, path)
    except ParseError as e:
        m = _NO_FIELD.search(str(e))
        if (m and m.group(1) == message.DESCRIPTOR.name
                and m.group(2) in other.DESCRIPTOR.fields_by_name):
            raise ParseError(f"{e.message} (is this a {other_kind} prototxt?)",
                             e.path, e.line, e.column) from None
        raise


def read_net(source: Source, upgrade: bool = True) -> pb.NetParameter:
    """Parse a net prototxt (path or text) into a caffe_pb2.NetParameter in the current format
    (legacy V0/V1 nets, net-level inputs and old BatchNorm params upgraded)."""
    text, path = _load_text(source)
    net = _parse_with_hint(text, pb.NetParameter(), path, pb.SolverParameter, "solver")
    from netdef.limits import check_int32_fields
    check_int32_fields(net, path)
    return upgrade_net(net, path) if upgrade else net


def read_solver(source: Source, upgrade: bool = True) -> pb.SolverParameter:
    """Parse a solver prototxt (path or text) into a caffe_pb2.SolverParameter; ``solver_type``
    enums become the ``type`` string and inline nets (net_param, ...) are upgraded."""
    text, path = _load_text(source)
    solver = _parse_with_hint(text, pb.SolverParameter(), path, pb.NetParameter, "net")
    return upgrade_solver(solver, path) if upgrade else solver


def resolve_net_path(ref: str, solver_path: str | None,
                     aliases: dict[str, str] | None = None) -> str:
    """Find the file a solver's ``net:``/``train_net:``/``test_net:`` names. Caffe resolves it from
    the working directory, usually a Caffe checkout (``examples/mnist/lenet_train_test.prototxt``).
    We try: as given (absolute or relative to the cwd), relative to the solver file's directory,
    then its basename in the solver file's directory, then ``aliases`` (a map from the path as
    written to a local file, for copies renamed out of a Caffe checkout). Raises SolverError listing
    the tries."""
    tried = [ref]
    if os.path.isfile(ref):
        return ref
    if solver_path is not None:
        base = Path(solver_path).resolve().parent
        for cand in (base / ref, base / Path(ref).name):
            tried.append(str(cand))
            if cand.is_file():
                return str(cand)
    if aliases and ref in aliases:
        cand = Path(aliases[ref])
        if not cand.is_absolute() and solver_path is not None:
            cand = Path(solver_path).resolve().parent / cand
        tried.append(str(cand))
        if cand.is_file():
            return str(cand)
    raise SolverError(f"{solver_path or '<string>'}: net file '{ref}' not found (tried: "
                      f"{', '.join(dict.fromkeys(tried))})")


@dataclass
class SolverNets:
    """The nets a solver trains and tests, each with its NetState filled in (``net.state``)."""
    train: pb.NetParameter
    tests: list[pb.NetParameter] = field(default_factory=list)
    train_source: str | None = None
    test_sources: list[str | None] = field(default_factory=list)
    # the folder each net's relative paths are read from when they are not found from the working
    # directory: the net file's own, or the solver file's for a net given inline (None: neither)
    train_dir: str | None = None
    test_dirs: list[str | None] = field(default_factory=list)


def solver_nets(solver: pb.SolverParameter, solver_path: str | None = None,
                aliases: dict[str, str] | None = None) -> SolverNets:
    """Resolve and read the train net and the test nets of ``solver`` (Caffe's InitTrainNet and
    InitTestNets), with each net's ``state`` = phase, then the net's own state, then the solver's
    train_state / test_state (later wins, stages appended). Net file names are resolved by
    ``resolve_net_path`` (``aliases`` maps names as written to local files)."""
    where = solver_path or "<string>"
    train_fields = [f for f in ("net", "net_param", "train_net", "train_net_param")
                    if solver.HasField(f)]
    if not train_fields:
        raise SolverError(f"{where}: the solver must give a train net in one of net, net_param, "
                          "train_net, train_net_param")
    if len(train_fields) > 1:
        raise SolverError(f"{where}: the solver gives the train net more than once "
                          f"({', '.join(train_fields)}); give exactly one")

    def folder(path: str | None) -> str | None:
        return str(Path(path).resolve().parent) if path and os.path.exists(path) else None

    def load(field_name: str, value) -> tuple[pb.NetParameter, str | None, str | None]:
        if isinstance(value, str):
            p = resolve_net_path(value, solver_path, aliases)
            return read_net(Path(p)), p, folder(p)
        net = pb.NetParameter()
        net.CopyFrom(value)
        label = f"{where} ({field_name})"
        return upgrade_net(net, label), label, folder(solver_path)

    f = train_fields[0]
    train, train_src, train_dir = load(f, getattr(solver, f))
    state = pb.NetState(phase=pb.TRAIN)
    state.MergeFrom(train.state)
    state.MergeFrom(solver.train_state)
    train.state.CopyFrom(state)

    generic = [f for f in ("net", "net_param") if solver.HasField(f)]
    n_specific = len(solver.test_net_param) + len(solver.test_net)
    n_iter = len(solver.test_iter)
    if generic:
        if n_iter < n_specific:
            raise SolverError(f"{where}: test_iter must be given for each test net "
                              f"({n_specific} test nets, {n_iter} test_iter)")
    elif n_iter != n_specific:
        raise SolverError(f"{where}: test_iter must be given for each test net "
                          f"({n_specific} test nets, {n_iter} test_iter)")
    n_generic = n_iter - n_specific
    n_tests = n_specific + n_generic
    if len(solver.test_state) and len(solver.test_state) != n_tests:
        raise SolverError(f"{where}: test_state must be unspecified or given once per test net "
                          f"({n_tests} test nets, {len(solver.test_state)} test_state)")
    if n_tests and solver.test_interval <= 0:
        raise SolverError(f"{where}: test_interval must be > 0 when the solver has test nets")
    tests: list[pb.NetParameter] = []
    sources: list[str | None] = []
    dirs: list[str | None] = []
    loaded = [load(f"test_net_param #{i}", p) for i, p in enumerate(solver.test_net_param)]
    loaded += [load("test_net", ref) for ref in solver.test_net]
    if n_generic:
        g = generic[0]
        base = load(g, getattr(solver, g))
        for _ in range(n_generic):
            net = pb.NetParameter()
            net.CopyFrom(base[0])
            loaded.append((net, base[1], base[2]))
    for net, src, d in loaded:
        tests.append(net)
        sources.append(src)
        dirs.append(d)
    for i, net in enumerate(tests):
        state = pb.NetState(phase=pb.TEST)
        state.MergeFrom(net.state)
        if len(solver.test_state):
            state.MergeFrom(solver.test_state[i])
        net.state.CopyFrom(state)
    return SolverNets(train, tests, train_src, sources, train_dir, dirs)


def is_solver(source: Source) -> bool:
    """Best guess whether a prototxt is a solver (has solver-only fields) rather than a net."""
    text, path = _load_text(source)
    try:
        parse_text(text, pb.NetParameter(), path)
        return False
    except ParseError:
        try:
            parse_text(text, pb.SolverParameter(), path)
            return True
        except ParseError:
            return False


def check_net_has_layers(net: pb.NetParameter, where: str) -> None:
    if not len(net.layer):
        raise NetDefinitionError(f"{where}: the net has no layers")
