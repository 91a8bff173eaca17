#!/usr/bin/env bash
# bench/gpu_check.sh: nbcaffe's one-shot GPU check -- environment, kernel tests on the GPU, benchmarks
# against cuBLAS/cuDNN/torch measured in the same run -- with every stage under its own timeout and
# the results rewritten after each stage, so a failure or a timeout loses only that stage.
#
#   bench/gpu_check.sh              real run (GPU machine); results in $OUT (default /tmp/nbcaffe-bench-out)
#   bench/gpu_check.sh --dry-run    CPU dry run: Numba CUDA simulator, tiny sizes, torch CPU baseline
#                                   (same as NBCAFFE_BENCH_DRY=1)
# Environment knobs:
#   OUT                   where results.json, results.md, bench.log, kernel_tests.log go
#   NBCAFFE_BENCH_STAGES  comma list of stages to run (default: env,tests,gemm,conv,memory,train;
#                         also time: `nbcaffe time` on AlexNet, per layer and --compare cpu,cuda;
#                         dist: the one-rank NCCL test, with .whl/nccl4py-*-cp312-*.whl carried;
#                         tf32: tensor cores vs cuBLAS/cuDNN TF32, bench/bench_tf32.py (its LeNet
#                         part needs MNIST: carry data/mnist or set NBCAFFE_MNIST_DIR)).
#                         The preflight check (bench/preflight.py) always runs first.
#   NBCAFFE_BENCH_SCALE   multiply every stage timeout (default 1)
#   NBCAFFE_BENCH_TOTAL_S the whole run's deadline in seconds from the start (default: none): each
#                         stage's limit is cut to what is left of it, less 15 s for the last report,
#                         so the run ends with its files written before the device tool's timeout
#   NBCAFFE_TESTS_MAXFAIL pytest --maxfail for the kernel tests (default 5)
#   NBCAFFE_TESTS_PATHS   test files/dirs for the tests stage (default: tests/kernels tests/runner/test_replay.py tests/runner/test_conv_cache.py)
#   NBCAFFE_BENCH_GEMM_WORKERS  GEMM stage compile/measure processes (default 6; 1 = all in one)
#   NBCAFFE_BENCH_KERNEL_CACHE  0 turns off Numba's disk cache shared by the stages (default 1)
#   NBCAFFE_BENCH_TRAIN_DEVICE  cpu runs the train stage's "ours" on the cpu backend (a dry-run aid)
# Files in $OUT (at most 8 come back from the device tool): results.json, results.md, bench.log,
# kernel_tests.log. Only one line per stage and the final summary table go to stdout.
# The wheels (.whl/, git-ignored, carried): protobuf, numba-cuda; for the dist stage nccl4py and,
# where the image's cuda-core is older than nccl4py needs, cuda-core and cuda-pathfinder
# (docs/benchmarks-method.md says how to download them).
# See docs/benchmarks-method.md for what each number means.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=${NBCAFFE_BENCH_DRY:-0}
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
export NBCAFFE_BENCH_DRY=$DRY
OUT=${OUT:-/tmp/nbcaffe-bench-out}
mkdir -p "$OUT"
export BENCH_WORK
BENCH_WORK=$(mktemp -d /tmp/nbcaffe-bench-work.XXXXXX)
LOG=$OUT/bench.log
rm -f "$OUT"/results.json "$OUT"/results.md "$OUT"/kernel_tests.log
: > "$LOG"
STAGES=${NBCAFFE_BENCH_STAGES:-env,tests,gemm,conv,memory,train}
SCALE=${NBCAFFE_BENCH_SCALE:-1}
TOTAL=${NBCAFFE_BENCH_TOTAL_S:-0}
T_START=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0   # small benchmark grids are deliberate; keep bench.log readable
# compiled kernels are shared between the stages through Numba's disk cache (bench/common.py,
# enable_kernel_cache); a fresh directory per run, so nothing stale is ever loaded
export NUMBA_CACHE_DIR
NUMBA_CACHE_DIR=$(mktemp -d /tmp/nbcaffe-numba-cache.XXXXXX)

if [[ $DRY == 1 ]]; then
  PY=python3
  [[ -x "$ROOT/.venv/bin/python" ]] && PY="$ROOT/.venv/bin/python"
  export NUMBA_ENABLE_CUDASIM=1 NBCAFFE_DEVICE=sim
  # stage timeouts in the simulator (slow: every CUDA thread is a Python thread)
  declare -A TIMEOUT=([preflight]=60 [env]=60 [tests]=120 [gemm]=300 [conv]=400 [memory]=300
                      [train]=900 [time]=1200 [dist]=120 [tf32]=600)
else
  PY=python3
  export NBCAFFE_DEVICE=gpu
  # real run (see docs/benchmarks-method.md; the default stages measured ~4 min on an H200); with
  # NBCAFFE_BENCH_TOTAL_S the deadline cuts whatever stage would pass it
  declare -A TIMEOUT=([preflight]=30 [env]=20 [tests]=150 [gemm]=100 [conv]=90 [memory]=80
                      [train]=130 [time]=150 [dist]=60 [tf32]=420)
fi

say() { echo "[$(date -u +%T) +$(( $(date +%s) - T_START ))s] $*"; }

# ------------------------------------------------------------------------------------------- setup
install_wheel() {  # install_wheel WHEEL DIR: pip --target, or plain unzip when pip is missing
  timeout 60 $PY -m pip install -q --no-index --no-deps --no-compile --target "$2" "$1" >> "$LOG" 2>&1 && return 0
  echo "pip install of $1 failed; unzipping it into $2 instead (a wheel is a zip of its files)" >> "$LOG"
  mkdir -p "$2" && timeout 60 $PY -m zipfile -e "$1" "$2" >> "$LOG" 2>&1
}

setup_gpu() {
  # protobuf >= 7.35.1 for proto/caffe_pb2.py; numba-cuda 0.30.4 if it works with the image's numba
  # and CUDA bindings, else the image's numba-cuda. Wheels come from .whl/ (carried with the repo).
  local pb nc probe_w probe_i src=image
  pb=$(ls .whl/protobuf-*.whl 2>/dev/null | head -1)
  nc=$(ls .whl/numba_cuda-*.whl 2>/dev/null | head -1)
  if [[ -n "$pb" ]]; then
    if install_wheel "$pb" /tmp/site; then
      export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
      say "setup: protobuf wheel install failed (see bench.log); using the image's protobuf"
    fi
  else
    say "setup: no .whl/protobuf-*.whl (was .whl carried?); using the image's protobuf"
  fi
  # the dist stage's NCCL binding, for that stage alone (DIST_EXTRA): nccl4py with the image's
  # cuda-core when that imports it, else with the carried cuda-core / cuda-pathfinder wheels
  local nccl core
  nccl=$(ls .whl/nccl4py-*.whl 2>/dev/null | head -1)
  core=$(ls .whl/cuda_core-*.whl .whl/cuda_pathfinder-*.whl 2>/dev/null)
  if [[ -n "$nccl" ]] && install_wheel "$nccl" /tmp/site-nccl; then
    DIST_EXTRA=/tmp/site-nccl
    if ! PYTHONPATH=$DIST_EXTRA:${PYTHONPATH:-} timeout 60 $PY -c "import nccl.core" >> "$LOG" 2>&1; then
      if [[ -n "$core" ]] && timeout 60 $PY -m pip install -q --no-index --no-deps --no-compile \
           --target /tmp/site-nccl-core $core >> "$LOG" 2>&1; then
        DIST_EXTRA=/tmp/site-nccl:/tmp/site-nccl-core
      fi
      PYTHONPATH=$DIST_EXTRA:${PYTHONPATH:-} timeout 60 $PY -c "import nccl.core" >> "$LOG" 2>&1 \
        && say "setup: nccl4py with the carried cuda-core" \
        || say "setup: nccl4py does not import (see bench.log); the dist stage will skip"
    fi
  fi
  probe_i=$(timeout 60 $PY bench/nc_probe.py --versions 2>>"$LOG" | tail -1)   # the image's, no CUDA
  if [[ -n "$nc" ]] && install_wheel "$nc" /tmp/site-nc; then
    cp bench/sitecustomize_nc.py /tmp/site-nc/sitecustomize.py
    if probe_w=$(PYTHONPATH=/tmp/site-nc:${PYTHONPATH:-} timeout 60 $PY bench/nc_probe.py /tmp/site-nc 2>>"$LOG" | tail -1) \
       && [[ "$probe_w" == *'"ok": true'* ]]; then
      export PYTHONPATH=/tmp/site-nc:${PYTHONPATH:-}
      src=wheel
    fi
  else
    probe_w='{"ok": false, "error": "numba-cuda wheel missing or pip install failed"}'
  fi
  if [[ $src == image ]]; then   # our wheel did not work here: check that the image's does
    probe_i=$(timeout 60 $PY bench/nc_probe.py 2>>"$LOG" | tail -1)
  fi
  say "setup: numba-cuda from the $src (wheel probe: ${probe_w:0:300})"
  [[ $src == image ]] && say "setup: image probe: ${probe_i:0:300}"
  PROBE_W=${probe_w:-null} PROBE_I=${probe_i:-null} SRC=$src $PY - <<'EOF' >> "$LOG" 2>&1
import json, os
from pathlib import Path
def load(s):
    try:
        return json.loads(s)
    except Exception:
        return {"raw": s}
d = {"stage": "setup", "status": "ok", "dry_run": False, "tables": {}, "notes": [],
     "scalars": {"numba_cuda_source": os.environ["SRC"], "pythonpath": os.environ.get("PYTHONPATH", "")},
     "probes": {"wheel": load(os.environ["PROBE_W"]), "image": load(os.environ["PROBE_I"])}}
p = Path(os.environ["BENCH_WORK"]) / "setup.json"
p.write_text(json.dumps(d, indent=1))
EOF
}

# ------------------------------------------------------------------------------------------- stages
SLACK=0   # seconds that earlier stages left unused; a stage may add up to its own limit of it
DIST_EXTRA=   # directories only the dist stage puts first on PYTHONPATH (setup_gpu: the nccl4py wheel)
run_stage() {  # run_stage NAME COMMAND...: under timeout, log appended, result line, report refreshed
  local name=$1; shift
  local base bonus t
  base=$(awk -v a="${TIMEOUT[$name]}" -v s="$SCALE" 'BEGIN { printf "%d", a * s }')
  bonus=$(( SLACK < base ? SLACK : base ))
  (( bonus < 0 )) && bonus=0
  t=$(( base + bonus ))
  if (( TOTAL > 0 )); then   # the run's deadline: leave 15 s for the last report
    local left=$(( TOTAL - ($(date +%s) - T_START) - 15 ))
    if (( left < 10 )); then
      say "stage $name: skipped, ${left}s left of NBCAFFE_BENCH_TOTAL_S=$TOTAL"
      printf '%s\t%s\t%s\t%s\n' "$name" "-1" "0" "0" >> "$BENCH_WORK/stages.tsv"
      return
    fi
    (( t > left )) && t=$left
  fi
  local t0 rc dt
  t0=$(date +%s%N)
  echo "===== stage $name (timeout ${t}s) $(date -u +%T)" >> "$LOG"
  BENCH_BUDGET_S=$(( t > 20 ? t - 8 : t - 2 )) timeout -k 5 "$t" "$@" >> "$LOG" 2>&1
  rc=$?
  dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$t" >> "$BENCH_WORK/stages.tsv"
  SLACK=$(( SLACK + base - ${dt%.*} - 1 ))   # unused time flows on; the total stays within the sum of the limits
  local what=ok
  [[ $rc == 124 || $rc == 137 ]] && what="TIMEOUT after ${t}s (partial results kept)"
  [[ $rc != 0 && $rc != 124 && $rc != 137 ]] && what="rc=$rc (see bench.log)"
  say "stage $name: $what, ${dt}s"
  $PY -m bench.report --work "$BENCH_WORK" --out "$OUT" >> "$LOG" 2>&1 || say "report failed (see bench.log)"
}

if [[ $DRY == 0 ]]; then
  say "setup: installing wheels from .whl/"
  setup_gpu
else
  say "dry run: simulator + torch CPU ($PY)"
  $PY -c "import torch" 2>/dev/null || say "dry run: torch missing in $PY (pip install torch==2.13.0)"
fi

export NBCAFFE_BENCH_STAGES=$STAGES
run_stage preflight $PY -m bench.preflight
IFS=',' read -r -a STAGE_LIST <<< "$STAGES"
for s in "${STAGE_LIST[@]}"; do
  case $s in
    preflight) ;;
    env)    run_stage env $PY -m bench.env_report ;;
    tests)  run_stage tests env PY="$PY" OUT="$OUT" bash bench/run_kernel_tests.sh ;;
    gemm)   run_stage gemm $PY -m bench.bench_gemm ;;
    conv)   run_stage conv $PY -m bench.bench_conv ;;
    memory) run_stage memory $PY -m bench.bench_memory ;;
    train)  run_stage train $PY -m bench.bench_train ;;
    time)   run_stage time $PY -m bench.bench_time ;;
    dist)   run_stage dist env PYTHONPATH="${DIST_EXTRA:+$DIST_EXTRA:}${PYTHONPATH:-}" $PY -m pytest -v -rs -p no:cacheprovider \
              tests/runner/test_dist_gpu.py ;;
    tf32)   run_stage tf32 $PY -m bench.bench_tf32 ;;
    *)      say "unknown stage '$s' (known: env,tests,gemm,conv,memory,train,time,dist,tf32)" ;;
  esac
done

say "all stages done in $(( $(date +%s) - T_START ))s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
$PY -m bench.report --work "$BENCH_WORK" --out "$OUT" --summary 2>>"$LOG"
