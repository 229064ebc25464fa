#!/usr/bin/env bash
# One device call (nvidia-h200, or the H100 such a call may get) for the batch-1 decode step's next round: the changed kernels' tests on
# the GPU, `bench decode` batch 1 at 1K with tuning and the same-run A/B but without the transformers
# baseline (packets go to $OUT/ab, not results/, so the committed packet with its baseline stays), then
# the PDL-on graph timeline (floorline.bench.decode_timeline) of the tuned launch and its variants.
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_b1_ab.sh
# Writes $OUT/{log.txt,pytest.txt,bench.json,timeline.json} and $OUT/ab/ (packets + profile.json);
# with BASELINE=1 the packets go to results/ (and $OUT/results.tgz) with transformers in the same run.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-540}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
# Packets bound for results/ must name the tree that ran (the device's .git copy is stale; see the end of this file)
if [ "${BASELINE:-0}" = 1 ] && ! [[ "${FLOORLINE_GIT_COMMIT:-}" =~ ^[0-9a-f]{40}$ ]]; then
  echo "device_b1_ab.sh: BASELINE=1 needs FLOORLINE_GIT_COMMIT=<40-hex sha of the shipped tree>, got '${FLOORLINE_GIT_COMMIT:-}'"; exit 2
fi
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv,noheader
# a call for nvidia-h200 may land on an H100 (session 8): packets go under the card that ran them
SLUG=$(python3 -c "from floorline.gpu.probe import device_slug; print(device_slug())"); echo "results/$SLUG"
touch "$OUT/.t0"
pack() { find results -type f -newer "$OUT/.t0" | tar czf "$OUT/results.tgz" -T -; }
XD=""; python3 -c "import xdist" 2>/dev/null && XD="-n ${WORKERS:-8} --dist loadgroup"
if [ "${ATOMICS:-1}" = 1 ]; then  # a few seconds: the fp32 atomic cost behind a gate-up + down fusion (notes/decode.md)
  stage atomics; timeout 60 python3 scripts/bench_atomics.py --json > "$OUT/atomics.json"; echo "atomics rc=$?"
  python3 -c "import json; [print('  %-22s %8.2f us' % (r['shape'], r['us_per_launch'])) for r in json.load(open('$OUT/atomics.json'))]"
fi
if [ "${L2SET:-1}" = 1 ]; then  # seconds: does an L2 set-aside keep 21 MB across a 75 MB stream (notes/decode.md, session 11)
  stage l2-setaside; timeout 60 python3 scripts/bench_l2_setaside.py --json > "$OUT/l2_setaside.json"; echo "l2-setaside rc=$?"
  python3 -c "import json; d=json.load(open('$OUT/l2_setaside.json')); [print('  %-55s %8.2f us' % kv) for kv in d['us'].items()]; print('  ', {k: d[k] for k in ('l2_bytes', 'setaside_bytes', 'window_bytes', 'graph_window_error') if k in d})"
fi
stage pytest
if [ "${SKIP_TESTS:-0}" = 1 ]; then echo "tests skipped"; else
timeout ${PYTEST_S:-120} python3 -m pytest -q -p no:cacheprovider --timeout 100 $XD --tb=short -rfE \
  ${KTESTS:-tests/kernels/test_fused_b1.py tests/kernels/test_moe_gemv_dbuf.py tests/model/test_attention_rope.py \
  tests/model/test_attention_fused_combine.py tests/model/test_fast_gpu.py} > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)" "$OUT/pytest.txt" | head -20; tail -1 "$OUT/pytest.txt"
fi
stage bench
B=$(( $(left) - ${TIMELINE_S:-150} ))
# BASELINE=1: the committed run: transformers' fastest setting in the same process, packets into results/
if [ "${BASELINE:-0}" = 1 ]; then BL="--baseline-settings ${HF_SETTINGS:-static-compile-cudagraphs-grouped}"; RD=results/$SLUG; RA=""
else BL="--no-baseline"; RD="$OUT/ab"; RA="--results $RD"; fi
# --time-budget: the bench drops its same-run A/B itself rather than be killed with its packets unwritten
timeout $B python3 -m floorline bench decode --model qwen3-30b-a3b --batch 1 --context 1k --iters ${ITERS:-30} \
  --time-budget $(( B - 10 )) $BL $RA --json > "$OUT/bench.json"
echo "bench rc=$?"; python3 -c "
import json, glob; d=json.load(open('$OUT/bench.json'))
print('ceiling', d['hbm_read_ceiling_tbps']); print('launch', json.dumps(d.get('launch')))
import os; t0 = os.path.getmtime('$OUT/.t0')
for f in [f for f in glob.glob('$RD/*/bench-decode-*-b1-c1024.profile.json') + glob.glob('$RD/bench-decode-*-b1-c1024.profile.json') if os.path.getmtime(f) > t0]:
  for k, v in (json.load(open(f)).get('same_run_variants_ms_per_token') or {}).items(): print('  A/B %-50s %.3f ms' % (k, v))
for r in (d.get('profile') or [])[:8]: print('  prof %-50s %8.1f us %5.1f launches' % (r['kernel'][:50], r['us_per_step'], r['launches_per_step']))
for name, t in (d.get('tune') or {}).items():
  if 'candidates' not in t: continue
  print('  tune', name, [(c['config']['block_n'], c['config']['block_k'], c['config']['num_warps'], c['config']['split_k'], c['config'].get('double_buffer'), round(c.get('us', -1), 2)) for c in t['candidates']])
for p in d['points']: print('point', p['batch'], p['context'], p['ms_per_token'], p['tokens_per_s'], p['fraction_of_floor'], p.get('transformers_ms'), p.get('ratio_vs_transformers'), 'eager', p.get('transformers_eager_ms'), p.get('ratio_vs_transformers_eager'), p['skipped'])
" 2>&1
[ "$RD" = "results/$SLUG" ] && pack
if [ "${CHECK:-0}" = 1 ]; then
  stage check
  timeout $(( $(left) - ${TIMELINE_S:-150} + 40 )) python3 -m floorline decode --check --model qwen3-30b-a3b --batch 1 \
    --prompt-len 16 --steps ${STEPS:-32} --dtype bf16 --kv-dtype fp16 --device cuda --json > "$OUT/check.json"
  echo "check rc=$?"; grep -E '"(max_rel_l2|greedy_match|routing_differences|passed|seconds)"' "$OUT/check.json"
  pack
fi
stage timeline
# the packet this run wrote (results/<card> also holds older ones, e.g. the bf16-K/V packets before session 11)
P=$(ls -t "$RD"/bench-decode-*-b1-c1024.json "$RD"/*/bench-decode-*-b1-c1024.json 2>/dev/null | head -1)
T=$(( $(left) - 5 ))
if [ -n "$P" ] && [ "$T" -gt 40 ]; then
  timeout $T python3 -m floorline bench decode-timeline --launch-from "$P" --out "$OUT/timeline.json" \
    --variants ${VARIANTS:-tuned,next-qkv-l2,next-qkv-evict-last,attn-8-warps,attn-one-tile,gemv-preload,down-preload}
  echo "timeline rc=$?"
else echo "timeline skipped (packet ${P:-none}, ${T}s left)"; fi
stage pack
[ "$RD" = "results/$SLUG" ] && pack
stage done
