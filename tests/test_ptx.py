"""Every kernel in every kernels/ module compiles for sm_90 without fp64, local memory or spills.

The compilation runs ``tools/kernel_report.py`` once, in a subprocess without the CUDA simulator
(this test process has NUMBA_ENABLE_CUDASIM=1; compile_ptx needs the real compiler, not a GPU).
Results are cached by module source hash in .pytest_cache/nbcaffe-ptx, so only edited modules are
recompiled. One test per module; a failure lists each bad kernel x signature and why.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import kernel_report  # noqa: E402

MODULES = kernel_report.kernel_modules()


@pytest.fixture(scope="session")
def ptx_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ptx") / "kernels.json"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "kernel_report.py"), "--no-docs",
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    if not out.is_file():
        pytest.fail(f"kernel_report.py produced no results (rc={proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


@pytest.mark.parametrize("module", MODULES)
def test_module_kernels_compile_clean(module, ptx_results):
    rows = [r for r in ptx_results if r["module"] == module]
    bad = [f"{r['kernel']} {r['sig']}: {'; '.join(r['problems'])}" for r in rows if r["problems"]]
    assert not bad, f"kernels/{module}.py:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_kernel_is_registered(module):
    """Each module-level @cuda.jit kernel (not device functions) appears in the module's KERNELS,
    so the PTX check and the benchmarks see it; names follow the module's entries."""
    mod = importlib.import_module(f"kernels.{module}")
    kernels = getattr(mod, "KERNELS", None)
    assert isinstance(kernels, dict), f"kernels/{module}.py has no KERNELS dict"
    registered = {id(entry[0]) for entry in kernels.values()}
    for name, obj in vars(mod).items():
        if type(obj).__name__ in ("CUDADispatcher", "FakeCUDAKernel") and not _is_device(obj):
            assert id(obj) in registered, f"kernels/{module}.py: kernel {name} is not in KERNELS"
    for name, entry in kernels.items():
        assert len(entry) in (2, 3) and len(entry[1]) >= 1, f"{module}.KERNELS[{name!r}]: no signatures"


def _is_device(obj) -> bool:
    opts = getattr(obj, "targetoptions", None)
    if opts is not None:
        return bool(opts.get("device"))
    return bool(getattr(obj, "_device", False))


def test_fp64_and_local_detectors():
    """The PTX scanners flag what they must (so a clean report means something)."""
    bad = "\tadd.f64 \t%fd1, %fd2, %fd3;\n\tcvt.rn.f32.f64 \t%f1, %fd1;\n"
    assert len(kernel_report._FP64.findall(bad)) == 2
    assert not kernel_report._FP64.findall("\tadd.f32 \t%f1, %f2, %f3;\n\tld.param.u64 \t%rd1, [p];\n")
    assert kernel_report._LOCAL.search("\tst.local.f32 \t[%rd1], %f1;")
    info = ("ptxas info    : Used 40 registers, used 1 barriers, 3328 bytes smem\n"
            "ptxas         .     0 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n")
    r = kernel_report.parse_info(info)
    assert (r["regs"], r["smem"], r["spill_stores"], r["spill_loads"]) == (40, 3328, 8, 12)


# tensor-core kernels: the mma.sync of their precision (and ldmatrix from v2 on) is in the PTX of
# every kernel x signature -- not silently compiled away, not an FP32 fallback
_MMA_OF = {"tf32": "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
           "fp16": "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
           "bf16": "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"}


def test_tensor_core_kernels_issue_mma_sync(ptx_results):
    rows = [r for r in ptx_results if r["module"] == "gemm_tc"]
    assert rows, "no gemm_tc rows in the PTX report"
    for r in rows:
        version, precision = r["kernel"].split("_")[2:4]
        ops = r.get("tensor_ops", {})
        kinds = {o for o in ops if o.startswith("mma")}
        assert ops.get(_MMA_OF[precision], 0) > 0 and kinds == {_MMA_OF[precision]}, (r["kernel"], ops)
        ldm = ops.get("ldmatrix.sync.aligned.m8n8.x4.shared.b16", 0)
        assert (ldm > 0) == (version != "v1"), (r["kernel"], ops)
