"""Shared harnesses for the kernelenv tests: one per configuration, so the fork server starts once."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
ADVERSARIAL = HERE / "adversarial"
TEST_TASKS = HERE / "tasks"


@pytest.fixture(scope="session")
def harness():
    """Checks only (no timing): what the adversarial and honest-candidate tests need, at CPU speed."""
    import torch

    from floorline.kernelenv.harness import Harness, HarnessConfig

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return Harness(HarnessConfig.for_device(dev, timing=False, call_timeout_s=60))


@pytest.fixture(scope="session")
def timed_harness():
    import torch

    from floorline.kernelenv.harness import Harness, HarnessConfig

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = HarnessConfig.for_device(dev, call_timeout_s=60)
    if dev == "cpu":
        cfg = HarnessConfig(device="cpu", warmup=1, iters=4, timing_sets=2, call_timeout_s=60)
    return Harness(cfg)
