#!/usr/bin/env bash
# bench/run_kernel_tests.sh: the kernel property tests (tests/kernels, tests/runner/test_replay.py and tests/runner/test_conv_cache.py) for gpu_check.sh's "tests" stage.
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
# plus the runner's replay tests: its pre-bound launch path (runner/backend/replay.py, _bind_gpu) only runs
# on a real GPU
# NBCAFFE_TESTS_PATHS (space-separated) narrows the run to some files, e.g. a re-check of the files
# changed since the last full GPU run
read -r -a paths <<< "${NBCAFFE_TESTS_PATHS:-tests/kernels tests/runner/test_replay.py tests/runner/test_conv_cache.py}"
args=(-m pytest -v "${paths[@]}" -p no:cacheprovider -p bench.pytest_kernel_cache --maxfail="$maxfail" -rfE
      --continue-on-collection-errors)   # one broken file must not stop the others
if [[ ${NBCAFFE_BENCH_DRY:-0} == 1 ]]; then
  # the dry run also collects with the GPU profile (no GPU needed to import and collect): a test file
  # that only breaks with the "gpu" settings would otherwise first show on the one real run
  echo "\$ NBCAFFE_DEVICE=gpu NUMBA_ENABLE_CUDASIM=0 $PY ${args[*]} --collect-only" > "$OUT/kernel_tests.log"
  NBCAFFE_BENCH_DRY=0 NBCAFFE_DEVICE=gpu NUMBA_ENABLE_CUDASIM=0 "$PY" "${args[@]}" --collect-only -q \
    >> "$OUT/kernel_tests.log" 2>&1
  gpu_rc=$?
  grep -E "^(ERROR|FAILED)|Error|error:" "$OUT/kernel_tests.log" | head -20 > "$OUT/kernel_tests_gpu_collect.txt"
  mv "$OUT/kernel_tests.log" "$OUT/kernel_tests_gpu_collect.log"
  args+=(--collect-only)
else
  export NBCAFFE_DEVICE=gpu
  "$PY" -c "import xdist" 2>/dev/null && args+=(-n 8 --dist load)
  "$PY" -c "import pytest_timeout" 2>/dev/null && args+=(--timeout=100)
fi
echo "\$ $PY ${args[*]}" > "$OUT/kernel_tests.log"
"$PY" "${args[@]}" >> "$OUT/kernel_tests.log" 2>&1
rc=$?
if [[ ${NBCAFFE_BENCH_DRY:-0} == 1 ]]; then   # one log: the GPU-profile collection first
  { echo "== collection with the GPU profile (rc=$gpu_rc):"; tail -3 "$OUT/kernel_tests_gpu_collect.log"
    cat "$OUT/kernel_tests_gpu_collect.txt"; echo "== collection in the simulator (rc=$rc):"
    cat "$OUT/kernel_tests.log"; } > "$OUT/kernel_tests.tmp"
  mv "$OUT/kernel_tests.tmp" "$OUT/kernel_tests.log"
  rm -f "$OUT/kernel_tests_gpu_collect.log" "$OUT/kernel_tests_gpu_collect.txt"
  (( rc == 0 )) && rc=$gpu_rc
fi
tail -5 "$OUT/kernel_tests.log"
exit $rc
