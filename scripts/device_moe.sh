#!/usr/bin/env bash
# One device call for the batch > 1 expert path (issue 6, nvidia-h200): GPU tests of moe_grouped,
# bench decode at batch 8 and 64, 1K, the graph decode step through it vs float64, and the old vs new
# expert microbenchmark with a tile sweep (last: it takes whatever time is left).
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_moe.sh
# Writes $OUT/{log.txt,pytest.txt,moe.json,bench.json,results.tgz}. Each stage has its own time limit
# and the script stays under LIMIT_S, so a hung stage still leaves the others' evidence behind.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-280}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
stage pytest
timeout ${KTEST_S:-60} python3 -m pytest -q -p no:cacheprovider -x tests/kernels/test_moe_grouped.py \
  tests/kernels/test_moe_gemv.py > "$OUT/pytest.txt" 2>&1
echo "kernel tests on GPU rc=$?"; tail -3 "$OUT/pytest.txt"
stage bench
timeout ${BENCH_S:-130} python3 -m floorline bench decode --model qwen3-30b-a3b --batch ${BATCHES:-8,64} --context 1k \
  --iters ${ITERS:-30} --time-budget $(( ${BENCH_S:-130} - 40 )) --json > "$OUT/bench.json"
echo "bench rc=$?"; python3 -c "
import json; d=json.load(open('$OUT/bench.json'))
print('ceiling', d['hbm_read_ceiling_tbps'], 'baseline', d['baseline'])
print('launch', d.get('launch'))
for p in d['points']: print(p['batch'], p['context'], p['ms_per_token'], p['tokens_per_s'], p['fraction_of_floor'], p['transformers_ms'], p['ratio_vs_transformers'], p['skipped'])
" 2>&1
stage decode-tests
# the graph decode step through moe_grouped against float64: batch 5, 3 (fp8), 64 on small-moe
timeout ${MTEST_S:-45} python3 -m pytest -q -p no:cacheprovider -m gpu -x -rs tests/model/test_fast_gpu.py \
  -k "graph_decode" >> "$OUT/pytest.txt" 2>&1
echo "decode-step GPU tests rc=$?"; tail -3 "$OUT/pytest.txt"
stage moe-bench
M=$(( $(left) - 10 )); [ $M -lt 20 ] && M=20
timeout $M python3 scripts/bench_moe_grouped.py --batches 64,8 --layers 4 --json "$OUT/moe.json"
echo "moe bench rc=$?"
stage pack
tar czf "$OUT/results.tgz" results/nvidia-h200 2>/dev/null; ls -la "$OUT"
