"""Stage ``gemm``: our SGEMM kernels (kernels/gemm.py) against cuBLAS FP32 (torch, TF32 off).

Shapes: square 1024/2048/4096, and the im2col GEMMs of AlexNet's five convolutions at batch 256
(forward M=Cout/g, N=chunk*OH*OW, K=Cin/g*kh*kw; the two backward GEMMs too, see bench/alexnet.py),
with the images-per-column-buffer chunk that kernels/conv.py uses.

Order (most important first, each item under the stage's time budget):
1. per shape: validate ``gemm()`` (the promoted kernel + ``select_config``) against cuBLAS on fresh
   random data (relative Frobenius error <= TOL), then time both: GFLOP/s = 2*M*N*K / time and % of
   cuBLAS;
2. autotune table: every kernel in ``gemm.KERNELS`` (v1, v2, v3/v4 x every tile in ``CONFIGS``) on the
   square and the forward conv shapes, each validated before it is timed; the best per shape.

Run: ``python -m bench.bench_gemm`` (dry run: NBCAFFE_BENCH_DRY=1, tiny shapes, simulator).
"""
from __future__ import annotations

from bench.common import DRY, Stage, log, main_guard, missing, size, time_fn, torch_mod
from bench.devarrays import empty_pair, rand_pair, rel_err_dev

TOL = 1e-4    # relative Frobenius error allowed against cuBLAS (fp32 with K <= ~1e6 gives ~1e-6)


def shapes() -> list[tuple[str, int, int, int, bool, bool, bool]]:
    """(label, M, N, K, trans_a, trans_b, sweep) in priority order; ``sweep``: in the autotune table."""
    from bench.alexnet import conv_chunk, conv_layers
    out = []
    for s in size((4096, 2048, 1024), (16,)):
        out.append((f"sq{s}", s, s, s, False, False, True))
    for layer in conv_layers():
        chunk = conv_chunk(layer)
        for kind, (m, n, k, ta, tb) in layer.gemm_shapes(chunk).items():
            out.append((f"{layer.name}_{kind}", m, n, k, ta, tb, kind == "fwd" and not DRY))
    return out


def body(st: Stage) -> None:
    why = missing("kernels.gemm", "gemm", "gemm_with", "KERNELS")
    if why:
        st.note(f"skipped: {why}")
        st.finish("skipped")
        return
    from kernels import gemm as kg
    torch = torch_mod()
    reps = dict(warmup=0, min_reps=1, max_reps=1) if DRY else dict(warmup=1, min_reps=3, max_reps=20,
                                                                    target_s=0.15)
    data = {}
    cublas_ms: dict[str, float] = {}
    st.put("gemm_promoted", kg.PROMOTED if hasattr(kg, "PROMOTED") else "?")

    def operands(label, m, n, k, ta, tb):
        if label not in data:
            a_shape = (k, m) if ta else (m, k)
            b_shape = (n, k) if tb else (k, n)
            a, at = rand_pair(a_shape, seed=1)
            b, bt = rand_pair(b_shape, seed=2)
            c, ct = empty_pair((m, n))
            ref = (at.t() if ta else at) @ (bt.t() if tb else bt)
            data.clear()   # one shape's operands at a time (4096^2 x 4 = 64 MB each; conv1 ~1 GB)
            data[label] = (a, at, b, bt, c, ct, ref)
        return data[label]

    def cublas(label, m, n, k, ta, tb):
        a, at, b, bt, c, ct, ref = operands(label, m, n, k, ta, tb)
        aa = at.t() if ta else at
        bb = bt.t() if tb else bt
        t = time_fn(lambda: torch.mm(aa, bb, out=ct), **reps)
        cublas_ms[label] = t["ms"]
        return t

    def run_ours(label, m, n, k, ta, tb, kname):
        """Validate then time kernel ``kname`` (None: the public ``gemm``); returns the row."""
        a, at, b, bt, c, ct, ref = operands(label, m, n, k, ta, tb)
        if kname is None:
            def fn():
                kg.gemm(ta, tb, 1.0, a, b, 0.0, c)
        else:
            def fn():
                kg.gemm_with(kname, ta, tb, 1.0, a, b, 0.0, c)
        ct.fill_(float("nan"))
        fn()   # first call: JIT compile (outside any timed region) and the validation result
        err = rel_err_dev(c, ref)
        flops = 2.0 * m * n * k
        row = {"shape": label, "M": m, "N": n, "K": k, "trans": f"{'T' if ta else 'N'}{'T' if tb else 'N'}",
               "kernel": kname or f"gemm() -> {kg.kernel_for(m, n, k)}", "rel_err": err}
        if not err <= TOL:
            row["status"] = f"WRONG (rel_err {err:.2e} > {TOL})"
            st.note(f"{label} {row['kernel']}: validation failed, rel_err={err:.3e}: not timed")
            return row
        t = time_fn(fn, **reps)
        row.update(ms=t["ms"], gflops=flops / t["ms"] / 1e6, reps=t["reps"], status="ok")
        if label in cublas_ms:
            row["pct_cublas"] = 100.0 * cublas_ms[label] / t["ms"]
        return row

    st.put("gemm_square_max", max(s[1] for s in shapes() if s[0].startswith("sq")))
    # 1. promoted kernel vs cuBLAS on every shape
    for label, m, n, k, ta, tb, _ in shapes():
        if st.time_left() < 8:
            st.note(f"{label}: skipped (stage time budget)")
            continue
        tc = st.guard(f"{label} cublas", cublas, label, m, n, k, ta, tb)
        if tc is None:
            continue
        row = st.guard(f"{label} gemm()", run_ours, label, m, n, k, ta, tb, None)
        if row is None:
            continue
        row["cublas_ms"] = tc["ms"]
        row["cublas_gflops"] = 2.0 * m * n * k / tc["ms"] / 1e6
        st.row("gemm_vs_cublas", row)
        log(f"gemm {label:12s} M={m} N={n} K={k}: ours {row.get('gflops', float('nan')):8.0f} GFLOP/s "
            f"cuBLAS {row['cublas_gflops']:8.0f} GFLOP/s ({row.get('pct_cublas', float('nan')):.0f}%) "
            f"err {row['rel_err']:.1e}")
        key = f"sgemm_{label[2:]}" if label.startswith("sq") else f"sgemm_{label}"
        if "gflops" in row:
            st.put(f"{key}_gflops", round(row["gflops"], 1))
        st.put(f"{'cublas_' + label[2:] if label.startswith('sq') else 'cublas_' + label}_gflops",
               round(row["cublas_gflops"], 1))

    # 2. autotune table: every kernel x the sweep shapes (dry run: every kernel on the first shape)
    sweep = [s for s in shapes() if s[6]] if not DRY else [shapes()[0]]
    # the largest square first (the headline), then the conv shapes, then the smaller squares
    sweep.sort(key=lambda s: (0 if s[0] == shapes()[0][0] else 2 if s[0].startswith("sq") else 1))
    names = list(kg.KERNELS)
    best: dict[str, dict] = {}
    for label, m, n, k, ta, tb, _ in sweep:
        for kname in names:
            if st.time_left() < 6:
                st.note(f"autotune {label} {kname}: skipped (stage time budget)")
                continue
            if kname == "gemm_v1" and m * n * k > 2048 ** 3:
                continue   # naive kernel: seconds per call at 4096^3 / conv1; its 2048 row tells enough
            row = st.guard(f"autotune {label} {kname}", run_ours, label, m, n, k, ta, tb,
                           kname)
            if row is None:
                continue
            st.row("gemm_autotune", row)
            if "gflops" in row and row["gflops"] > best.get(label, {}).get("gflops", -1):
                best[label] = row
        if label in best:
            b = best[label]
            chosen = kg.kernel_for(m, n, k)
            chosen_row = next((r for r in st.data["tables"].get("gemm_autotune", [])
                               if r["shape"] == label and r["kernel"] == chosen and "gflops" in r), None)
            st.row("gemm_best", {"shape": label, "M": m, "N": n, "K": k, "best_kernel": b["kernel"],
                                 "best_gflops": b["gflops"], "pct_cublas": b.get("pct_cublas"),
                                 "select_config_kernel": chosen,
                                 "select_config_gflops": chosen_row["gflops"] if chosen_row else None})
            log(f"autotune {label}: best {b['kernel']} {b['gflops']:.0f} GFLOP/s; "
                f"select_config -> {chosen}")
            if label.startswith("sq"):
                st.put(f"sgemm_{label[2:]}_best_gflops", round(b["gflops"], 1))
                st.put(f"sgemm_{label[2:]}_best_kernel", b["kernel"])
    data.clear()


if __name__ == "__main__":
    raise SystemExit(main_guard(Stage("gemm"), body))
