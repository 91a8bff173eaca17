"""Probe which numba-cuda this Python imports and whether it can run a kernel (GPU machine only).

``python3 bench/nc_probe.py [--versions] [PREFIX]`` prints one JSON line: versions of numba, numba-cuda,
cuda-bindings, cuda-core, cuda-pathfinder, where ``numba.cuda`` was imported from, whether numba-cuda
0.30.4's requirements hold (numba>=0.60, cuda-bindings>=12.9.1,<14, cuda-core>=0.5.1,<2,
cuda-pathfinder>=1.4,<2), and the result of a tiny kernel (y = 2x + 1 over 1000 elements).
Exit status 0 when the kernel's result is right and, if PREFIX is given, ``numba.cuda`` came from
under PREFIX; 1 otherwise. gpu_check.sh uses it to decide between our numba-cuda wheel and the
image's own. ``--versions``: the versions and the requirement check only (no CUDA, instant).
"""
from __future__ import annotations

import importlib.metadata as md
import json
import re
import sys


def _v(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _tuple(v: str | None) -> tuple[int, ...]:
    if not v:
        return ()
    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--versions"]
    versions_only = "--versions" in sys.argv[1:]
    prefix = args[0] if args else None
    info: dict = {d: _v(d) for d in ("numba", "numba-cuda", "cuda-bindings", "cuda-core",
                                     "cuda-pathfinder", "llvmlite")}
    req = {"numba": ((0, 60), None), "cuda-bindings": ((12, 9, 1), (14,)),
           "cuda-core": ((0, 5, 1), (2,)), "cuda-pathfinder": ((1, 4), (2,))}
    unmet = []
    for dist, (lo, hi) in req.items():
        t = _tuple(info[dist])
        if not t or t < lo or (hi is not None and t >= hi):
            unmet.append(f"{dist}=={info[dist]}")
    info["requirements_unmet"] = unmet
    if versions_only:
        print(json.dumps(info))
        return 0
    ok = False
    try:
        import numpy as np
        from numba import cuda
        info["numba.cuda"] = cuda.__file__
        info["implementation"] = getattr(cuda, "implementation", "?")

        @cuda.jit
        def axpb(x, y):
            i = cuda.grid(1)
            if i < x.size:
                y[i] = 2 * x[i] + 1

        x = np.arange(1000, dtype=np.float32)
        dx = cuda.to_device(x)
        dy = cuda.device_array_like(dx)
        axpb[4, 256](dx, dy)
        ok = bool(np.array_equal(dy.copy_to_host(), 2 * x + 1))
        info["kernel_ok"] = ok
        if prefix and prefix not in (cuda.__file__ or ""):
            info["note"] = f"numba.cuda not imported from {prefix}"
            ok = False
    except Exception as e:  # noqa: BLE001 - the probe reports any failure
        info["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        ok = False
    info["ok"] = ok
    print(json.dumps(info))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
