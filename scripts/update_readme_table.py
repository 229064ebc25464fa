"""Regenerate the README's measured-results table from results/ (floorline evidence table --markdown)."""

import re
import sys
from pathlib import Path

from floorline.evidence.table import build_rows, markdown
from floorline.evidence.targets import evaluate, load_targets
from floorline.evidence.targets import markdown as targets_markdown

root = Path(__file__).resolve().parents[1]
readme = root / "README.md"
text = readme.read_text()
# CPU packets (machine checks, cost arithmetic, replay simulation) are not hardware measurements and
# change on every local `floorline report`; they stay in results/cpu/ (`floorline evidence table results/cpu`).
table = markdown(build_rows(root / "results", exclude_devices=frozenset({"cpu"})))
new = re.sub(r"(<!-- results-table:start -->\n).*?(<!-- results-table:end -->)",
             lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
targets = targets_markdown(evaluate(load_targets(root / "docs" / "targets.toml"), root / "results"))
new = re.sub(r"(<!-- targets-table:start -->\n).*?(<!-- targets-table:end -->)",
             lambda m: m.group(1) + targets + "\n" + m.group(2), new, flags=re.S)
if "--check" in sys.argv:
    sys.exit(0 if new == text else 1)
readme.write_text(new)
