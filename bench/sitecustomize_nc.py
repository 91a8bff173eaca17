"""Copied by bench/gpu_check.sh as ``sitecustomize.py`` into the directory holding our numba-cuda
wheel (``/tmp/site-nc``), which is on PYTHONPATH. Python processes ``.pth`` files only in site
directories, not in PYTHONPATH entries, so numba-cuda's ``_numba_cuda_redirector.pth`` (which makes
``numba.cuda`` resolve to ``numba_cuda``) would be ignored there; ``site.addsitedir`` processes it.
The image's own ``sitecustomize`` (which this file shadows) is then run too.
"""
import importlib.util
import os
import site
import sys

_here = os.path.dirname(os.path.abspath(__file__))
site.addsitedir(_here)
for _p in list(sys.path):
    if os.path.abspath(_p or ".") == _here:
        continue
    _f = os.path.join(_p or ".", "sitecustomize.py")
    if os.path.isfile(_f):
        _spec = importlib.util.spec_from_file_location("_image_sitecustomize", _f)
        if _spec and _spec.loader:
            try:
                _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
            except Exception as _e:  # noqa: BLE001 - never break interpreter start-up
                print(f"sitecustomize_nc: image sitecustomize failed: {_e}", file=sys.stderr)
        break
