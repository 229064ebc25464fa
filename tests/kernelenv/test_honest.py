"""Honest candidates pass every check on their tasks; the timed path reports CPU timing as CPU timing."""

from __future__ import annotations

import pytest

from floorline.kernelenv.task import TASKS_DIR, load_tasks

CANDIDATES = TASKS_DIR.parent / "candidates"
TASK_NAMES = [t.name for t in load_tasks()]


def test_suite_covers_floorlines_ops():
    assert set(TASK_NAMES) == {"rmsnorm", "add_rmsnorm", "rope", "silu_mul", "router_topk", "kv_quant_fp8",
                               "kv_quant_int4", "paged_decode_attention", "gemv_bf16", "gemv_fp8", "moe_gemv"}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_honest_candidate_passes(harness, name):
    from floorline.kernelenv.task import resolve_task

    task = resolve_task(name)
    att = harness.evaluate(task, (CANDIDATES / f"{name}.py").read_text())
    assert att.status == "passed", (att.failure_class, att.message)
    assert att.correct and att.failure_class is None
    phases = [c["phase"] for c in att.checks]
    assert phases.count("trial") == 2 and "heldout" in phases and "determinism" in phases and "poison" in phases
    assert all(c["own_launches"] >= 1 for c in att.checks)


FLOORLINE = sorted(p.stem for p in (CANDIDATES / "floorline").glob("*.py") if p.stem != "__init__")


def test_floorline_wrappers_cover_its_kernels():
    assert {"rmsnorm", "add_rmsnorm", "silu_mul", "router_topk", "gemv_bf16", "gemv_fp8", "moe_gemv",
            "paged_decode_attention"} <= set(FLOORLINE)


@pytest.mark.parametrize("name", FLOORLINE)
def test_floorline_kernel_passes_its_task(harness, name):
    from floorline.kernelenv.task import resolve_task

    att = harness.evaluate(resolve_task(name), (CANDIDATES / "floorline" / f"{name}.py").read_text())
    assert att.status == "passed", (att.failure_class, att.message)
    assert any(c["own_launches"] for c in att.checks)


def test_timed_attempt_has_baseline_and_bounded_reward(timed_harness):
    from floorline.kernelenv.task import resolve_task

    att = timed_harness.evaluate(resolve_task("rmsnorm"), (CANDIDATES / "rmsnorm.py").read_text())
    assert att.status == "passed", att.message
    expected = "wall_clock_cpu" if timed_harness.cfg.device == "cpu" else "cuda_events+device_sync+l2_flush"
    assert att.timing["method"] == expected
    assert att.timing["min"] <= att.timing["median"] <= att.timing["max"]
    assert att.baseline["status"] == "passed" and att.baseline["name"] == "Baseline"
    assert att.speedup == pytest.approx(att.baseline["median"] / att.timing["median"])
    assert 0.1 <= att.reward <= 1.0
    assert [c["phase"] for c in att.checks].count("timed") == timed_harness.cfg.timing_sets


def test_native_extension_built_in_the_sandbox_counts_as_own(harness):
    """A C extension compiled by the candidate inside its temp dir (as load_inline does) is its own kernel."""
    import shutil
    from pathlib import Path

    from floorline.kernelenv.task import resolve_task

    if harness.cfg.device != "cpu" or shutil.which("cc") is None:
        pytest.skip("the native candidate is a CPU C extension and needs a C compiler")
    src = (Path(__file__).parent / "native" / "silu_mul_ext.py").read_text()
    att = harness.evaluate(resolve_task("silu_mul"), src)
    assert att.status == "passed", (att.failure_class, att.message)
    assert all(c["own_launches"] >= 1 for c in att.checks)
