#!/usr/bin/env bash
# Installs floorline with every extra into the python3 on PATH; nothing else is needed.
# On a CPU-only machine torch is pinned to the 2.13.0 CPU wheel; a GPU box keeps the torch it has.
# Offline (the GPU machines here), wheels in .whl/ are used and nothing is fetched.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
args=(-q --disable-pip-version-check --root-user-action=ignore)
[ -d .whl ] && args+=(--find-links .whl)
if ! "$PY" - <<'PY' 2>/dev/null
import socket; socket.create_connection(("pypi.org", 443), timeout=3).close()
PY
then
  args+=(--no-index --no-build-isolation)
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install "${args[@]}" torch==2.13.0
fi
"$PY" -m pip install "${args[@]}" -e ".[all]"
