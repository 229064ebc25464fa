"""On the GPU: the adversarial suite is still rejected class by class, stream injection is caught, and an
honest candidate's attempt carries timing by CUDA events, a floor, and a PTX/SASS receipt."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from floorline.kernelenv.task import TASKS_DIR, resolve_task


def _cases() -> dict:
    """The CPU suite's table of candidates and classes, read from its file so the two never drift apart."""
    spec = importlib.util.spec_from_file_location("_kernelenv_adversarial", Path(__file__).parent / "test_adversarial.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {k: v for k, v in mod.CASES.items() if k not in mod.CPU_ONLY}


CASES = _cases()
ADVERSARIAL = Path(__file__).parent / "adversarial"
pytestmark = pytest.mark.gpu
GPU_ADVERSARIAL = Path(__file__).parent / "adversarial_gpu"


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_on_gpu(harness, name):
    task, cls = CASES[name]
    att = harness.evaluate(resolve_task(task), (ADVERSARIAL / f"{name}.py").read_text())
    assert att.failure_class == cls, (att.failure_class, att.message)
    assert att.reward <= 0


def test_side_stream_is_caught(harness):
    att = harness.evaluate(resolve_task("rmsnorm"), (GPU_ADVERSARIAL / "side_stream.py").read_text())
    assert att.failure_class == "unsynchronized_work", (att.failure_class, att.message)


def test_honest_attempt_on_gpu_has_events_floor_and_receipt(timed_harness):
    att = timed_harness.evaluate(resolve_task("gemv_bf16"), (TASKS_DIR.parent / "candidates" / "gemv_bf16.py").read_text(),
                                 keep_tmp=False)
    assert att.status == "passed", (att.failure_class, att.message)
    assert att.timing["method"].startswith("cuda_events") and att.timing["median"] > 0
    assert att.floor and att.floor["value"] > 0 and 0 < att.sol_fraction <= 1.0
    assert att.kernels, "no compiled-kernel receipt"
    k = att.kernels[0]
    assert k["registers"] and k["spills"] is not None and k["ptx_families"]
    assert att.sandbox["network"]
