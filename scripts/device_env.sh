# Provenance: the device's copy of .git can be stale, so pass what was shipped, computed here before
# the call: FLOORLINE_GIT_COMMIT=$(git rev-parse HEAD) and FLOORLINE_GIT_DIRTY=0 only when
# `git status --porcelain --untracked-files=no` is empty (else 1). Unset, packets fall back to git.
# Source on the device machine (offline, image python3 with torch/triton): installs the carried wheels
# from .whl/ into /tmp/site, puts src/ on the path, and keeps NVLink multicast off.
# The install is redone whenever the set of carried wheels changes (a warm machine keeps /tmp/site:
# session 4 carried FlashInfer's wheels to a warm machine and a plain marker file skipped them).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  _whl_set=$(ls .whl/*.whl 2>/dev/null | sort | tr '\n' ' ')
  if [ "$(cat /tmp/site/.floorline 2>/dev/null)" != "$_whl_set" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && echo "$_whl_set" > /tmp/site/.floorline
  fi
  unset _whl_set
fi
export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
