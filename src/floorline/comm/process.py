"""Process mode: one process per GPU. torch.distributed is used only to exchange IPC handles (and, if
asked, as the NCCL fallback for messages past the two-shot range); the all-reduce itself is our kernel.
"""

from __future__ import annotations

from typing import Any

from floorline.comm import cuda_api, protocol
from floorline.comm.communicator import CommConfig, Communicator, Registration
from floorline.comm.errors import P2PUnavailable


def init_process(
    group: Any = None, config: CommConfig = CommConfig(), nccl_group: Any = None, device: int | None = None
) -> Communicator:
    """Collective over `group` (default: the world group): every rank registers its region and maps
    everyone else's. `nccl_group`, if given, is the NCCL group the 'auto' choice may hand big messages to."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        raise P2PUnavailable("process mode needs torch.distributed initialised first (init_process_group)")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    protocol.check_world(world)
    device = torch.cuda.current_device() if device is None else device
    torch.empty(1, device=f"cuda:{device}")
    layout = protocol.layout_for(world, config.max_bytes, config.oneshot_max_bytes,
                                protocol.ctrl_bytes_for(config.epoch))
    cuda_api.context(device)
    region = cuda_api.mem_alloc(layout.region_bytes)
    cuda_api.memset8(region, 0xFF, layout.region_bytes)
    cuda_api.memset8(region, 0x00, layout.ctrl_bytes)
    cuda_api.ctx_synchronize(device)
    props = torch.cuda.get_device_properties(device)
    mine = {"rank": rank, "device": device, "uuid": str(getattr(props, "uuid", "")), "handle": cuda_api.ipc_handle(region)}
    infos: list[Any] = [None] * world
    dist.all_gather_object(infos, mine, group=group)
    visible = torch.cuda.device_count()
    for info in infos:
        peer = info["device"]
        if info["rank"] != rank and peer < visible and not cuda_api.can_access_peer(device, peer):
            raise P2PUnavailable(
                f"rank {rank}: GPU {device} cannot access GPU {peer} (cuDeviceCanAccessPeer = 0); the push "
                "all-reduce needs peer access between every pair of GPUs; refusing. Use NCCL instead."
            )
    peers, opened = [], []
    for info in infos:
        if info["rank"] == rank:
            peers.append(region)
            continue
        try:
            ptr = cuda_api.ipc_open(info["handle"])
        except Exception as e:  # noqa: BLE001 - any failure to map a peer is the same refusal
            raise P2PUnavailable(
                f"rank {rank}: cannot map rank {info['rank']}'s buffer (GPU {info['device']}) through CUDA IPC: {e}; "
                "the push all-reduce needs peer access between every pair of GPUs; refusing"
            ) from None
        peers.append(ptr)
        opened.append(ptr)
    host, dev = cuda_api.host_alloc_mapped(64)
    release = [lambda p=p: cuda_api.ipc_close(p) for p in opened]
    release += [lambda: cuda_api.mem_free(region), lambda: cuda_api.host_free(host)]
    reg = Registration(region=region, peers=peers, status_host=host, status_dev=dev, release=release)
    dist.barrier(group=group)
    return Communicator(rank=rank, world=world, device=device, mode="process", layout=layout, reg=reg,
                        config=config, nccl_group=nccl_group)
