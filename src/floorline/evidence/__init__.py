"""Evidence packets: one schema (floorline.evidence/1) for every measured claim.

The model lives in floorline.evidence.schema; it is not imported here so that `floorline --help`
does not pay for pydantic.
"""
