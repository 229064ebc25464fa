#!/usr/bin/env bash
# A short development call (~250 s, no packets into results/): for a day when device starts fail and the
# budget cannot hold device_b1_ab.sh's ~430 s. The fp32 atomics microbench, the persistent expert kernel's
# GPU tests, then the batch-1 step timeline from the committed packet's launch with the variants named
# in VARIANTS (replay time of each in one process: a same-run A/B without re-tuning).
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_b1_dev.sh
# Writes $OUT/{log.txt,atomics.json,pytest.txt,timeline.json}.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv,noheader
stage atomics
timeout 60 python3 scripts/bench_atomics.py --json > "$OUT/atomics.json"; echo "atomics rc=$?"
python3 -c "import json; [print('  %-22s %8.2f us' % (r['shape'], r['us_per_launch'])) for r in json.load(open('$OUT/atomics.json'))]"
stage pytest
timeout ${PYTEST_S:-80} python3 -m pytest -q -p no:cacheprovider --timeout 70 --tb=short -rfE \
  ${KTESTS:-tests/kernels/test_moe_b1_persistent.py} > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)" "$OUT/pytest.txt" | head -20; tail -1 "$OUT/pytest.txt"
stage timeline
timeout ${TIMELINE_S:-130} python3 -m floorline bench decode-timeline \
  --launch-from ${PACKET:-results/$(python3 -c "from floorline.gpu.probe import device_slug; print(device_slug())" | sed "s/^cpu$/nvidia-h200/")/bench-decode-qwen3-30b-a3b-L48-E128-bf16-b1-c1024.json} \
  --out "$OUT/timeline.json" --variants ${VARIANTS:-tuned,attn-one-tile,gemv-preload,down-preload}
echo "timeline rc=$?"
python3 -c "
import json; d=json.load(open('$OUT/timeline.json'))
for n, r in d['variants'].items():
  print('  %-28s' % n, r.get('error') or 'replay %.1f us, %d kernels' % (r['replay_us'], r['launches_per_step']))
  for k in r.get('one_layer', []): print('     %-28s inc %6.2f dur %6.2f' % (k['kernel'][:28], k['increment_us'], k['duration_us']))
" 2>&1
stage done
