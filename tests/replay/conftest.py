from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "tests" / "data" / "mooncake_conversation_head1500.jsonl"
FULL = ROOT.parent / "shared" / "data" / "traces" / "mooncake_conversation_trace.jsonl"


@pytest.fixture
def trace_slice() -> Path:
    return SLICE


@pytest.fixture
def full_trace() -> Path:
    if not FULL.exists():
        pytest.skip(f"the full Mooncake trace is not at {FULL}")
    return FULL
