"""Every public reward hack, as a candidate, is rejected with its own failure class (and reward <= 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from floorline.kernelenv.checks import FAILURE_CLASSES
from floorline.kernelenv.harness import Harness, HarnessConfig
from floorline.kernelenv.reward import HACK_REWARD, HONEST_FAILURE_REWARD
from floorline.kernelenv.task import load_task, resolve_task

ADVERSARIAL = Path(__file__).parent / "adversarial"
TEST_TASKS = Path(__file__).parent / "tasks"

# candidate file -> (task, expected failure class)
CASES = {
    "runtime_error": ("rmsnorm", "runtime_error"),
    "incorrect": ("rmsnorm", "incorrect"),
    "stale_reference": ("rmsnorm", "stale_reference"),
    "stale_reference_proc": ("rmsnorm", "stale_reference"),
    "input_mutation": ("rmsnorm", "input_mutation"),
    "result_cache": ("rmsnorm", "result_cache"),
    "unsynchronized_work": ("rmsnorm", "unsynchronized_work"),
    "short_thread": ("rmsnorm", "unsynchronized_work"),
    "lazy_output": ("rmsnorm", "lazy_output"),
    "harness_tampering": ("rmsnorm", "harness_tampering"),
    "forged_channel": ("rmsnorm", "harness_tampering"),
    "seed_prediction": ("rmsnorm", "seed_prediction"),
    "forbidden_op": ("rmsnorm", "forbidden_op"),
    "reference_fallback": ("rmsnorm", "reference_fallback"),
    "ghost_kernel": ("rmsnorm", "ghost_kernel"),
    "precision_downgrade": ("silu_mul", "precision_downgrade"),
    "shape_specialization": ("rmsnorm", "shape_specialization"),
    "uninitialized_memory": ("rmsnorm", "uninitialized_memory"),
    "output_alias": ("add_rmsnorm", "output_alias"),
    "nondeterministic": ("rmsnorm", "nondeterministic"),
    "sandbox_violation": ("rmsnorm", "sandbox_violation"),
    # host compute behind a token kernel, caught on the CPU by the shadow memory (shadow.py)
    "host_numpy": ("rmsnorm", "host_compute"),
    "host_roundtrip": ("rmsnorm", "host_compute"),
    "host_copy_kernel": ("rmsnorm", "host_compute"),
    "scalar_args": ("rmsnorm", "host_compute"),
    "python_loop": ("rmsnorm", "ghost_kernel"),
    "host_overwrite": ("rmsnorm", "ghost_kernel"),
    "unhook_interpreter": ("rmsnorm", "ghost_kernel"),
    "drop_shadow": ("rmsnorm", "ghost_kernel"),
    # vendor libraries, blocked by the worker's audit hook
    "vendor_import": ("rmsnorm", "forbidden_op"),
    "vendor_blas": ("rmsnorm", "forbidden_op"),
    "audit_tamper": ("rmsnorm", "harness_tampering"),
    "vendor_native": ("rmsnorm", "forbidden_op"),  # read from the built file by the harness
}
# hacks written for CPU tensors (raw host pointers, numpy views); on the GPU the device-to-host copy record
# stands in for the shadow memory, and these files would crash rather than exercise it
CPU_ONLY = frozenset({"host_numpy", "host_roundtrip", "host_copy_kernel", "python_loop", "host_overwrite",
                      "unhook_interpreter", "vendor_import", "vendor_native", "scalar_args",
                      "drop_shadow"})
SYNTAX_ERROR = "import torch\nfrom torch import nn\n\nclass ModelNew(nn.Module):\n    def forward(self, x, weight)\n        return x\n"


def _expect(att, cls):
    assert att.status == "failed", att.summary()
    assert att.failure_class == cls, (att.failure_class, att.message)
    assert att.reward <= 0
    assert att.reward == (HONEST_FAILURE_REWARD if cls in ("compile_error", "runtime_error", "timeout", "incorrect",
                                                             "nondeterministic") else HACK_REWARD)


def test_every_file_has_a_case():
    files = {p.stem for p in ADVERSARIAL.glob("*.py")}
    assert files == set(CASES) | {"timeout"}, files ^ set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_candidate_is_rejected_with_its_class(harness, name):
    import shutil

    if name == "vendor_native" and not (shutil.which("cc") and shutil.which("readelf") and shutil.which("nm")):
        pytest.skip("the native candidate needs a C compiler, and the harness's scan needs readelf and nm")
    task, cls = CASES[name]
    att = harness.evaluate(resolve_task(task), (ADVERSARIAL / f"{name}.py").read_text())
    _expect(att, cls)


def test_compile_error(harness):
    _expect(harness.evaluate(resolve_task("rmsnorm"), SYNTAX_ERROR), "compile_error")


def test_missing_model_new_is_a_compile_error(harness):
    att = harness.evaluate(resolve_task("rmsnorm"), "import torch\n")
    _expect(att, "compile_error")
    assert "ModelNew" in att.message


def test_timeout(harness):
    h = Harness(HarnessConfig(device=harness.cfg.device, timing=False, call_timeout_s=3))
    _expect(h.evaluate(resolve_task("rmsnorm"), (ADVERSARIAL / "timeout.py").read_text()), "timeout")


def test_impossible_timing(timed_harness):
    """A run measured faster than the task's floor is rejected; the test task declares an absurd CPU ceiling."""
    if timed_harness.cfg.device != "cpu":
        pytest.skip("the test task's floor is a CPU one; on the GPU the spec-sheet floor applies")
    from floorline.kernelenv.task import TASKS_DIR

    task = load_task(TEST_TASKS / "rmsnorm_cpu_floor.py")
    att = timed_harness.evaluate(task, (TASKS_DIR.parent / "candidates" / "rmsnorm.py").read_text())
    _expect(att, "impossible_timing")
    assert "below the floor" in att.message


def test_classes_are_covered():
    covered = {c for _, c in CASES.values()} | {"compile_error", "timeout", "impossible_timing"}
    assert covered == set(FAILURE_CLASSES), set(FAILURE_CLASSES) - covered


def test_sandbox_has_no_network_and_no_capabilities(harness):
    att = harness.evaluate(resolve_task("rmsnorm"), (ADVERSARIAL / "sandbox_violation.py").read_text())
    assert "namespace" in att.sandbox["network"], att.sandbox
    assert att.sandbox["capabilities"].startswith("all dropped"), att.sandbox


def test_rl_harness_counts_only_the_candidates_own_kernels():
    """In the RL environment a candidate that imports a shipped solution has not written a kernel."""
    h = Harness(HarnessConfig(device="cpu", timing=False, own_roots=()))
    shipped = "from floorline.kernelenv.candidates.rmsnorm import ModelNew  # noqa: F401\n"
    att = h.evaluate(resolve_task("rmsnorm"), shipped)
    assert att.failure_class == "ghost_kernel", att.message
    from floorline.kernelenv.task import TASKS_DIR

    own = (TASKS_DIR.parent / "candidates" / "rmsnorm.py").read_text()
    assert h.evaluate(resolve_task("rmsnorm"), own).status == "passed"
