"""Peer-access checks: the push kernels need every GPU to map every other GPU's memory over the fabric."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from floorline.comm.errors import P2PUnavailable


def require_peer_access(devices: Sequence[int], can_access: Callable[[int, int], bool]) -> None:
    """Raise P2PUnavailable naming the first pair without peer access (both directions are needed)."""
    for a in devices:
        for b in devices:
            if a != b and not can_access(a, b):
                raise P2PUnavailable(
                    f"GPU {a} cannot access GPU {b}'s memory (cuDeviceCanAccessPeer = 0): the push all-reduce "
                    "writes straight into peers' memory and needs peer access (NVLink or PCIe P2P) between every "
                    "pair; refusing. Use NCCL (algorithm='nccl') on this machine."
                )
