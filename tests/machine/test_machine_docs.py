"""docs/machine.md explains every CONDITIONAL and FAIL of every shipped design; keep it true."""

import re
from pathlib import Path

import pytest

from floorline.machine.checks import evaluate
from floorline.machine.design import resolve

DOC = Path(__file__).resolve().parents[2] / "docs" / "machine.md"


def _section(text: str, name: str) -> str:
    m = re.search(rf"^### {re.escape(name)}\b.*?(?=^### |^## |\Z)", text, re.S | re.M)
    assert m, f"docs/machine.md has no section for {name}"
    return m.group(0)


@pytest.mark.parametrize("name", ["mx8-355", "hgx-h200", "gb200-nvl72"])
def test_doc_matches_the_checks(name):
    sec = _section(DOC.read_text(), name)
    rep = evaluate(resolve(name))
    s = rep["summary"]
    assert f"27 checks, {s['pass']} PASS, {s['conditional']} CONDITIONAL, {s['fail']} FAIL" in sec.splitlines()[0]
    for status in ("CONDITIONAL", "FAIL"):
        actual = {c["id"] for c in rep["checks"] if c["status"] == status}
        named = set()
        for bullet in re.findall(rf"\*\*{status} (.*?)\*\*", sec):
            for cid in re.findall(r"`([a-z_]+\.[a-z_*0-9]+)`", bullet):
                group, _, rest = cid.partition(".")
                # `fabric.*` in the doc means every check of that group with this status
                named |= {c["id"] for c in rep["checks"] if c["group"] == group and c["status"] == status} \
                    if rest == "*" else {cid}
        assert named == actual, f"{name}: docs explain {sorted(named)} as {status}, the checks say {sorted(actual)}"
