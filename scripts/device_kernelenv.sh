#!/usr/bin/env bash
# kernelenv on the GPU, in one call: the GPU tests (adversarial suite, stream injection, receipts), then the
# shipped suite twice (the honest Triton candidates, and the candidates that wrap floorline's own kernels),
# then a few hacks as failure packets. Packets go to results/<device-slug>/kernelenv/ and are tarred into
# $OUT after every phase, so a run cut short still brings back what it finished.
# Usage on the device: source scripts/device_env.sh; OUT=... bash scripts/device_kernelenv.sh
set -uo pipefail
source scripts/device_env.sh
OUT=${OUT:-/tmp/kernelenv-out}
mkdir -p "$OUT"
slug=$(python3 -c "from floorline.gpu.probe import device_slug; print(device_slug())")
dest=results/$slug/kernelenv
rm -rf "$dest"
pack() { tar czf "$OUT/kernelenv_results.tgz" "$dest" 2>/dev/null || true; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader > "$OUT/gpu.txt" 2>&1

t0=$SECONDS
python3 -m pytest -q -m gpu tests/kernelenv -p no:cacheprovider > "$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu: rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/phases.txt"

t0=$SECONDS
python3 -m floorline kernelenv suite --out "$dest/triton" --json > "$OUT/suite_triton.json" 2> "$OUT/suite_triton.err"
echo "suite (triton candidates): rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/phases.txt"
pack

t0=$SECONDS
python3 -m floorline kernelenv suite --candidates src/floorline/kernelenv/candidates/floorline --out "$dest/floorline" \
  --json > "$OUT/suite_floorline.json" 2> "$OUT/suite_floorline.err"
echo "suite (floorline kernels): rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/phases.txt"
pack

t0=$SECONDS
for hack in tests/kernelenv/adversarial/result_cache.py tests/kernelenv/adversarial/harness_tampering.py \
            tests/kernelenv/adversarial_gpu/side_stream.py; do
  python3 -m floorline kernelenv eval rmsnorm "$hack" --json --out "$dest/adversarial" >> "$OUT/adversarial.jsonl" 2>> "$OUT/adversarial.err"
done
echo "hacks: in $((SECONDS - t0)) s" | tee -a "$OUT/phases.txt"
pack
