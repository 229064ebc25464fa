"""The all-reduce kernels' CUDA C compiles through NVRTC for Hopper, every dtype variant present (no GPU
needed; skipped where NVRTC is not installed)."""

from __future__ import annotations

import pytest

from floorline.kernels import (
    allreduce_fused_rmsnorm,
    allreduce_fused_rmsnorm_light,
    allreduce_fused_rmsnorm_split,
    allreduce_oneshot,
    allreduce_pingpong,
    allreduce_twoshot,
)


def _nvrtc_or_skip():
    try:
        from floorline.comm import cuda_api

        cuda_api.nvrtc_version()
    except Exception as e:  # noqa: BLE001 - no cuda-bindings or no libnvrtc here
        pytest.skip(f"NVRTC not available here: {e}")
    return cuda_api


@pytest.mark.parametrize("epoch", ["ticket", "replicated"])
@pytest.mark.parametrize("mod", [allreduce_oneshot, allreduce_twoshot, allreduce_fused_rmsnorm,
                                 allreduce_fused_rmsnorm_light, allreduce_fused_rmsnorm_split, allreduce_pingpong])
def test_compiles_for_sm90(mod, epoch) -> None:
    cuda_api = _nvrtc_or_skip()
    from floorline.comm.communicator import REPLICATED_DEFINES

    if epoch == "replicated" and mod is allreduce_pingpong:
        pytest.skip("the probe has no epoch")
    source = (REPLICATED_DEFINES if epoch == "replicated" else "") + mod.SOURCE
    cubin = cuda_api.compile_source(source, mod.NAME, "sm_90")
    assert cubin[:4] == b"\x7fELF"
    names = [mod.NAME] if mod is allreduce_pingpong else [f"{mod.NAME}_{s}" for s in ("f32", "f16", "bf16")]
    for n in names:
        assert n.encode() in cubin


def test_compile_error_is_reported_with_the_log() -> None:
    cuda_api = _nvrtc_or_skip()
    from floorline.comm.errors import CudaError

    with pytest.raises(CudaError, match="NVRTC could not compile"):
        cuda_api.compile_source("extern \"C\" __global__ void k() { undefined_thing(); }", "bad", "sm_90")


def test_replicated_scheme_really_changes_the_epoch_code() -> None:
    """The opt-in scheme is a different kernel (no arrival atomic), and the default source is untouched by
    the switch (the macro is absent from it)."""
    cuda_api = _nvrtc_or_skip()
    from floorline.comm.communicator import REPLICATED_DEFINES

    assert "#define FL_EPOCH_REPLICAS" not in allreduce_oneshot.SOURCE
    a = cuda_api.compile_source(allreduce_oneshot.SOURCE, allreduce_oneshot.NAME, "sm_90")
    b = cuda_api.compile_source(REPLICATED_DEFINES + allreduce_oneshot.SOURCE, allreduce_oneshot.NAME, "sm_90")
    assert a != b


def test_replica_constants_agree_between_python_and_cuda() -> None:
    """The CPU model and the communicator use floorline.comm.protocol's numbers; the kernels their macros."""
    from floorline.comm import protocol
    from floorline.comm.communicator import REPLICATED_DEFINES
    from floorline.kernels.allreduce_lamport import PRELUDE

    assert f"#define CTRL_REPLICA {protocol.REPLICA_WORD}" in PRELUDE
    assert f"#define MAX_REPLICAS {protocol.MAX_REPLICAS}" in PRELUDE
    assert f"#define CTRL_BYTES {protocol.REPLICATED_CTRL_BYTES}" in REPLICATED_DEFINES
    assert f"#define CTRL_BYTES {protocol.CTRL_BYTES}" in PRELUDE  # the default, under #ifndef


def test_split_kernel_limits_agree_with_the_launcher() -> None:
    """protocol.fused_split_grid never launches more threads than the kernel's __launch_bounds__, nor more
    packets per thread than its ITEMS."""
    from floorline.comm import protocol

    src = allreduce_fused_rmsnorm_split.SOURCE
    assert f"__launch_bounds__({allreduce_fused_rmsnorm_split.THREADS_MAX})" in src
    assert f"#define ITEMS {allreduce_fused_rmsnorm_split.ITEMS}" in src
    assert allreduce_fused_rmsnorm_split.ITEMS == protocol.FUSED_ITEMS
    top = protocol.FUSED_ITEMS * allreduce_fused_rmsnorm_split.THREADS_MAX
    assert protocol.fused_split_grid(1, top, 132)[1] <= allreduce_fused_rmsnorm_split.THREADS_MAX
    with pytest.raises(ValueError):
        protocol.fused_split_grid(1, top + 1, 132)
