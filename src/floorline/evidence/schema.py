"""The evidence packet model. schemas/evidence.schema.json is exported from here."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "floorline.evidence/1"

Status = Literal["passed", "failed", "error", "skipped"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitInfo(_Strict):
    commit: str | None = None
    dirty: bool | None = None


class HostInfo(_Strict):
    os: str
    python: str
    cpu_model: str | None = None
    cpu_count: int | None = None


class GpuInfo(_Strict):
    index: int
    name: str
    compute_capability: str | None = None
    sm_count: int | None = None
    memory_bytes: int | None = None
    l2_bytes: int | None = None
    max_sm_clock_mhz: int | None = None
    max_mem_clock_mhz: int | None = None
    driver: str | None = None


class HardwareInfo(_Strict):
    gpu_count: int = 0
    gpus: list[GpuInfo] = Field(default_factory=list)
    topology: str | None = Field(default=None, description="link matrix as the driver reports it")
    p2p: list[list[bool]] | None = None


class SoftwareInfo(_Strict):
    floorline: str
    torch: str | None = None
    triton: str | None = None
    cuda: str | None = None
    nccl: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="NCCL_*/TORCH_*/TRITON_* in force")


class Correctness(_Strict):
    reference: str
    metric: str
    value: float | None
    tolerance: float | None
    passed: bool
    trials: int = 1
    seeds: list[int] = Field(default_factory=list)


class Timing(_Strict):
    method: str = Field(description="e.g. cuda_events, cuda_graph_replay, wall_clock_cpu")
    warmup: int
    iterations: int
    median: float
    min: float
    p10: float
    p90: float
    max: float
    unit: str
    samples: list[float] | None = None


class Baseline(_Strict):
    name: str
    version: str | None = None
    timing: Timing | None = None
    ratio: float | None = Field(default=None, description="baseline time / ours (>1: ours is faster)")
    config: dict[str, Any] = Field(default_factory=dict)
    status: Status = "passed"
    reason: str | None = None


class Floor(_Strict):
    model: str = Field(description="what bounds this op, e.g. 'bytes / HBM read ceiling'")
    bytes: float | None = None
    flops: float | None = None
    ceiling: float | None = None
    ceiling_unit: str | None = None
    value: float | None = Field(default=None, description="floor time, in timing.unit")
    fraction: float | None = Field(default=None, description="floor / measured (1.0 = at the floor)")


class CompilerInfo(_Strict):
    tool: str
    version: str | None = None
    flags: list[str] = Field(default_factory=list)
    target_arch: str | None = None
    registers: int | None = None
    spills: int | None = None
    shared_memory_bytes: int | None = None


class Artifact(_Strict):
    path: str
    sha256: str


class EvidencePacket(_Strict):
    schema_version: Literal["floorline.evidence/1"] = SCHEMA_VERSION
    id: str = ""
    kind: str
    status: Status
    failure_class: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    command: list[str]
    git: GitInfo = Field(default_factory=GitInfo)
    host: HostInfo
    hardware: HardwareInfo = Field(default_factory=HardwareInfo)
    software: SoftwareInfo
    params: dict[str, Any] = Field(default_factory=dict)
    correctness: Correctness | None = None
    timing: Timing | None = None
    baselines: list[Baseline] = Field(default_factory=list)
    floor: Floor | None = None
    compiler: CompilerInfo | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _failure_needs_class(self) -> EvidencePacket:
        if self.status != "passed" and not self.failure_class:
            raise ValueError("failure_class is required when status is not 'passed'")
        return self

    def canonical_bytes(self) -> bytes:
        """JSON of the packet without `id`, keys sorted: what the id hashes."""
        body = self.model_dump(mode="json", exclude={"id"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def compute_id(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def sealed(self) -> EvidencePacket:
        return self.model_copy(update={"id": self.compute_id()})

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name), None)


def json_schema() -> dict[str, Any]:
    schema = EvidencePacket.model_json_schema()
    schema["$id"] = "https://floorline.dev/schemas/evidence.schema.json"
    schema["title"] = SCHEMA_VERSION
    return schema
