"""Merge the stage files into ``$OUT/results.json`` and ``$OUT/results.md``; print the summary.

``python -m bench.report --work DIR --out DIR [--summary]``

- ``DIR/work/<stage>.json`` (written incrementally by each stage, see ``bench/common.py``) and
  ``stages.tsv`` (name, exit code, seconds, timeout, written by gpu_check.sh) are merged into
  ``results.json``: every stage's scalars at the top level (``device``, ``date``,
  ``sgemm_4096_gflops``, ``cublas_4096_gflops``, ``alexnet_iter_ms``, ``torch_alexnet_iter_ms``,
  ``lenet_iter_ms``, ``torch_lenet_iter_ms``, ``copy_gbps``, ... always present, null when not
  measured), derived ratios, ``stages`` (status, exit code, seconds, notes), ``tables`` and the kernel
  test summary parsed from ``kernel_tests.log``.
- ``results.md``: a headline table (ours, baseline, ratio) and every stage's tables, ready to paste
  into BENCHMARKS.md under the card's name and date.
- ``--summary`` prints a short plain-text table (the device tool returns only the end of stdout).
Both files are written through a temporary name and ``os.replace``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Any

K40_ALEXNET_ITER_MS = 1425.0   # Caffe on a Tesla K40, AlexNet, batch 256, forward+backward+update

REQUIRED = ("device", "date", "sgemm_4096_gflops", "cublas_4096_gflops", "alexnet_iter_ms",
            "torch_alexnet_iter_ms", "lenet_iter_ms", "torch_lenet_iter_ms", "copy_gbps")
STAGE_ORDER = ("setup", "preflight", "env", "tests", "gemm", "conv", "memory", "train", "time", "dist")
# Caffe's published AlexNet table (20 iterations, seconds): batch -> (CPU, Tesla K40)
CAFFE_TABLE_S20 = {64: (64.0, 7.5), 128: (124.0, 14.5), 256: (257.0, 28.5)}
# issue 17's memory-bound kernels (bench_memory op names) and the conv GEMM shapes
TARGET_MEMORY_OPS = ("relu_fwd", "relu_bwd", "maxpool_fwd", "maxpool_bwd", "lrn_fwd", "lrn_bwd",
                     "softmax_fwd_spatial", "softmax_bwd_spatial", "im2col", "col2im", "cn_to_nc",
                     "nc_to_cn")
TARGET_GEMM_SHAPES = tuple(f"conv{i}_{k}" for i in range(1, 6) for k in ("fwd", "bwd_w", "bwd_d"))


def _load_stages(work: Path) -> dict[str, dict]:
    stages: dict[str, dict] = {}
    for p in sorted(work.glob("*.json")):
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            stages[p.stem] = {"stage": p.stem, "status": f"unreadable: {e}", "scalars": {}, "tables": {},
                              "notes": []}
            continue
        stages[d.get("stage", p.stem)] = d
    return stages


def _load_runs(work: Path) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    tsv = work / "stages.tsv"
    if tsv.exists():
        for line in tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                name, rc, sec, limit = parts
                runs[name] = {"rc": int(rc), "seconds": float(sec), "timeout_s": int(limit)}
    return runs


def _kernel_tests(out: Path) -> dict[str, Any]:
    log = out / "kernel_tests.log"
    if not log.exists():
        return {"summary": "not run"}
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    res: dict[str, Any] = {"summary": "no pytest summary line (killed by the stage timeout?)"}
    for ln in reversed(lines):
        if re.search(r"\b\d+ (passed|failed|errors?|skipped|tests? collected|xfailed|deselected)\b", ln) \
                or "no tests ran" in ln:
            res["summary"] = ln.strip("= ")
            for n, what in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", ln):
                res[what.rstrip("s") if what.startswith("error") else what] = int(n)
            m = re.search(r"(\d+) tests? collected", ln)
            if m:
                res["collected"] = int(m.group(1))
            break
    seen: dict[str, str] = {}     # per-test outcomes from -v lines ("... PASSED tests/...::name")
    for ln in lines:
        for what, test in re.findall(r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b\s+(tests/\S+)", ln):
            seen.setdefault(test, what)
        m = re.match(r"(tests/\S+)\s+(PASSED|FAILED|ERROR|SKIPPED)", ln)
        if m:
            seen.setdefault(m.group(1), m.group(2))
    if seen:
        outcomes = list(seen.values())
        res["per_test_counts"] = {w: outcomes.count(w) for w in sorted(set(outcomes))}
        if res["summary"].startswith("no pytest summary"):
            res["summary"] += " -- seen: " + ", ".join(f"{n} {w.lower()}"
                                                        for w, n in res["per_test_counts"].items())
    res["failures"] = sorted(t for t, w in seen.items() if w in ("FAILED", "ERROR"))[:20] or \
        [ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))][:20]
    return res


def merge(work: Path, out: Path) -> dict[str, Any]:
    """Build the results dict from the stage files in ``work`` (and ``out/kernel_tests.log``)."""
    stages = _load_stages(work)
    runs = _load_runs(work)
    res: dict[str, Any] = {k: None for k in REQUIRED}
    for name in sorted(stages, key=lambda n: (STAGE_ORDER.index(n) if n in STAGE_ORDER else 99, n)):
        for k, v in stages[name].get("scalars", {}).items():
            res[k] = v
    res["dry_run"] = any(s.get("dry_run") for s in stages.values())
    if res["device"] is None:        # no env stage in this run: say so rather than "None"
        res["device"] = "device not recorded (no env stage)"
    if res["date"] is None:
        import datetime as dt
        res["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + " (report time)"
    # derived ratios (ours / baseline: > 1 means we are faster for throughputs, slower for times)
    def ratio(a, b):
        return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    res["sgemm_4096_pct_cublas"] = (round(100 * res["sgemm_4096_gflops"] / res["cublas_4096_gflops"], 1)
                                    if ratio(res["sgemm_4096_gflops"], res["cublas_4096_gflops"]) else None)
    res["alexnet_speedup_vs_torch"] = ratio(res["torch_alexnet_iter_ms"], res["alexnet_iter_ms"])
    res["lenet_speedup_vs_torch"] = ratio(res["torch_lenet_iter_ms"], res["lenet_iter_ms"])
    res["k40_caffe_alexnet_iter_ms"] = K40_ALEXNET_ITER_MS
    res["alexnet_speedup_vs_k40_caffe"] = ratio(K40_ALEXNET_ITER_MS, res["alexnet_iter_ms"])
    res["torch_alexnet_speedup_vs_k40_caffe"] = ratio(K40_ALEXNET_ITER_MS, res["torch_alexnet_iter_ms"])
    res["kernel_tests"] = _kernel_tests(out)
    res["targets"] = targets(res, stages)
    res["stages"] = {}
    for name in list(STAGE_ORDER) + sorted(set(stages) | set(runs)):
        if name in res["stages"] or (name not in stages and name not in runs):
            continue
        s = stages.get(name, {})
        r = runs.get(name, {})
        status = s.get("status", "no result file")
        if r.get("rc") in (124, 137):
            status = f"TIMEOUT ({r['timeout_s']}s), partial: {status}"
        elif r.get("rc") == -1:
            status = "skipped: the run's deadline (NBCAFFE_BENCH_TOTAL_S) had passed"
        elif r and r.get("rc") == 0 and name not in stages:
            status = "ok (no result file: its output is in bench.log)"
        elif r and r.get("rc") != 0 and not str(status).startswith("error"):
            status = f"exit {r['rc']}: {status}"
        if name == "tests" and name not in stages:
            status = res["kernel_tests"]["summary"]
            if r.get("rc") in (124, 137):
                status = f"TIMEOUT ({r['timeout_s']}s): {status}"
            elif r.get("rc") not in (0, None):
                status = f"exit {r['rc']}: {status}"
        res["stages"][name] = {"status": status, **r, "notes": s.get("notes", [])}
        if name == "setup":
            res["stages"][name]["probes"] = s.get("probes")
    res["tables"] = {name: s["tables"] for name, s in stages.items() if s.get("tables")}
    return res


def targets(res: dict[str, Any], stages: dict[str, dict]) -> list[dict[str, Any]]:
    """Issue 17's targets, each with the results.json key(s) that measure it, the measured value,
    the bound and whether it is met (None: not measured in this run)."""
    def num(k):
        v = res.get(k)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    dry = bool(res.get("dry_run"))   # simulator numbers: the keys are filled, nothing is judged

    def row(target, keys, value, bound, ok):
        return {"target": target, "keys": keys, "value": None if value is None else round(value, 3),
                "bound": bound, "met": None if value is None or dry else bool(ok(value))}

    out = [row("SGEMM 4096^3 >= 0.90x cuBLAS FP32", "sgemm_4096_gflops / cublas_4096_gflops",
               ratio(num("sgemm_4096_gflops"), num("cublas_4096_gflops")), ">= 0.90", lambda v: v >= 0.90)]
    gem = {k: ratio(num(f"sgemm_{k}_gflops"), num(f"cublas_{k}_gflops")) for k in TARGET_GEMM_SHAPES}
    got = {k: v for k, v in gem.items() if v is not None}
    worst = min(got, key=got.get) if got else None
    out.append(row(f"every AlexNet im2col GEMM (fwd, dW, dX) >= 0.80x cuBLAS (worst: {worst})",
                   "sgemm_conv<i>_<fwd|bwd_w|bwd_d>_gflops / cublas_...",
                   got[worst] if worst and len(got) == len(gem) else None, ">= 0.80", lambda v: v >= 0.80))
    out.append(row("AlexNet b256 iteration <= 1.0x PyTorch eager", "alexnet_iter_ms / torch_alexnet_iter_ms",
                   ratio(num("alexnet_iter_ms"), num("torch_alexnet_iter_ms")), "<= 1.0", lambda v: v <= 1.0))
    out.append(row("AlexNet b256 iteration <= 28.5 ms (50x Caffe's K40)", "alexnet_iter_ms",
                   num("alexnet_iter_ms"), "<= 28.5", lambda v: v <= 28.5))
    conv = [r for r in stages.get("conv", {}).get("tables", {}).get("conv_layers", [])
            if r.get("pass") in ("fwd", "bwd") and r.get("ms") and r.get("cudnn_ms")]
    cw = max(conv, key=lambda r: r["ms"] / r["cudnn_ms"]) if conv else None
    out.append(row("every conv layer's fwd and bwd <= 1.2x cuDNN"
                   + (f" (worst: {cw['layer']} {cw['pass']})" if cw else ""),
                   "tables.conv.conv_layers: ms / cudnn_ms",
                   cw["ms"] / cw["cudnn_ms"] if cw and len(conv) == 10 else None, "<= 1.2",
                   lambda v: v <= 1.2))
    lenet = [v for v in (num("lenet_iter_ms"), num("lenet_iter_ms_graphs")) if v is not None]
    out.append(row("LeNet b64 iteration <= 0.6x PyTorch eager",
                   "min(lenet_iter_ms, lenet_iter_ms_graphs) / torch_lenet_iter_ms",
                   ratio(min(lenet), num("torch_lenet_iter_ms")) if lenet else None, "<= 0.6",
                   lambda v: v <= 0.6))
    copy = num("copy_gbps")
    mem = {op: ratio(num(f"mem_{op}_gbps"), copy) for op in TARGET_MEMORY_OPS}
    got = {k: v for k, v in mem.items() if v is not None}
    worst = min(got, key=got.get) if got else None
    out.append(row(f"memory-bound kernels >= 0.8x copy, pre-bound (worst: {worst})",
                   "mem_<op>_gbps / copy_gbps", got[worst] if worst and len(got) == len(mem) else None,
                   ">= 0.80", lambda v: v >= 0.80))
    kt = res.get("kernel_tests", {})
    out.append(row("every kernel property test passes (gpu profile)", "kernel_tests.failed, .passed",
                   None if not kt.get("passed") else float(kt.get("failed", 0) + kt.get("error", 0)),
                   "0 failed", lambda v: v == 0))
    have = [b for b in CAFFE_TABLE_S20 if num(f"time_alexnet_b{b}_cuda_s20") is not None
            and num(f"time_alexnet_b{b}_cpu_s20") is not None]
    out.append(row("nbcaffe time --compare cpu,cuda --batch 64,128,256 on AlexNet prints the table",
                   "time_alexnet_b<B>_{cpu,cuda}_s20", float(len(have)) if have else None,
                   "3 rows", lambda v: v == 3))
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e6):
            return f"{v:.2e}"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v).replace("|", "/")


def _table(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return out


def headline(res: dict[str, Any]) -> list[tuple[str, Any, Any, str, Any]]:
    """(what, ours, baseline, baseline name, ours/baseline) rows of the headline table."""
    def pct(a, b):
        return (f"{100 * a / b:.0f}%" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
                else None)

    def speed(t_ours, t_base):   # baseline time / our time: > 1 = we are faster
        return (f"{t_base / t_ours:.2f}x" if isinstance(t_ours, (int, float))
                and isinstance(t_base, (int, float)) and t_ours else None)

    n = res.get("gemm_square_max") or 4096   # 4096 on the GPU; the dry run's tiny square otherwise
    ours, cub, best = (res.get(f"sgemm_{n}_gflops"), res.get(f"cublas_{n}_gflops"),
                       res.get(f"sgemm_{n}_best_gflops"))
    ab, lb = res.get("alexnet_batch") or 256, res.get("lenet_batch") or 64
    rows = [
        (f"SGEMM {n}^3, GFLOP/s", ours, cub, "cuBLAS FP32 (TF32 off)", pct(ours, cub)),
        (f"SGEMM {n}^3 best config, GFLOP/s", best, cub, "cuBLAS FP32", pct(best, cub)),
        ("AlexNet conv fwd+bwd (5 layers), ms", res.get("alexnet_conv_total_ms"),
         res.get("cudnn_alexnet_conv_total_ms"), "cuDNN FP32 (TF32 off)",
         speed(res.get("alexnet_conv_total_ms"), res.get("cudnn_alexnet_conv_total_ms"))),
        (f"AlexNet train iteration b{ab}, ms", res.get("alexnet_iter_ms"), res.get("torch_alexnet_iter_ms"),
         "PyTorch eager FP32", speed(res.get("alexnet_iter_ms"), res.get("torch_alexnet_iter_ms"))),
        (f"AlexNet train iteration b{ab}, ms", res.get("alexnet_iter_ms"), K40_ALEXNET_ITER_MS,
         "Caffe on Tesla K40 (b256)", speed(res.get("alexnet_iter_ms"), K40_ALEXNET_ITER_MS)),
        (f"LeNet train iteration b{lb}, ms", res.get("lenet_iter_ms"), res.get("torch_lenet_iter_ms"),
         "PyTorch eager FP32", speed(res.get("lenet_iter_ms"), res.get("torch_lenet_iter_ms"))),
        (f"LeNet train iteration b{lb}, replay off, ms", res.get("lenet_iter_ms_eager"),
         res.get("torch_lenet_iter_ms"), "PyTorch eager FP32",
         speed(res.get("lenet_iter_ms_eager"), res.get("torch_lenet_iter_ms"))),
        (f"LeNet train iteration b{lb}, CUDA graphs, ms", res.get("lenet_iter_ms_graphs"),
         res.get("torch_lenet_iter_ms"), "PyTorch eager FP32",
         speed(res.get("lenet_iter_ms_graphs"), res.get("torch_lenet_iter_ms"))),
        (f"AlexNet train iteration b{ab}, replay off, ms", res.get("alexnet_iter_ms_eager"),
         res.get("torch_alexnet_iter_ms"), "PyTorch eager FP32",
         speed(res.get("alexnet_iter_ms_eager"), res.get("torch_alexnet_iter_ms"))),
        ("kernel launches per AlexNet iteration", res.get("alexnet_launches_per_iter"), None, "", None),
        ("tiny launch overhead, us", res.get("launch_overhead_us"), res.get("torch_launch_overhead_us"),
         "torch tiny op", None),
        ("tiny backend op (relu_fwd, 1 elem), us", res.get("tiny_layer_op_us"), None, "", None),
        ("replayed (pre-bound) launch, us", res.get("replayed_launch_us"),
         res.get("torch_launch_overhead_us"), "torch tiny op", None),
        ("device copy, GB/s (read+write)", res.get("copy_gbps"), res.get("dram_peak_gbps"),
         "DRAM peak (spec)", pct(res.get("copy_gbps"), res.get("dram_peak_gbps"))),
    ]
    for b, (cpu_s, k40_s) in CAFFE_TABLE_S20.items():
        g, c = res.get(f"time_alexnet_b{b}_cuda_s20"), res.get(f"time_alexnet_b{b}_cpu_s20")
        if g is not None or c is not None:
            rows.append((f"nbcaffe time AlexNet b{b}, s/20 it (GPU)", g, c, "our cpu backend, same machine",
                         speed(g, c)))
            rows.append((f"nbcaffe time AlexNet b{b}, s/20 it (GPU)", g, k40_s, "Caffe on Tesla K40",
                         speed(g, k40_s)))
            rows.append((f"nbcaffe time AlexNet b{b}, s/20 it (CPU)", c, cpu_s, "Caffe on CPU (its table)",
                         speed(c, cpu_s)))
    for k in sorted(res):
        m = re.fullmatch(r"mem_(\w+)_gbps", k)
        if m and res[k] is not None:
            rows.append((f"{m.group(1)}, GB/s", res[k], res.get("copy_gbps"), "device copy",
                         pct(res[k], res.get("copy_gbps"))))
    return rows


def markdown(res: dict[str, Any]) -> str:
    """results.md text."""
    title = f"## {res.get('device') or 'unknown device'} ({res.get('date') or 'no date'})"
    if res.get("dry_run"):
        title += " -- DRY RUN (simulator, torch CPU): numbers are not performance"
    lines = [title, ""]
    sw = ", ".join(f"{k[8:]} {res[k]}" for k in sorted(res) if k.startswith("version_") and res[k] not in
                   (None, "-"))
    if sw:
        lines += [f"Software: {sw}.", ""]
    if res.get("fp32_peak_gflops"):
        lines += [f"Napkin peaks: FP32 {res['fp32_peak_gflops']} GFLOP/s, "
                  f"DRAM {res.get('dram_peak_gbps')} GB/s "
                  f"({res.get('sm_count')} SMs at {res.get('sm_clock_mhz')} MHz).", ""]
    lines += ["| benchmark | nbcaffe | baseline | baseline is | nbcaffe vs baseline |",
              "|---|---|---|---|---|"]
    lines += [f"| {w} | {_fmt(a)} | {_fmt(b)} | {n} | {_fmt(r)} |" for w, a, b, n, r in headline(res)]
    if res.get("targets"):
        lines += ["", "Issue 17's targets (value = the ratio or time measured in this run):", ""]
        judged = {True: "met", False: "short", None: "dry run" if res.get("dry_run") else "not measured"}
        lines += _table([{**t, "met": judged[t["met"]]} for t in res["targets"]])
    kt = res.get("kernel_tests", {})
    lines += ["", f"Kernel tests on the device: {kt.get('summary', '-')}"]
    for f in kt.get("failures", []):
        lines.append(f"- `{f}`")
    lines += ["", "Stages:", ""]
    lines += _table([{"stage": n, "status": s["status"], "seconds": s.get("seconds"),
                      "timeout_s": s.get("timeout_s")} for n, s in res["stages"].items()])
    order = ("gemm_vs_cublas", "gemm_best", "gemm_autotune", "gemm_compile_s", "conv_layers", "memory_ops",
             "train", "alexnet_layers", "lenet_layers", "time_compare")
    stages = res.get("tables", {})
    for stage in sorted(stages, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else 99):
        tables = res["tables"][stage]
        for tname in sorted(tables, key=lambda t: order.index(t) if t in order else len(order)):
            lines += ["", f"### {stage}: {tname}", ""] + _table(tables[tname])
    notes = [(n, t) for n, s in res["stages"].items() for t in s.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}: {t}" for n, t in notes]
    return "\n".join(lines) + "\n"


def summary(res: dict[str, Any]) -> str:
    """Short plain-text summary for stdout."""
    out = [f"==== nbcaffe GPU check: {res.get('device')} | {res.get('date')}"
           + (" | DRY RUN" if res.get("dry_run") else "")]
    for n, s in res["stages"].items():
        sec = s.get("seconds")
        out.append(f"  stage {n:7s} {str(s['status'])[:60]:60s} {'' if sec is None else f'{sec:6.1f}s'}")
        for t in s.get("notes", [])[:4]:
            out.append(f"      - {t[:150]}")
        if len(s.get("notes", [])) > 4:
            out.append(f"      - ... {len(s['notes']) - 4} more notes in results.json")
    out.append(f"  kernel tests: {res.get('kernel_tests', {}).get('summary')}")
    for f in res.get("kernel_tests", {}).get("failures", [])[:5]:
        out.append(f"      {f[:150]}")
    out.append(f"  {'benchmark':42s} {'nbcaffe':>10s} {'baseline':>10s}  vs")
    for w, a, b, n, r in headline(res):
        out.append(f"  {w[:42]:42s} {_fmt(a):>10s} {_fmt(b):>10s}  {_fmt(r)}  ({n})" if n else
                   f"  {w[:42]:42s} {_fmt(a):>10s}")
    best = res.get("tables", {}).get("gemm", {}).get("gemm_best", [])
    if best:
        out.append("  GEMM autotune (best kernel per shape):")
        for r in best:
            out.append(f"    {r['shape']:12s} {r['best_kernel']:24s} {_fmt(r.get('best_gflops')):>8s} "
                       f"GFLOP/s {_fmt(r.get('pct_cublas')):>5s}% cuBLAS; gemm() "
                       f"{r.get('gemm_launches', r.get('select_config_kernel'))} "
                       f"{_fmt(r.get('gemm_gflops', r.get('select_config_gflops')))}")
    for r in res.get("tables", {}).get("train", {}).get("train", []):
        if "valid" in r:
            out.append(f"  train {r['net']}: validation {'ok' if r['valid'] else 'MISMATCH'} (loss rel err "
                       f"{_fmt(r.get('loss_rel_err'))}, worst update rel err "
                       f"{_fmt(r.get('worst_delta_rel_err'))} at {r.get('worst_param')}); "
                       f"{r.get('launches_per_iter', '-')} launches/iter, "
                       f"first iteration {_fmt(r.get('first_iter_s'))} s")
    layers = res.get("tables", {}).get("train", {}).get("alexnet_layers", [])
    if layers:
        top = sorted(layers, key=lambda r: -(r.get("fwd_ms", 0) + r.get("bwd_ms", 0)))[:6]
        out.append("  AlexNet slowest layers (fwd+bwd ms): " + "; ".join(
            f"{r['layer']} {_fmt(r.get('fwd_ms'))}+{_fmt(r.get('bwd_ms'))}" for r in top))
    cmp_rows = res.get("tables", {}).get("time", {}).get("time_compare", [])
    if cmp_rows:
        out.append("  nbcaffe time --compare: " + "; ".join(
            "b{} {}".format(r.get("batch"), ", ".join(f"{k} {_fmt(v)}" for k, v in r.items() if k != "batch"))
            for r in cmp_rows))
    for t in res.get("targets", []):
        met = {True: "MET  ", False: "short", None: "  -  "}[t["met"]]
        out.append(f"  target {met} {t['target'][:70]:70s} {_fmt(t['value']):>8s} ({t['bound']})")
    conv = res.get("tables", {}).get("conv", {}).get("conv_layers", [])
    if conv:
        out.append("  conv per layer (ms ours / cuDNN): " + "; ".join(
            f"{r.get('layer')} {r.get('pass')} {_fmt(r.get('ms'))}/{_fmt(r.get('cudnn_ms'))}" for r in conv))
    return "\n".join(out)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path,
                    default=Path(os.environ.get("BENCH_WORK", "/tmp/nbcaffe-bench-work")))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/nbcaffe-bench-out")))
    ap.add_argument("--summary", action="store_true", help="print the summary table to stdout")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    res = merge(a.work, a.out)
    _write(a.out / "results.json", json.dumps(res, indent=1, default=str) + "\n")
    _write(a.out / "results.md", markdown(res))
    if a.summary:
        print(summary(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
