#!/usr/bin/env bash
# One device call for issue 6's tensor-parallel target (nvidia-h200-x2): TP=2 vs float64 on the GPUs,
# a reduced-depth TP=2 bench (evidence even if full size fails), then the full qwen3-235b-a22b shape at
# FP8 (94 layers, 128 experts, ~119.5 GB of weights per GPU), batch 1, 1K context.
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_tp.sh [full|check]
#   full (default): tests, reduced bench, full bench, then (if time is left) decode --check --tp 2 and the
#   reduced bench in process mode; check: only the tests.
# Writes $OUT/{log.txt,pytest.txt,reduced.json,full.json,check.json,process.json,results.tgz}. Every stage has its own time limit
# and the whole stays under LIMIT_S.
set -u
MODE=${1:-full}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-420}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
summary() {  # one line per point of a bench --json file
  python3 -c "
import json, sys
try: d = json.load(open('$1'))
except Exception as e: sys.exit(f'no json: {e}')
print('ceiling', d['hbm_read_ceiling_tbps'], 'layers', d['layers'], 'tp', d['tp'])
print('launch', d.get('launch'))
for name, t in (d.get('tune') or {}).items(): print('  tune', name, [(c['config']['block_n'], c['config']['block_k'], c['config']['num_warps'], c['config']['split_k'], round(c.get('us', -1), 2)) for c in t['candidates']])
for p in d['points']: print(p['batch'], p['context'], p['ms_per_token'], p['tokens_per_s'], p['fraction_of_floor'], p['ideal_split_fraction'], p['wall_ms_per_token'], p['skipped'])
for p in d['points']:
  for r in (p.get('profile') or [])[:14]: print('  prof %-60s %9.1f us %6.1f launches (both GPUs, eager step)' % (r['kernel'][:60], r['us_per_step_all_gpus'], r['launches_per_step_all_gpus']))
" 2>&1; }
stage env
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
nvidia-smi topo -m 2>&1 | head -4
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'gpus', torch.cuda.device_count())"
stage "pytest (TP=2 vs float64 on 2 GPUs, eager + graphs, bf16 + fp8)"
timeout ${PYTEST_S:-120} python3 -m pytest -q -p no:cacheprovider -m gpu -x -rs tests/model/test_tp_gpu.py \
  -k "graphs_match" > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?"; tail -8 "$OUT/pytest.txt"
[ "$MODE" = check ] && { tar czf "$OUT/results.tgz" results/nvidia-h200-x2 2>/dev/null; exit 0; }
stage "bench reduced depth (8 of 94 layers)"
timeout ${REDUCED_S:-100} python3 -m floorline bench decode --model qwen3-235b-a22b --layers 8 --tp 2 --weight-dtype fp8 \
  --batch 1 --context 1k --iters 20 --no-tune --json > "$OUT/reduced.json"
echo "reduced rc=$?"; summary "$OUT/reduced.json"
stage "bench full depth (94 layers, 128 experts)"
B=$(( $(left) - 20 - ${CHECK_RESERVE_S:-0} ))
echo "limit ${B}s"
timeout $B python3 -m floorline bench decode --model qwen3-235b-a22b --tp 2 --weight-dtype fp8 --batch 1 --context 1k \
  --iters ${ITERS:-30} ${TUNE:---tune} --json > "$OUT/full.json"
echo "full rc=$?"; summary "$OUT/full.json"
stage "decode --check --tp 2 at reduced depth (4 layers, 16 experts, fp8) vs float64, if time is left"
C=$(( $(left) - 15 )); [ $C -gt 120 ] && C=120
if [ $C -ge 45 ]; then
  timeout $C python3 -m floorline decode --check --model qwen3-235b-a22b --layers 4 --experts 16 --tp 2 --dtype fp8 \
    --batch 2 --prompt-len 4 --steps 16 --device cuda --json > "$OUT/check.json"
  echo "check rc=$? (1 = ran, tolerance not met)"; grep -E '"(max_rel_l2|max_rel_l2_kv_matched|greedy_match|ranks_identical|graph_steps|passed|seconds)"' "$OUT/check.json"
else
  echo "skipped: ${C}s left"
fi
stage "bench reduced depth in process mode (one process per GPU), if time is left"
P=$(( $(left) - 10 )); [ $P -gt 100 ] && P=100
if [ $P -ge 50 ]; then
  timeout $P python3 -m floorline bench decode --model qwen3-235b-a22b --layers 8 --tp 2 --tp-mode process \
    --weight-dtype fp8 --batch 1 --context 1k --iters 20 --no-tune --json > "$OUT/process.json"
  echo "process rc=$?"; summary "$OUT/process.json"
else
  echo "skipped: ${P}s left"
fi
stage pack
tar czf "$OUT/results.tgz" results/nvidia-h200-x2 2>/dev/null; ls -la "$OUT"
