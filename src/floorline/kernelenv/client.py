"""Client for a running `floorline kernelenv serve`: openenv's persistent-session EnvClient, typed."""

from __future__ import annotations

from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult

from floorline.kernelenv.models import KernelAction, KernelObservation, KernelState


class KernelEnvClient(EnvClient[KernelAction, KernelObservation, KernelState]):
    """Example:
        with KernelEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
            env.reset(task="rmsnorm")
            result = env.step(KernelAction(source=open("my_rmsnorm.py").read()))
            print(result.observation.failure_class, result.reward)
    """

    def _step_payload(self, action: KernelAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"}, exclude_none=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[KernelObservation]:
        obs = dict(payload.get("observation", {}))
        obs.setdefault("done", payload.get("done", False))
        obs.setdefault("reward", payload.get("reward"))
        return StepResult(observation=KernelObservation.model_validate(obs), reward=payload.get("reward"),
                          done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> KernelState:
        return KernelState.model_validate(payload)
