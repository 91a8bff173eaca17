#!/usr/bin/env bash
# bench/run_kernel_tests.sh: the kernel property tests (tests/kernels) for gpu_check.sh's "tests" stage.
# On the GPU: hypothesis "gpu" profile (NBCAFFE_DEVICE=gpu: larger shapes, 60 examples), 8 xdist
# workers when pytest-xdist is there (tests spread one by one; compiled kernels shared through Numba's
# disk cache, bench/pytest_kernel_cache.py, and left there for the benchmark stages), a per-test cap when
# pytest-timeout is there (100 s), --maxfail (NBCAFFE_TESTS_MAXFAIL, default 5). In the dry run: collection
# only (the simulator run of tests/kernels is CI's job). Output: $OUT/kernel_tests.log (-v: one line
# per test as it ends, so a run killed by the stage timeout still says what passed); its last lines
# are echoed.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-/tmp/nbcaffe-bench-out}
maxfail=${NBCAFFE_TESTS_MAXFAIL:-5}
args=(-m pytest -v tests/kernels -p no:cacheprovider -p bench.pytest_kernel_cache --maxfail="$maxfail" -rfE)
if [[ ${NBCAFFE_BENCH_DRY:-0} == 1 ]]; then
  args+=(--collect-only)
else
  export NBCAFFE_DEVICE=gpu
  "$PY" -c "import xdist" 2>/dev/null && args+=(-n 8 --dist load)
  "$PY" -c "import pytest_timeout" 2>/dev/null && args+=(--timeout=100)
fi
echo "\$ $PY ${args[*]}" > "$OUT/kernel_tests.log"
"$PY" "${args[@]}" >> "$OUT/kernel_tests.log" 2>&1
rc=$?
tail -5 "$OUT/kernel_tests.log"
exit $rc
