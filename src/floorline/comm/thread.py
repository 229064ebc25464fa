"""Thread mode: one process and one host thread drive every GPU through peer access (no IPC).

Each device's region is a plain allocation in that device's primary context; with peer access enabled
both ways, a region's pointer is valid on every GPU (unified addressing), so the peer table is just the
list of the regions. The caller launches `comms[r].all_reduce(x_r)` for every rank r in turn from the
same thread; each call returns at once, so the GPUs run the collective together.

NCCL hand-off: with `nccl=True` (default) and CuPy importable, the ranks share one single-thread NCCL
clique (ncclCommInitAll, floorline.comm.thread_nccl) and the automatic choice hands large messages to it,
as process mode does; without CuPy the choice stays on two-shot and `comm.nccl_note` says why.
"""

from __future__ import annotations

from collections.abc import Sequence

from floorline.comm import cuda_api, protocol
from floorline.comm.communicator import CommConfig, Communicator, Registration
from floorline.comm.peer import require_peer_access
from floorline.errors import InputError


def init_threads(devices: Sequence[int], config: CommConfig = CommConfig(), nccl: bool = True) -> list[Communicator]:
    """One Communicator per device, all driven from the calling thread. nccl: try to set up the
    single-thread NCCL hand-off (falls back to two-shot, with the reason in `nccl_note`, if it cannot)."""
    import torch

    devices = list(devices)
    if len(set(devices)) != len(devices):
        raise InputError(f"devices: must be distinct, got {devices}")
    world = len(devices)
    try:
        protocol.check_world(world)
    except ValueError as e:
        raise InputError(f"devices: {e}") from None
    have = torch.cuda.device_count()
    if any(d < 0 or d >= have for d in devices):
        raise InputError(f"devices: must be in 0..{have - 1} (this machine has {have} GPUs), got {devices}")
    require_peer_access(devices, cuda_api.can_access_peer)
    for d in devices:
        torch.empty(1, device=f"cuda:{d}")  # let torch create the primary context first
    for a in devices:
        for b in devices:
            if a != b:
                cuda_api.enable_peer_access(a, b)
    layout = protocol.layout_for(world, config.max_bytes, config.oneshot_max_bytes,
                                protocol.ctrl_bytes_for(config.epoch))
    regions = []
    for d in devices:
        cuda_api.context(d)
        ptr = cuda_api.mem_alloc(layout.region_bytes)
        cuda_api.memset8(ptr, 0xFF, layout.region_bytes)  # every slot starts empty (all-ones)
        cuda_api.memset8(ptr, 0x00, layout.ctrl_bytes)  # epoch 0, no dirty packets, probe flag 0
        regions.append(ptr)
    for d in devices:
        cuda_api.ctx_synchronize(d)
    tn, note = None, "disabled (init_threads(nccl=False))"
    if nccl:
        from floorline.comm import thread_nccl

        note = thread_nccl.unavailable_reason() or ""
        if not note:
            try:
                tn = thread_nccl.ThreadNccl(devices)
            except Exception as e:  # noqa: BLE001 - the hand-off is optional; two-shot still covers every size
                note = f"ncclCommInitAll failed: {type(e).__name__}: {e}"[:300]
        if note:
            import warnings

            warnings.warn(f"thread mode: no NCCL hand-off, large messages stay on two-shot: {note}", stacklevel=2)
    comms = []
    for rank, d in enumerate(devices):
        cuda_api.context(d)
        host, dev = cuda_api.host_alloc_mapped(64)
        reg = Registration(
            region=regions[rank],
            peers=list(regions),
            status_host=host,
            status_dev=dev,
            release=[lambda p=regions[rank], d=d: (cuda_api.context(d), cuda_api.mem_free(p)),
                     lambda h=host: cuda_api.host_free(h)],
        )
        comms.append(Communicator(rank=rank, world=world, device=d, mode="thread", layout=layout, reg=reg,
                                  config=config, thread_nccl=tn, nccl_note=note))
    return comms
