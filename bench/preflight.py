"""Stage ``preflight`` (always first, a few seconds): does this checkout hold everything the stages
import, as files that travel?

The device tool copies tracked and untracked-not-ignored files only, and CI clones the repository:
a module that imports here because some other copy of the project provides it (an editable install
of another checkout, a git-ignored directory) is missing there, and every stage that imports it
fails on the one GPU call. So this stage imports the modules the stages use (every kernel module,
the runner's net, solver, backends, replay, executor, CLI and ``time`` command, netdef, proto; the
dist package when the ``dist`` stage is listed), then checks every loaded module of the project's
packages:

- its file lies inside this checkout (not in another worktree or an editable install's source);
- where ``git`` and ``.git`` exist, the file is not git-ignored (it would not travel) and is tracked
  (an untracked file travels to the GPU machine but is absent from a fresh clone: a note).

On the GPU machine it also lists the wheels in ``.whl/`` (the setup step installs them). Results:
``$BENCH_WORK/preflight.json`` (status ``ok`` or ``FAILED: ...``), one line per problem in the log.
Exit code 1 on a problem (the other stages still run: they say what breaks).

Run: ``python -m bench.preflight``.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

from bench.common import DRY, ROOT, Stage, log

PACKAGES = ("kernels", "runner", "netdef", "proto", "caffe", "bench")
MODULES = ("netdef.prototxt", "proto.caffe_pb2", "runner.net", "runner.cli", "runner.executor",
           "runner.solver.solver", "runner.backend.cpu", "runner.backend.cuda",
           "runner.backend.replay", "runner.commands.time", "bench.netprep", "bench.alexnet")


def _imports(stages: list[str]) -> list[str]:
    """Import the modules the stages need; returns one line per import that failed."""
    import kernels
    wanted = [f"kernels.{m.name}" for m in pkgutil.iter_modules(kernels.__path__)] + list(MODULES)
    if "dist" in stages:
        wanted += ["runner.dist.world", "runner.dist.gradients"]
    failed = []
    for name in wanted:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed.append(f"import {name} failed: {type(e).__name__}: {str(e)[:200]}")
    return failed


def _project_files() -> dict[str, Path]:
    """module name -> file of every loaded module of the project's packages."""
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] in PACKAGES and getattr(mod, "__file__", None):
            out[name] = Path(mod.__file__).resolve()
    return out


def _git(*args: str, stdin: str = "") -> tuple[int, str]:
    try:
        r = subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                           timeout=20)
        return r.returncode, r.stdout
    except (OSError, subprocess.SubprocessError):
        return -1, ""


def check(stages: list[str]) -> tuple[list[str], list[str]]:
    """(problems, notes) for the stages about to run."""
    problems = _imports(stages)
    notes: list[str] = []
    files = _project_files()
    root = ROOT.resolve()
    inside = {}
    for name, path in sorted(files.items()):
        if root not in path.parents:
            problems.append(f"{name} is imported from {path}, outside this checkout ({root}): "
                            f"it will be missing on the GPU machine and in CI")
        else:
            inside[name] = path.relative_to(root).as_posix()
    if (ROOT / ".git").exists() and _git("--version")[0] == 0:
        rels = sorted(set(inside.values()))
        _, ignored = _git("check-ignore", "--no-index", "--stdin", stdin="\n".join(rels) + "\n")
        for rel in ignored.split():
            problems.append(f"{rel} is git-ignored: it does not travel to the GPU machine and a "
                            f"fresh clone lacks it")
        rc, tracked = _git("ls-files", "--", *rels)
        if rc == 0:
            untracked = sorted(set(rels) - set(tracked.split()) - set(ignored.split()))
            if untracked:
                notes.append(f"untracked (travels, but not committed): {', '.join(untracked[:10])}")
    else:
        notes.append("no git here: the ignored/tracked check was skipped")
    if not DRY:
        whl = sorted(p.name for p in (ROOT / ".whl").glob("*.whl")) if (ROOT / ".whl").is_dir() else []
        notes.append(f".whl: {', '.join(whl) if whl else 'none (was .whl carried?)'}")
    notes.append(f"{len(files)} project modules loaded, {len(inside)} from this checkout")
    return problems, notes


def main() -> int:
    st = Stage("preflight")
    stages = [s for s in os.environ.get("NBCAFFE_BENCH_STAGES", "").split(",") if s]
    problems, notes = check(stages)
    for n in notes:
        st.note(n)
    for p in problems:
        st.note(f"PROBLEM: {p}")
    st.finish("ok" if not problems else f"FAILED: {len(problems)} problem(s), see notes")
    log(f"preflight: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
