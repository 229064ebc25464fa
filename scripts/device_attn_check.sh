#!/usr/bin/env bash
# The smallest useful call (~100 s) for the one-tile attention: its microbenchmark next to the loop kernel
# (scripts/device_attn_b1.sh, no ncu), its GPU tests, and `decode --check` with the default launch (which
# takes the one-tile path: a short prompt makes every split one block), packet packed as results.tgz.
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> FLOORLINE_GIT_DIRTY=0 bash scripts/device_attn_check.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
touch "$OUT/.t0"
NCU_S=0 bash scripts/device_attn_b1.sh
timeout 60 python3 -m pytest -q -p no:cacheprovider --tb=short tests/model/test_attention_rope.py > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?"; tail -1 "$OUT/pytest.txt"
timeout 90 python3 -m floorline decode --check --model qwen3-30b-a3b --batch 1 --prompt-len 16 --steps 32 \
  --dtype bf16 --kv-dtype fp16 --device cuda --json > "$OUT/check.json"
echo "check rc=$?"; grep -E '"(max_rel_l2|greedy_match|passed|seconds)"' "$OUT/check.json"
find results -type f -newer "$OUT/.t0" | tar czf "$OUT/results.tgz" -T -
