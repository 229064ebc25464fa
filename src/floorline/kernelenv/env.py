"""The OpenEnv environment: reset picks a task, step judges one candidate through the hardened harness."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from floorline.kernelenv.evidence import run_attempt
from floorline.kernelenv.harness import Harness, HarnessConfig
from floorline.kernelenv.models import KernelAction, KernelObservation, KernelState
from floorline.kernelenv.task import TASKS_DIR, Task, load_tasks


def default_harness() -> Harness:
    from floorline.gpu.probe import cuda_available

    # only kernels written in the candidate's own source count: importing a shipped solution is a ghost
    return Harness(HarnessConfig.for_device("cuda" if cuda_available() else "cpu", own_roots=()))


class KernelEnvironment(Environment[KernelAction, KernelObservation, KernelState]):
    """An episode is one task: up to `max_attempts` candidates, done at the first pass or the last attempt."""

    def __init__(self, harness: Harness | None = None, tasks_dir: Path = TASKS_DIR, out_dir: Path | None = None,
                 max_attempts: int = 8) -> None:
        super().__init__()
        self.harness = harness or default_harness()
        self.tasks: dict[str, Task] = {t.name: t for t in load_tasks(tasks_dir)}
        self.out_dir = out_dir
        self.max_attempts = max_attempts
        self._state = KernelState(episode_id=str(uuid.uuid4()))

    def _task(self, name: str | None) -> Task:
        name = name or self._state.task or next(iter(sorted(self.tasks)))
        if name not in self.tasks:
            raise HTTPException(status_code=422, detail=f"task {name!r}: unknown (one of: {', '.join(sorted(self.tasks))})")
        return self.tasks[name]

    def reset(self, seed: int | None = None, episode_id: str | None = None, task: str | None = None,
              **kwargs: Any) -> KernelObservation:
        name = task if task is not None else random.Random(seed).choice(sorted(self.tasks))
        t = self._task(name)
        self._state = KernelState(episode_id=episode_id or str(uuid.uuid4()), task=t.name)
        return KernelObservation(task=t.name, task_source=t.path.read_text(), status="ready",
                                 feedback=f"write `class ModelNew(nn.Module)` matching {t.name}: {t.doc}",
                                 tasks=sorted(self.tasks), reward=None, done=False)

    def step(self, action: KernelAction, timeout_s: float | None = None, **kwargs: Any) -> KernelObservation:
        t = self._task(action.task)
        if self._state.task != t.name:
            self._state = KernelState(episode_id=self._state.episode_id, task=t.name)
        att, path = run_attempt(self.harness, t, action.source, self.out_dir)
        st = self._state
        st.step_count += 1
        st.attempts += 1
        st.failure_classes = [*st.failure_classes, att.failure_class]
        st.solved = st.solved or att.status == "passed"
        st.best_reward = att.reward if st.best_reward is None else max(st.best_reward, att.reward)
        evidence_id = json.loads(path.read_text())["id"] if path else None
        compiled = att.failure_class != "compile_error"
        if att.status == "passed":
            feedback = (f"passed {len(att.checks)} checks; speedup {att.speedup:.3g}x over {att.baseline['name']}"
                        if att.speedup else f"passed {len(att.checks)} checks")
        else:
            feedback = f"{att.failure_class}: {att.message}"
        return KernelObservation(
            task=t.name, status=att.status, compiled=compiled, correct=att.correct, failure_class=att.failure_class,
            speedup=att.speedup, sol_fraction=att.sol_fraction, feedback=feedback[:4000], evidence_id=evidence_id,
            evidence_path=str(path) if path else None, tasks=sorted(self.tasks), timing=att.timing,
            reward=att.reward, done=st.solved or st.attempts >= self.max_attempts)

    @property
    def state(self) -> KernelState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(name="floorline-kernelenv",
                                   description="Kernel optimisation with a hardened harness and an evidence packet per attempt",
                                   version="0.1.0")
