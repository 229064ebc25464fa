"""Errors of the communication layer. Each message says what failed, on which rank, and what to do."""

from __future__ import annotations


class CommError(RuntimeError):
    """A communicator cannot do what was asked (set-up failure, broken state)."""

    exit_code = 1


class P2PUnavailable(CommError):
    """Peer access between two GPUs is missing: the push kernels refuse instead of running slowly or wrongly."""


class CommTimeout(CommError):
    """A kernel waited longer than the communicator's timeout for a peer's data: the peer stalled or is gone."""


class CudaError(CommError):
    """A CUDA driver, runtime or NVRTC call failed."""
