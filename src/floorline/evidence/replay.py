"""Re-run a packet's command here and compare the new measurement with the old one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from floorline.errors import InputError
from floorline.evidence.schema import EvidencePacket
from floorline.evidence.store import load_packet


@dataclass(frozen=True)
class ReplayResult:
    returncode: int
    old: EvidencePacket
    new: EvidencePacket | None
    ratio: float | None  # new median / old median


def replay(path: Path, timeout_s: float = 3600) -> ReplayResult:
    old = load_packet(path)
    if not old.command:
        raise InputError(f"{path}: command is empty, nothing to replay")
    argv = list(old.command)
    if argv[0] == "floorline":
        argv = [sys.executable, "-m", "floorline", *argv[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "written.txt"
        env = dict(os.environ, FLOORLINE_EVIDENCE_LOG=str(log))
        proc = subprocess.run(argv, env=env, timeout=timeout_s)
        written = log.read_text().split() if log.exists() else []
    candidates = [load_packet(Path(p)) for p in written]
    same = [p for p in candidates if p.kind == old.kind and p.params == old.params]
    new = (same or [p for p in candidates if p.kind == old.kind] or [None])[0]
    ratio = None
    if new and new.timing and old.timing and old.timing.median:
        ratio = new.timing.median / old.timing.median
    return ReplayResult(proc.returncode, old, new, ratio)
