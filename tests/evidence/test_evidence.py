import json
from pathlib import Path

import pytest

from floorline.errors import EvidenceMismatch, InputError
from floorline.evidence.schema import SCHEMA_VERSION, json_schema
from floorline.evidence.store import artifact, load_packet, new_packet, verify_packet, write_packet

ROOT = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, with_artifact: bool = True) -> Path:
    art = tmp_path / "log.txt"
    art.write_text("compiler log\n")
    packet = new_packet(
        "bench.hbm",
        params={"op": "read", "bytes": 123},
        artifacts=[artifact(art, tmp_path)] if with_artifact else [],
    )
    return write_packet(packet, tmp_path, "p")


def test_schema_file_matches_model():
    on_disk = json.loads((ROOT / "schemas" / "evidence.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(json_schema())), "run: floorline evidence schema --write schemas/evidence.schema.json"


def test_roundtrip_verifies(tmp_path):
    p = make(tmp_path)
    packet = verify_packet(p)
    assert packet.schema_version == SCHEMA_VERSION
    assert packet.id == packet.compute_id() and len(packet.id) == 64
    assert packet.host.python and "hostname" not in json.dumps(packet.model_dump(mode="json"))


def test_tampered_packet_fails(tmp_path):
    p = make(tmp_path)
    data = json.loads(p.read_text())
    data["params"]["bytes"] = 124
    p.write_text(json.dumps(data))
    with pytest.raises(EvidenceMismatch, match="does not match content hash"):
        verify_packet(p)


def test_changed_artifact_fails(tmp_path):
    p = make(tmp_path)
    (tmp_path / "log.txt").write_text("another log\n")
    with pytest.raises(EvidenceMismatch, match="artifact log.txt sha256"):
        verify_packet(p)


def test_missing_artifact_fails(tmp_path):
    p = make(tmp_path)
    (tmp_path / "log.txt").unlink()
    with pytest.raises(EvidenceMismatch, match="missing"):
        verify_packet(p)


def test_wrong_schema_version_fails(tmp_path):
    p = make(tmp_path)
    data = json.loads(p.read_text())
    data["schema_version"] = "floorline.evidence/0"
    p.write_text(json.dumps(data))
    with pytest.raises(EvidenceMismatch, match="schema_version"):
        verify_packet(p)
    with pytest.raises(InputError, match="expected 'floorline.evidence/1'"):
        load_packet(p)


def test_failure_needs_class():
    with pytest.raises(ValueError, match="failure_class"):
        new_packet("bench.hbm", status="failed")
    assert new_packet("bench.hbm", status="failed", failure_class="incorrect").failure_class == "incorrect"


def test_malformed_json_is_input_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="malformed JSON at line 1"):
        load_packet(bad)


def test_json_artifact_verifies_through_its_packet(tmp_path):
    import subprocess
    import sys

    prof = tmp_path / "run.profile.json"
    prof.write_text('{"kernel_us": [1.5, 2.5]}\n')
    write_packet(new_packet("bench.decode", artifacts=[artifact(prof, tmp_path)]), tmp_path, "run")
    lone = tmp_path / "lone.json"
    lone.write_text('{"not": "a packet"}\n')

    def verify(p):
        return subprocess.run([sys.executable, "-m", "floorline", "evidence", "verify", str(p)],
                              capture_output=True, text=True, check=False)

    assert verify(prof).returncode == 0
    prof.write_text('{"kernel_us": [1.5, 9.5]}\n')  # changed after the packet hashed it
    r = verify(prof)
    assert r.returncode == 1 and "artifact run.profile.json sha256" in r.stderr
    assert verify(lone).returncode == 1  # JSON that no packet owns is not evidence
