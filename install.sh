#!/usr/bin/env bash
# Installs floorline with every extra into the python3 on PATH; nothing else is needed.
# On a CPU-only machine torch is pinned to the 2.13.0 CPU wheel; a GPU box keeps the torch it has.
# Offline (the GPU machines here reach no index), the core package is installed from wheels in .whl/
# and the extras that need an index are left out.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
args=(-q --disable-pip-version-check --root-user-action=ignore)
[ -d .whl ] && args+=(--find-links .whl)
if "$PY" - <<'PY' 2>/dev/null
import socket; socket.create_connection(("pypi.org", 443), timeout=3).close()
PY
then
  target=".[all]"
else
  echo "install.sh: no package index reachable; installing the core package from .whl/ and what is here" >&2
  args+=(--no-index --no-build-isolation)
  "$PY" -c "import setuptools, wheel" 2>/dev/null || "$PY" -m pip install "${args[@]}" setuptools wheel
  for p in pytest hypothesis; do
    "$PY" -c "import $p" 2>/dev/null || "$PY" -m pip install "${args[@]}" "$p" || true
  done
  target="."
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install "${args[@]}" torch==2.13.0
fi
"$PY" -m pip install "${args[@]}" -e "$target"
