"""The all-reduce kernels' CUDA C compiles through NVRTC for Hopper, every dtype variant present (no GPU
needed; skipped where NVRTC is not installed)."""

from __future__ import annotations

import pytest

from floorline.kernels import (
    allreduce_fused_rmsnorm,
    allreduce_fused_rmsnorm_cluster,
    allreduce_fused_rmsnorm_light,
    allreduce_fused_rmsnorm_split,
    allreduce_lamport,
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
                                 allreduce_fused_rmsnorm_light, allreduce_fused_rmsnorm_split,
                                 allreduce_fused_rmsnorm_cluster, allreduce_pingpong])
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


# ---- the cluster fused kernel: source-level checks of what its correctness rests on (no GPU, no NVRTC) ----
def _cluster_body() -> str:
    src = allreduce_fused_rmsnorm_cluster.SOURCE
    start = src.index("__device__ __forceinline__ void fused_cluster(")
    return src[start:src.index("#define DEFINE", start)]


def test_cluster_kernel_limits_agree_with_the_launcher() -> None:
    from floorline.comm import protocol

    src = allreduce_fused_rmsnorm_cluster.SOURCE
    assert f"__launch_bounds__({allreduce_fused_rmsnorm_cluster.THREADS_MAX})" in src
    assert allreduce_fused_rmsnorm_cluster.THREADS_MAX == protocol.FUSED_CLUSTER_MAX_THREADS
    assert allreduce_fused_rmsnorm_cluster.CLUSTER_MAX == protocol.FUSED_CLUSTER_MAX
    assert protocol.fused_cluster_shape(protocol.FUSED_CLUSTER_MAX * protocol.FUSED_CLUSTER_MAX_THREADS) == (8, 1024)
    assert "lane < C" in _cluster_body()  # one DSMEM read per lane: needs C <= 32


def test_cluster_kernel_barriers_and_dsmem_reads() -> None:
    """Two cluster barriers per row: publish (arrive.release then wait.acquire, before any DSMEM read) and
    after-read (arrive right after the reads, wait only before the next row's publish or at the very end, so
    no block exits while a sibling still reads its shared memory). Partials summed in block order 0..C-1."""
    src = allreduce_fused_rmsnorm_cluster.SOURCE
    assert "barrier.cluster.arrive.release.aligned" in src and "barrier.cluster.wait.acquire.aligned" in src
    assert "mapa.shared::cluster.u32" in src and "ld.shared::cluster.f32" in src
    body = _cluster_body()
    assert body.count("cluster_arrive();") == 2 and body.count("cluster_wait();") == 3
    publish = body.index("cluster_arrive();\n    cluster_wait();")
    read = body.index("ld_dsmem_f32(")
    after = body.index("cluster_arrive();", publish + 1)
    assert body.index("if (k > 0) cluster_wait();") < publish < read < after
    assert body.index("bpart[k & 1] = t") < publish  # the partial is written before it is published
    assert "for (u32 j = 0; j < C; ++j) t += __shfl_sync(0xFFFFFFFFu, v, (int)j);" in body
    tail = body[body.index("finish_epoch(ctrl, epoch, (u32)npk);"):]
    assert tail.index("if (k > 0) cluster_wait();") > 0 and tail.count("cluster_") == 1  # the last barrier


def test_cluster_kernel_touches_only_its_own_slice_of_residual() -> None:
    """Why residual_out may be residual itself with no copies: the residual is read and residual_out written
    only at this thread's packet p, and nothing reads another block's slice of them."""
    body = _cluster_body()
    # the parameter and the one load (the helper sum_ranks_plus_residual takes the loaded packet `res`)
    assert body.count("residual") - body.count("plus_residual") == body.count("residual_out") + 2
    assert "res = load_packet<DT>(residual, p, npk * N);" in body
    assert "store_packet<DT>(residual_out, p, npk * N, h);" in body
    # the peers' packets are read at this thread's packet p only (the shared helper reads slot s at p)
    assert body.count("sum_ranks_plus_residual<DT>(mine, res, p,") == 1
    plus = allreduce_lamport.PRELUDE.split("Pk sum_ranks_plus_residual(", 1)[1].split("\n}\n", 1)[0]
    assert "sum_ranks<DT>(mine, p, peers," in plus
    ranks = allreduce_lamport.PRELUDE.split("void sum_ranks(", 1)[1].split("\n}\n", 1)[0]
    assert ranks.count("slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + p") == 1
    assert "slot_ptr(peers.p[rank], buf, rank," not in body  # no own-slot copies (the split kernel's)


@pytest.mark.parametrize("epoch", ["ticket", "replicated"])
def test_cluster_kernel_compiles_with_nvcc_for_sm90_without_spills(tmp_path, epoch) -> None:
    """nvcc/ptxas on the NVRTC source with NVRTC's flags (-std=c++17 --use_fast_math), as the ptxas tables in
    docs/notes/allreduce.md were made; runs where nvcc is installed (NVRTC may not be)."""
    import re
    import shutil
    import subprocess
    from pathlib import Path

    from floorline.comm.communicator import REPLICATED_DEFINES

    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if nvcc is None:
        pytest.skip("nvcc not installed here")
    cu = tmp_path / "k.cu"
    cu.write_text((REPLICATED_DEFINES if epoch == "replicated" else "") + allreduce_fused_rmsnorm_cluster.SOURCE)
    p = subprocess.run([nvcc, "-arch=sm_90", "-std=c++17", "--use_fast_math", "-cubin", "-Xptxas", "-v", "-o",
                        str(tmp_path / "k.cubin"), str(cu)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    regs = [int(r) for r in re.findall(r"Used (\d+) registers", p.stderr)]
    spills = [int(a) + int(b) for a, b in re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", p.stderr)]
    assert len(regs) == 3 and max(regs) <= 64  # __launch_bounds__(1024): 64 registers at most
    assert spills == [0, 0, 0]
