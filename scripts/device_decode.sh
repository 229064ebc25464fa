#!/usr/bin/env bash
# One device call for issue 6 (nvidia-h200): GPU tests, decode --check on the full 30B-A3B shape,
# bench decode. Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_decode.sh [MODE]
# MODE full (default): all of the above at batch 1/8/64. MODE b1: the batch-1 fused/PDL step only: GPU
# tests of the decoder and its kernels, decode --check at batch 1 (the fused step, full depth, 32
# steps), then bench decode batch 1 at 1K with tuning, the per-kernel profile and the same-run A/B
# (top-k / RoPE as their own kernels, PDL without L2 prefetch, no PDL, the unfused 11-kernel step),
# which the bench writes into the b1-c1024 packet's profile.json. ~250 s.
# SKIP_TESTS=1 skips the test stages (scripts/device_gpu_all.sh runs them first).
# Writes $OUT/{log.txt,pytest.txt,check.json,bench.json,results.tgz}. Each stage has its own time limit
# and the script stays under LIMIT_S, so a hung stage still leaves the others' evidence behind.
set -u
MODE=${1:-full}
case "$MODE" in full|b1) ;; *) echo "device_decode.sh: mode must be full or b1, got $MODE"; exit 2 ;; esac
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ "$MODE" = b1 ]; then
  : "${BATCHES:=1}" "${CONTEXTS:=1k}" "${STEPS:=32}" "${CHECK_BATCH:=1}"
  KTESTS=${KTESTS:-"tests/kernels/test_fused_b1.py tests/model/test_attention_rope.py tests/kernels/test_gemv.py tests/kernels/test_moe_gemv.py tests/kernels/test_router_topk.py tests/kernels/test_rope.py tests/kernels/test_sampling.py tests/kernels/test_rmsnorm.py"}
fi
LIMIT_S=${LIMIT_S:-420}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
stage pytest
if [ "${SKIP_TESTS:-0}" = 1 ]; then echo "tests skipped (SKIP_TESTS=1: the caller ran them)"; else
timeout ${PYTEST_S:-100} python3 -m pytest -v -p no:cacheprovider -m gpu -rfEs tests/model \
  tests/kernels/test_rmsnorm.py tests/kernels/test_rope.py tests/kernels/test_swiglu.py tests/kernels/test_router_topk.py \
  tests/kernels/test_gemv.py tests/kernels/test_moe_gemv.py tests/kernels/test_sampling.py > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?"; tail -5 "$OUT/pytest.txt"
# the kernel tests are not gpu-marked (they run everywhere); run them on the GPU too
KTESTS=${KTESTS:-"tests/kernels/test_rmsnorm.py tests/kernels/test_rope.py tests/kernels/test_swiglu.py tests/kernels/test_router_topk.py tests/kernels/test_gemv.py tests/kernels/test_moe_gemv.py tests/kernels/test_sampling.py"}
timeout ${KTEST_S:-80} python3 -m pytest -v -rfE -p no:cacheprovider $KTESTS >> "$OUT/pytest.txt" 2>&1
echo "kernel tests on GPU rc=$?"; tail -3 "$OUT/pytest.txt"
fi
stage check
if [ "${STEPS:-64}" = 0 ]; then
  echo "check skipped (mode $MODE)"
else
  timeout ${CHECK_S:-110} python3 -m floorline decode --check --model qwen3-30b-a3b --batch ${CHECK_BATCH:-2} --prompt-len 16 --steps ${STEPS:-64} \
    --dtype bf16 --kv-dtype ${CHECK_KV:-fp16} --device cuda --json > "$OUT/check.json"
  echo "check rc=$?"; grep -E '"(max_rel_l2|max_rel_l2_kv_matched|max_rel_l2_free_routing|greedy_match|greedy_match_free_routing|routing_differences|routing_decisions|max_tie_gap|passed|seconds)"' "$OUT/check.json"
fi
stage bench
B=$(( $(left) - 25 ))
timeout $B python3 -m floorline bench decode --model qwen3-30b-a3b --batch ${BATCHES:-1,8,64} --context ${CONTEXTS:-1k,32k,128k} \
  --iters ${ITERS:-30} --time-budget $(( B - 45 )) \
  --baseline-settings ${HF_SETTINGS:-static-compile-cudagraphs-grouped} --json > "$OUT/bench.json"
echo "bench rc=$?"; python3 -c "
import json; d=json.load(open('$OUT/bench.json'))
print('ceiling', d['hbm_read_ceiling_tbps'], 'baseline', d['baseline'])
print('launch', d.get('launch'))
import glob
for f in glob.glob('results/*/bench-decode-*-b1-c1024.profile.json'): print('A/B (same run)', json.load(open(f)).get('same_run_variants_ms_per_token'))
for r in (d.get('profile') or [])[:14]: print('  prof %-60s %8.1f us %5.1f launches' % (r['kernel'][:60], r['us_per_step'], r['launches_per_step']))
for name, t in (d.get('tune') or {}).items():
  if 'candidates' not in t: print('  tune', name, t); continue
  print('  tune', name, [(c['config']['block_n'], c['config']['block_k'], c['config']['num_warps'], c['config']['split_k'], round(c.get('us', -1), 2)) for c in t['candidates']])
for p in d['points']: print(p['batch'], p['context'], p['ms_per_token'], p['tokens_per_s'], p['fraction_of_floor'], p['transformers_ms'], p['ratio_vs_transformers'], p['skipped'])
" 2>&1
stage pack
tar czf "$OUT/results.tgz" results/nvidia-h200 2>/dev/null; ls -la "$OUT"
