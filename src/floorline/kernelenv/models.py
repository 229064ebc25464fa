"""Typed OpenEnv models: the Action is a candidate's source, the Observation what the harness found."""

from __future__ import annotations

from typing import Any

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field


class KernelAction(Action):
    """One attempt: Python source defining `class ModelNew(nn.Module)` for the task."""

    source: str = Field(min_length=1, max_length=256_000, description="candidate source (Triton, CUDA via load_inline, or PyTorch)")
    task: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$",
                             description="task name; defaults to the task chosen at reset")


class KernelObservation(Observation):
    task: str = Field(description="task name")
    task_source: str = Field(default="", description="the task file (KernelBench format) the candidate must match")
    status: str = Field(description="ready | passed | failed")
    compiled: bool = Field(default=False, description="the candidate imported and built")
    correct: bool = Field(default=False, description="every correctness and anti-hack check passed")
    failure_class: str | None = Field(default=None, description="named failure class, see docs/kernelenv.md")
    speedup: float | None = Field(default=None, description="baseline median / candidate median")
    sol_fraction: float | None = Field(default=None, description="floor time / measured time (GPU only)")
    feedback: str = Field(default="", description="what the harness found, in one paragraph")
    evidence_id: str | None = Field(default=None, description="id of the kernelenv.attempt evidence packet")
    evidence_path: str | None = Field(default=None, description="where the packet was written")
    tasks: list[str] = Field(default_factory=list, description="tasks this environment serves")
    timing: dict[str, Any] | None = Field(default=None, description="median/spread of the candidate, in us")


class KernelState(State):
    task: str | None = Field(default=None, description="current task")
    attempts: int = Field(default=0, ge=0)
    solved: bool = Field(default=False)
    best_reward: float | None = Field(default=None)
    failure_classes: list[str | None] = Field(default_factory=list, description="one per attempt, None for a pass")
