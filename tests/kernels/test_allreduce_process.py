"""Push all-reduce in process mode (one process per GPU, CUDA IPC handles exchanged through
torch.distributed): float64 reference across sizes, dtypes and algorithms (NCCL hand-off included),
the fused kernel, and 10^5 graph-replayed calls with inputs changing on the GPU."""

from __future__ import annotations

import json
import os
import socket

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.multigpu]

SIZES = [1, 7, 1023, 4097, 65537, (1 << 20) + 3, 16 << 20]


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from floorline.bench.allreduce import error_ratio, rank_input, reference_sum
    from floorline.comm import CommConfig, init_process

    torch.cuda.set_device(rank)
    dist.init_process_group("cpu:gloo,cuda:nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            device_id=torch.device("cuda", rank))
    gloo = dist.new_group(backend="gloo")
    comm = init_process(group=gloo, config=CommConfig(max_bytes=64 << 20, timeout_s=20.0),
                        nccl_group=dist.group.WORLD)
    report: dict = {"errors": {}, "env": {k: os.environ.get(k) for k in
                                           ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")}}
    dev = f"cuda:{rank}"
    for dtype in ("bfloat16", "float16", "float32"):
        td = getattr(torch, dtype)
        for n in SIZES:
            for alg in ("oneshot", "twoshot", "nccl", "auto"):
                if alg == "oneshot" and not comm.layout.fits("oneshot", n, td.itemsize):
                    continue
                seed = n + len(dtype)
                x = rank_input(n, rank, seed, td, dev)
                out = torch.full_like(x, float("nan"))
                comm.all_reduce(x, out=out, algorithm=alg)
                comm.synchronize()
                report["errors"][f"{dtype}/{n}/{alg}"] = error_ratio(out, reference_sum(n, 2, seed, td, dev), dtype)
    # fused: hidden 4096, one token, bf16
    h = 4096
    x = rank_input(h, rank, 11, torch.bfloat16, dev).view(1, h)
    res = rank_input(h, 50, 11, torch.bfloat16, dev).view(1, h)
    w = (rank_input(h, 60, 11, torch.float32, dev).abs() + 0.5).to(torch.bfloat16)
    out, rout = comm.all_reduce_residual_rmsnorm(x, res, w, 1e-6)
    comm.synchronize()
    hs = reference_sum(h, 2, 11, torch.bfloat16, dev) + res.double().view(-1)
    hr = hs.to(torch.bfloat16).double()
    ref = hr * torch.rsqrt((hr * hr).mean() + 1e-6) * w.double()
    report["fused_residual"] = error_ratio(rout.view(-1), hs, "bfloat16")
    report["fused_out"] = error_ratio(out.view(-1), ref, "bfloat16")
    # 10^5 calls: a graph of 100 calls replayed 1000 times, inputs from a counter on the GPU
    g = torch.Generator(device=dev).manual_seed(9)
    n = 6151
    base = torch.randint(0, 64, (2, n), generator=g, device=dev)
    counter = torch.zeros((), dtype=torch.int64, device=dev)
    bad = torch.zeros((), dtype=torch.int64, device=dev)
    xin = torch.empty(n, dtype=torch.bfloat16, device=dev)
    yout = torch.empty_like(xin)

    def step(alg: str) -> None:
        counter.add_(1)
        xin.copy_((torch.remainder(base[rank] + counter, 64) - 32).to(torch.bfloat16))
        comm.all_reduce(xin, out=yout, algorithm=alg)
        want = (torch.remainder(base[0] + counter, 64) - 32) + (torch.remainder(base[1] + counter, 64) - 32)
        bad.add_((yout.float() != want.float()).sum())

    for i in range(4):
        step("oneshot" if i % 2 == 0 else "twoshot")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(100):
            step("oneshot" if i % 2 == 0 else "twoshot")
    dist.barrier(group=gloo)
    for _ in range(1000):
        graph.replay()
    comm.synchronize(timeout_s=600)
    report["iterations"] = int(counter) - 4
    report["bad"] = int(bad)
    comm.close()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    dist.barrier(group=gloo)
    dist.destroy_process_group()


def test_process_mode_end_to_end(tmp_path) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        rep = json.loads((tmp_path / f"rank{rank}.json").read_text())
        bad = {k: v for k, v in rep["errors"].items() if not v <= 1.0}
        assert not bad, f"rank {rank}: {bad}"
        assert rep["fused_residual"] <= 1.0 and rep["fused_out"] <= 2.0
        assert rep["iterations"] == 100_000 and rep["bad"] == 0
        assert rep["env"] == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                              "NVSHMEM_DISABLE_NVLS": "1"}
