#!/usr/bin/env bash
# A short call (~60-120 s): the batch-1 attention launch alone and its variants (scripts/bench_attn_b1.py),
# then, when the image has Nsight Compute, its stall breakdown for the step's launch.
# Usage (device): source scripts/device_env.sh; bash scripts/device_attn_b1.sh   Writes $OUT/{attn.txt,attn.json,ncu.txt}.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
timeout 150 python3 scripts/bench_attn_b1.py --json > "$OUT/attn.json"; echo "bench rc=$?"
python3 -c "
import json
for r in json.load(open('$OUT/attn.json')):
  print('%-28s splits %3d %7.2f us  PDL %7.2f us %s' % (r['variant'], r['splits'], r.get('us', -1), r.get('pdl_us', -1), r.get('error', '')))
" | tee "$OUT/attn.txt"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}"
if [ -n "$NCU" ] && [ "${NCU_S:-120}" != 0 ]; then
  timeout ${NCU_S:-120} "$NCU" --kernel-name regex:_attn_kernel --launch-skip 4 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis \
    python3 scripts/bench_attn_b1.py --once "rope (the step's launch)" > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"; grep -E "Duration|Stall|Warp Cycles|Elapsed|Registers|Achieved|Memory Throughput" "$OUT/ncu.txt" | head -40
fi
