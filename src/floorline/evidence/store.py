"""Write, load and verify evidence packets."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from floorline.errors import EvidenceMismatch, InputError
from floorline.evidence.collect import git_info, hardware_info, host_info, software_info
from floorline.evidence.schema import SCHEMA_VERSION, Artifact, EvidencePacket


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Set by `floorline report` while a section runs, so a packet replays as `floorline report --only NAME`.
DEFAULT_COMMAND: ContextVar[list[str] | None] = ContextVar("DEFAULT_COMMAND", default=None)


def new_packet(kind: str, status: str = "passed", command: list[str] | None = None, **fields: Any) -> EvidencePacket:
    """A sealed packet with git/host/hardware/software filled in from this process."""
    argv = command if command is not None else (DEFAULT_COMMAND.get() or ["floorline", *sys.argv[1:]])
    packet = EvidencePacket(
        kind=kind,
        status=status,
        command=argv,
        git=git_info(),
        host=host_info(),
        hardware=fields.pop("hardware", None) or hardware_info(),
        software=software_info(),
        **fields,
    )
    return packet.sealed()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def write_packet(packet: EvidencePacket, directory: Path, name: str | None = None) -> Path:
    """Write atomically, so a crash never leaves half a packet behind."""
    packet = packet.sealed()
    directory.mkdir(parents=True, exist_ok=True)
    stem = name or f"{slug(packet.kind)}-{packet.id[:12]}"
    path = directory / f"{stem}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(packet.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    log = os.environ.get("FLOORLINE_EVIDENCE_LOG")
    if log:  # `evidence replay` learns which packets the replayed command wrote
        with open(log, "a") as f:
            f.write(str(path.resolve()) + "\n")
    return path


def artifact(path: Path, relative_to: Path) -> Artifact:
    return Artifact(path=str(Path(path).resolve().relative_to(relative_to.resolve())), sha256=sha256_file(path))


def read_json(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a packet .json file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def load_packet(path: Path) -> EvidencePacket:
    """Parse a packet; a file of another schema or shape is bad input (exit 2)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with schema_version {SCHEMA_VERSION!r}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version is {version!r}, expected {SCHEMA_VERSION!r}")
    try:
        return EvidencePacket.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise InputError(f"{path}: field {loc}: {err['msg']}") from None


def owning_packet(path: Path) -> Path | None:
    """The packet beside `path` that lists it as an artifact, if any (a JSON artifact, e.g. a profile)."""
    path = Path(path).resolve()
    for cand in sorted(path.parent.glob("*.json")):
        if cand.resolve() == path:
            continue
        try:
            data = json.loads(cand.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            continue
        for art in data.get("artifacts") or []:
            if isinstance(art, dict) and (cand.parent / str(art.get("path", ""))).resolve() == path:
                return cand
    return None


def verify_packet(path: Path) -> EvidencePacket:
    """Schema, id and artifact hashes. Raises EvidenceMismatch naming the first problem."""
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise EvidenceMismatch(
            f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION!r}"
        )
    try:
        packet = EvidencePacket.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise EvidenceMismatch(f"{path}: schema: field {loc}: {err['msg']}") from None
    expected = packet.compute_id()
    if packet.id != expected:
        raise EvidenceMismatch(f"{path}: id {packet.id[:16]}... does not match content hash {expected[:16]}...")
    for art in packet.artifacts:
        target = (path.parent / art.path).resolve()
        if not target.exists():
            raise EvidenceMismatch(f"{path}: artifact {art.path} is missing")
        actual = sha256_file(target)
        if actual != art.sha256:
            raise EvidenceMismatch(f"{path}: artifact {art.path} sha256 {actual[:16]}... != recorded {art.sha256[:16]}...")
    return packet


def iter_packets(directory: Path) -> list[tuple[Path, EvidencePacket]]:
    directory = Path(directory)
    if not directory.exists():
        raise InputError(f"{directory}: no such directory")
    out = []
    for p in sorted(directory.rglob("*.json")):
        try:
            out.append((p, load_packet(p)))
        except InputError:
            continue  # other JSON (plots' data, configs) may live beside packets
    return out
