#!/usr/bin/env bash
# One device call on nvidia-h200 when the session has little device time: the whole `pytest -m gpu`
# suite (every GPU-marked test; the multi-GPU ones skip on one GPU), the decoder's Triton kernel tests
# on the GPU, then `bench decode` at batch 1, 1K (the fused step) with transformers' fastest
# setting only, then the kernelenv GPU tests, as long as the time limit allows.
# pytest runs -v (every result named as it lands: a stage cut by its limit still says what failed).
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_gpu_suite.sh
# Writes $OUT/{log.txt,pytest_gpu.txt,pytest_kernels.txt,bench.json,results.tgz,pytest_kernelenv.txt}. Each stage has its own
# limit and the script stays under LIMIT_S, so a stage that hangs leaves the others' evidence behind.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-400}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
pack() { tar czf "$OUT/results.tgz" results/nvidia-h200 2>/dev/null; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
stage pytest-gpu
XD=""; python3 -c "import xdist" 2>/dev/null && XD="-n 8 --dist loadfile"  # Triton compiles are CPU-bound
timeout ${PYTEST_S:-130} python3 -m pytest -v -p no:cacheprovider --timeout 120 -m gpu $XD -rfEs tests --ignore=tests/kernelenv \
  > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu rc=$?"; grep -E "FAILED|ERROR" "$OUT/pytest_gpu.txt" | head -20; tail -2 "$OUT/pytest_gpu.txt"
stage pytest-kernels
# the decoder's kernel tests are not gpu-marked (they run everywhere, through the interpreter on a CPU)
timeout ${KTEST_S:-50} python3 -m pytest -v -p no:cacheprovider --timeout 60 -rfE $XD \
  tests/kernels/test_fused_b1.py tests/model/test_attention_rope.py tests/kernels/test_gemv.py \
  tests/kernels/test_moe_gemv.py tests/kernels/test_moe_grouped.py tests/kernels/test_router_topk.py \
  tests/kernels/test_rope.py tests/kernels/test_sampling.py tests/kernels/test_rmsnorm.py \
  tests/kernels/test_swiglu.py tests/kernels/test_decode_attention.py > "$OUT/pytest_kernels.txt" 2>&1
echo "kernel tests on GPU rc=$?"; grep -E "FAILED|ERROR" "$OUT/pytest_kernels.txt" | head -20; tail -2 "$OUT/pytest_kernels.txt"
stage bench
B=$(( $(left) - 10 ))
if [ "$B" -lt 90 ]; then echo "bench skipped: only ${B}s left"; pack; exit 0; fi
timeout $B python3 -m floorline bench decode --model qwen3-30b-a3b --batch 1 --context 1k --iters 30 \
  --baseline-settings ${HF_SETTINGS:-static-compile-cudagraphs-grouped} --time-budget $(( B - 25 )) --json > "$OUT/bench.json"
echo "bench rc=$?"; python3 -c "
import json; d=json.load(open('$OUT/bench.json'))
print('ceiling', d['hbm_read_ceiling_tbps'], 'baseline', d['baseline'])
for p in d['points']: print(p['batch'], p['context'], p['ms_per_token'], p['tokens_per_s'], p['fraction_of_floor'], p['transformers_ms'], p['ratio_vs_transformers'], p['skipped'])
" 2>&1
stage kernelenv
pack
K=$(( $(left) - 5 ))
if [ "$K" -gt 20 ]; then
  timeout $K python3 -m pytest -v -p no:cacheprovider --timeout 60 -m gpu -rfEs tests/kernelenv > "$OUT/pytest_kernelenv.txt" 2>&1
  echo "pytest -m gpu tests/kernelenv rc=$?"; tail -4 "$OUT/pytest_kernelenv.txt"
fi
ls -la "$OUT"
