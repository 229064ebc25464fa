#!/usr/bin/env bash
# One device call for issue 6's correctness target and transformers baseline (nvidia-h200, <= 300 s):
#   1. decode --check on the full qwen3-30b-a3b shape (48 layers, 128 experts, bf16 weights, batch 2,
#      64 steps) for two KV datapaths on the same weights and prompts: fp16 K/V (same bytes, 8x finer
#      rounding) and bf16 K/V (the benchmarked datapath), each with its K/V-matched and free-routing
#      comparisons and the greedy margins (docs/model.md "Error budget");
#   2. transformers' settings at batch 1, 1K context in order of expected speed, each in its own
#      process under its own timeout (a torch.compile cannot be interrupted from inside):
#      StaticCache + torch.compile(reduce-overhead), StaticCache + torch.compile(default) only if the
#      first failed, StaticCache eager, DynamicCache eager (round 0's setting) while time is left.
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_check.sh
# Writes $OUT/{log.txt,check.json,hf.jsonl,results.tgz} and pytest.txt when time is left (gpu tests of both).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-290}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
stage check
timeout ${CHECK_S:-165} python3 -m floorline decode --check --model qwen3-30b-a3b --batch 2 --prompt-len 16 --steps ${STEPS:-64} \
  --dtype bf16 --kv-dtype fp16,bf16 --device cuda --json > "$OUT/check.json"
echo "check rc=$?"
python3 - "$OUT/check.json" <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
for r in d.get("runs", [d]):
    print(f"kv {r['kv_dtype']}: shared {r['max_rel_l2']:.3e} (step0 {r['per_step_rel_l2'][0]:.3e}, last {r['per_step_rel_l2'][-1]:.3e})"
          f" kv-matched {r['max_rel_l2_kv_matched']:.3e} (step0 {r['per_step_kv_matched'][0]:.3e}) free {r['max_rel_l2_free_routing']:.3e}"
          f" flips {r['routing_differences']}/{r['routing_decisions']} gap {r['max_tie_gap']:.2e}")
    print(f"   greedy {r['greedy_match']} mismatches {r['mismatch_steps']} min margin {r['min_margin']:.3e}@{r['min_margin_step']}"
          f" max margin error {r['max_margin_error']:.3e} passed {r['passed']} seconds {r['seconds']:.0f}")
PY
stage transformers
attempt() {  # name, timeout
  local T; T=$(min "$2" $(( $(left) - 5 )))
  if [ "$T" -lt 20 ]; then echo "skip $1: ${T}s left"; echo "{\"setting\": \"$1\", \"status\": \"skipped\", \"reason\": \"device time\"}" >> "$OUT/hf.jsonl"; return 1; fi
  local s=$(date +%s)
  timeout "$T" python3 -m floorline.bench.decode_hf --setting "$1" --batch 1 --context 1024 --iters 10 > "$OUT/hf_one.json" 2> "$OUT/hf_err.txt"
  local rc=$?
  if [ $rc -eq 0 ]; then cat "$OUT/hf_one.json" >> "$OUT/hf.jsonl"; echo "$1: $(cat "$OUT/hf_one.json")"
  else
    local why; why=$(tail -c 300 "$OUT/hf_err.txt" | tr '\n"' ' \047')
    [ $rc -eq 124 ] && why="timed out after ${T}s"
    echo "{\"setting\": \"$1\", \"status\": \"failed\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - s )), \"reason\": \"$why\"}" >> "$OUT/hf.jsonl"
    echo "$1 failed rc=$rc: $why"
  fi
  return $rc
}
attempt static-compile-cudagraphs ${COMPILE_S:-130}; rc=$?
# a compile error (not a timeout) may be the CUDA-graph step alone: then try compile without graphs
if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then attempt static-compile ${COMPILE_S:-130}; fi
attempt static-eager 45
attempt dynamic-eager 45
rm -f "$OUT/hf_one.json" "$OUT/hf_err.txt"
stage pytest
T=$(min 90 $(( $(left) - 5 )))
if [ "$T" -ge 30 ]; then
  timeout "$T" python3 -m pytest -q -p no:cacheprovider -m gpu -x -rs tests/model/test_check_kv.py tests/bench/test_decode_hf.py \
    > "$OUT/pytest.txt" 2>&1; echo "pytest rc=$?"; tail -3 "$OUT/pytest.txt"
else echo "skip pytest: ${T}s left"; fi
stage pack
tar czf "$OUT/results.tgz" results/nvidia-h200 2>/dev/null; ls -la "$OUT"
