"""The all-reduce kernels' CUDA C compiles through NVRTC for Hopper, every dtype variant present (no GPU
needed; skipped where NVRTC is not installed)."""

from __future__ import annotations

import pytest

from floorline.kernels import allreduce_fused_rmsnorm, allreduce_oneshot, allreduce_pingpong, allreduce_twoshot


def _nvrtc_or_skip():
    try:
        from floorline.comm import cuda_api

        cuda_api.nvrtc_version()
    except Exception as e:  # noqa: BLE001 - no cuda-bindings or no libnvrtc here
        pytest.skip(f"NVRTC not available here: {e}")
    return cuda_api


@pytest.mark.parametrize("mod", [allreduce_oneshot, allreduce_twoshot, allreduce_fused_rmsnorm, allreduce_pingpong])
def test_compiles_for_sm90(mod) -> None:
    cuda_api = _nvrtc_or_skip()
    cubin = cuda_api.compile_source(mod.SOURCE, mod.NAME, "sm_90")
    assert cubin[:4] == b"\x7fELF"
    names = [mod.NAME] if mod is allreduce_pingpong else [f"{mod.NAME}_{s}" for s in ("f32", "f16", "bf16")]
    for n in names:
        assert n.encode() in cubin


def test_compile_error_is_reported_with_the_log() -> None:
    cuda_api = _nvrtc_or_skip()
    from floorline.comm.errors import CudaError

    with pytest.raises(CudaError, match="NVRTC could not compile"):
        cuda_api.compile_source("extern \"C\" __global__ void k() { undefined_thing(); }", "bad", "sm_90")
