"""Evidence packets: one schema (floorline.evidence/1) for every measured claim."""

from floorline.evidence.schema import SCHEMA_VERSION, EvidencePacket

__all__ = ["SCHEMA_VERSION", "EvidencePacket"]
