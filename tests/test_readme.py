"""The README's tables are generated from results/; they must match what is committed."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_match_results():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme_table.py"), "--check"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, "README tables are stale: run python3 scripts/update_readme_table.py"


def test_readme_has_exactly_two_setup_commands_first():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert first_block == ["bash install.sh && python3 -m floorline report", "bash install.sh && python3 -m pytest -q"]
    assert "TEST_COMMAND: bash install.sh && python3 -m pytest -q" in text
