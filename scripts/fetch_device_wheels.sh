#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the Python 3.12 wheels the device image lacks, so that a device call
# can `carry: [".whl"]` and `source scripts/device_env.sh`. A fresh checkout has no .whl/ (session 6
# found it gone). The image has torch, triton, numpy, typer, rich, safetensors, transformers and
# nvidia-ml-py (../.library/device/KINDS.md); it lacks pydantic and pint with their needs.
# FLASHINFER=1 adds FlashInfer 0.5.3 for the attention peer (about 60 MB of the 64 MiB carry limit:
# leave it out of decode-only calls).
# Usage (here, not on the device): bash scripts/fetch_device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${plat[@]}" -d .whl "$@"; }
mkdir -p .whl
# pydantic 2.14 asks for typing-extensions >= 4.16, newer than the image's
get pydantic pydantic-core annotated-types typing-inspection typing-extensions pint flexcache flexparser platformdirs
if [ "${FLASHINFER:-0}" = 1 ]; then get flashinfer-python==0.5.3 apache-tvm-ffi nvidia-cudnn-frontend; fi
du -sh .whl
ls .whl
