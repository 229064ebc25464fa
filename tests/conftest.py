"""Shared fixtures. Without CUDA, Triton kernels run through the interpreter (TRITON_INTERPRET=1),
which must be set before any kernel module is imported, hence here at conftest import time."""

from __future__ import annotations

import os

import pytest

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
    N_GPUS = torch.cuda.device_count() if HAS_CUDA else 0
except ImportError:  # pragma: no cover
    HAS_CUDA, N_GPUS = False, 0

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("FLOORLINE_SM90_RECORD") and os.environ.get("TRITON_INTERPRET") == "1":
    # every interpreted launch of the run, for scripts/check_sm90_launches.py (floorline.gpu.sm90_launches)
    from floorline.gpu.sm90_launches import install_recorder

    install_recorder(os.environ["FLOORLINE_SM90_RECORD"])


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU; run `pytest -m gpu` on the device")
    few_gpu = pytest.mark.skip(reason=f"needs 2+ CUDA GPUs, this machine has {N_GPUS}")
    for item in items:
        if item.get_closest_marker("gpu") and not HAS_CUDA:
            item.add_marker(no_gpu)
        if item.get_closest_marker("multigpu") and N_GPUS < 2:
            item.add_marker(few_gpu)


@pytest.fixture
def device() -> str:
    """Where kernels under test run: the GPU if there is one, else the CPU through the Triton interpreter."""
    return "cuda" if HAS_CUDA else "cpu"


@pytest.fixture
def triton_interpret() -> bool:
    """True when Triton kernels run through the CPU interpreter in this session."""
    return os.environ.get("TRITON_INTERPRET") == "1"
