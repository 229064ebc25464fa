"""The OpenEnv HTTP/WebSocket app, built by openenv's own create_app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floorline.kernelenv.task import TASKS_DIR


def build_app(tasks_dir: Path = TASKS_DIR, out_dir: Path | None = None, harness: Any = None) -> Any:
    from openenv.core.env_server import create_app

    from floorline.kernelenv.env import KernelEnvironment, default_harness
    from floorline.kernelenv.models import KernelAction, KernelObservation, KernelState

    shared = harness or default_harness()  # one harness: baseline timings are cached across sessions

    def factory() -> KernelEnvironment:
        return KernelEnvironment(harness=shared, tasks_dir=tasks_dir, out_dir=out_dir)

    import inspect

    extra = {"state_cls": KernelState} if "state_cls" in inspect.signature(create_app).parameters else {}
    return create_app(factory, KernelAction, KernelObservation, env_name="floorline-kernelenv", **extra)
