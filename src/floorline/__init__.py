"""floorline: LLM decode near the hardware floor, with evidence for every number."""

__version__ = "0.1.0"
