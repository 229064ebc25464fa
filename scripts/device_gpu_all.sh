#!/usr/bin/env bash
# One device call (nvidia-h200): the whole `pytest -m gpu` suite in one pytest run (kernelenv included;
# multi-GPU tests skip on one GPU), spread test by test over xdist workers (--dist loadgroup: the decode
# attention build sweeps are one file, and --dist loadfile left them on one worker for 100+ s; the
# 1M-token cases share one worker, as 12 of them at once ran the host out of memory), then the
# decoder's and attention's kernel tests (not gpu-marked: they run everywhere) on the GPU, then, with
# the time left, `scripts/device_decode.sh b1` without its test stages (decode --check + bench decode).
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_gpu_all.sh
# Writes $OUT/{log.txt,pytest_gpu.txt,pytest_kernels.txt} and, from device_decode.sh, check.json/bench.json.
# KTESTS=0 skips the kernel-test stage, DECODE=0 the decode stage.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT_S=${LIMIT_S:-560}
export PYTHONUNBUFFERED=1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)" | tee -a "$OUT/log.txt"; }
XD=""; python3 -c "import xdist" 2>/dev/null && XD="-n ${WORKERS:-12} --dist loadgroup"
stage pytest-gpu
timeout ${PYTEST_S:-300} python3 -m pytest -v -p no:cacheprovider --timeout 200 -m gpu $XD --tb=short -rfEs tests \
  > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu rc=$?" | tee -a "$OUT/log.txt"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_gpu.txt" | head -20 | tee -a "$OUT/log.txt"
tail -1 "$OUT/pytest_gpu.txt" | tee -a "$OUT/log.txt"
stage pytest-kernels
if [ "${KTESTS:-1}" = 1 ]; then
timeout ${KTEST_S:-120} python3 -m pytest -v -p no:cacheprovider --timeout 100 -m 'not gpu' $XD --tb=short -rfE \
  tests/kernels/test_fused_b1.py tests/model/test_attention_rope.py tests/kernels/test_gemv.py \
  tests/kernels/test_moe_gemv.py tests/kernels/test_moe_grouped.py tests/kernels/test_router_topk.py \
  tests/kernels/test_rope.py tests/kernels/test_sampling.py tests/kernels/test_rmsnorm.py \
  tests/kernels/test_swiglu.py tests/kernels/test_decode_attention.py > "$OUT/pytest_kernels.txt" 2>&1
echo "kernel tests on GPU rc=$?" | tee -a "$OUT/log.txt"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_kernels.txt" | head -20 | tee -a "$OUT/log.txt"
tail -1 "$OUT/pytest_kernels.txt" | tee -a "$OUT/log.txt"
else echo "kernel tests skipped (KTESTS=0)" | tee -a "$OUT/log.txt"; fi
[ "${DECODE:-1}" = 1 ] || exit 0
L=$(( $(left) - 5 ))
if [ "$L" -lt 200 ]; then echo "decode b1 skipped: only ${L}s left" | tee -a "$OUT/log.txt"; exit 0; fi
SKIP_TESTS=1 LIMIT_S=$L bash scripts/device_decode.sh b1
