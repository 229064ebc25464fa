"""The docs' measured tables are generated from results/ (scripts/docs_tables.py); they must match."""

import subprocess
import sys
from pathlib import Path

import pytest

from floorline.errors import InputError
from floorline.evidence.doctables import load_cases, num, peer, replace_block, run_of, table, targets_table
from floorline.evidence.schema import Baseline, Floor, GitInfo, Timing
from floorline.evidence.store import new_packet, write_packet
from floorline.evidence.targets import Target

ROOT = Path(__file__).resolve().parents[1]


def test_docs_tables_match_results():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_tables.py"), "--check"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"docs tables are stale: run python3 scripts/docs_tables.py\n{r.stderr}"


def _timing(us: float) -> Timing:
    return Timing(method="cuda_events", warmup=1, iterations=3, median=us, min=us, p10=us, p90=us, max=us, unit="us")


def _write(directory: Path, name: str, context: int, us: float, sdpa_us: float, created_at: str, commit: str) -> None:
    p = new_packet("bench.attention", params={"context": context, "batch": 1}, timing=_timing(us),
                   floor=Floor(model="bytes / ceiling", ceiling=4.5, fraction=0.8),
                   baselines=[Baseline(name="torch_sdpa", timing=_timing(sdpa_us), ratio=sdpa_us / us),
                              Baseline(name="flashinfer", status="skipped", reason="no 4-bit")])
    write_packet(p.model_copy(update={"created_at": created_at, "git": GitInfo(commit=commit, dirty=False)}),
                 directory, name)


def test_table_from_packets_on_disk(tmp_path):
    d = tmp_path / "nvidia-h200"
    _write(d, "a", 32768, 20.0, 25.0, "2026-12-04T10:00:00+00:00", "1" * 40)
    _write(d, "b", 4096, 9.0, 10.8, "2026-11-22T10:00:00+00:00", "2" * 40)
    _write(tmp_path / "other-gpu", "c", 32768, 1.0, 1.0, "2026-12-04T10:00:00+00:00", "1" * 40)

    cases = load_cases(tmp_path, "bench.attention", "nvidia-h200")
    assert [c.name for c in cases] == ["a.json", "b.json"]  # the other device's packet is left out
    cols = [("context", lambda c: str(c.params["context"])), ("us", lambda c: num(c.packet.timing.median)),
            ("SDPA", peer("torch_sdpa")), ("FlashInfer", peer("flashinfer"))]
    lines = table(cases, cols).splitlines()
    assert "`results/nvidia-h200/`" in lines[0]
    assert lines[2] == "| context | us | SDPA | FlashInfer | run (date, commit) | packet |"
    assert lines[4] == "| 32768 | 20.0 | 1.25x (25.0 us) | skipped | 2026-12-04, 1111111 | a.json |"
    assert lines[5] == "| 4096 | 9.0 | 1.20x (10.8 us) | skipped | 2026-11-22, 2222222 | b.json |"

    # one run: said once above the table, no run column
    one = table(cases[:1], cols).splitlines()
    assert "all from one run (2026-12-04, 1111111)" in one[0]
    assert one[2] == "| context | us | SDPA | FlashInfer | packet |"


def test_targets_table_names_the_run(tmp_path):
    d = tmp_path / "nvidia-h200"
    _write(d, "old", 32768, 30.0, 25.0, "2026-11-22T10:00:00+00:00", "2" * 40)
    _write(d, "new", 32768, 20.0, 25.0, "2026-12-04T10:00:00+00:00", "1" * 40)
    targets = [Target(4, "32K <= 22 us", "bench.attention", {"context": 32768}, "timing.median", "<=", 22.0),
               Target(4, "32K share", "bench.attention", {"context": 32768}, "floor.fraction", ">=", 0.9),
               Target(4, "never measured", "bench.attention", {"context": 1}, "timing.median", "<=", 1.0)]
    rows = targets_table(targets, tmp_path).splitlines()[2:]
    assert rows[0] == "| #4 | 32K <= 22 us | 20 | yes | 2026-12-04, 1111111 | nvidia-h200/new.json |"
    assert rows[1] == "| #4 | 32K share | 80.0% | **no** | 2026-12-04, 1111111 | nvidia-h200/new.json |"
    assert rows[2] == "| #4 | never measured | - | not run | - | - |"


def test_run_of_marks_a_dirty_tree(tmp_path):
    p = new_packet("bench.hbm").model_copy(update={"created_at": "2026-12-04T15:00:00+00:00",
                                                   "git": GitInfo(commit="abcdef0123", dirty=True)})
    assert run_of(p) == "2026-12-04, abcdef0 dirty"


def test_replace_block_rewrites_only_its_block():
    doc = "intro 1.0 us\n<!-- t:start -->\nstale 582.9 us\n<!-- t:end -->\nafter\n<!-- u:start -->\nkeep\n<!-- u:end -->\n"
    new = replace_block(doc, "t", "| fresh |")
    assert new == "intro 1.0 us\n<!-- t:start -->\n| fresh |\n<!-- t:end -->\nafter\n<!-- u:start -->\nkeep\n<!-- u:end -->\n"
    assert replace_block(new, "t", "| fresh |") == new
    with pytest.raises(InputError, match="no <!-- missing:start -->"):
        replace_block(doc, "missing", "x")
