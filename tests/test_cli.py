"""Bad input is one line on stderr and exit code 2; help is fast and imports no torch."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from floorline.evidence.store import new_packet, write_packet


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "floorline", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def assert_one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0] and "Traceback" not in r.stderr


def test_help_is_fast_and_torch_free():
    code = "import sys, time; t=time.perf_counter(); from floorline.cli import app; import floorline.cli;" \
           "print('torch' in sys.modules, time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False"
    best = min(_timed_help() for _ in range(3))
    assert best < 0.5 * 2, best  # 0.5 s budget; x2 slack for a loaded 2-core CI box


def _timed_help() -> float:
    t = time.perf_counter()
    r = run("--help")
    assert r.returncode == 0 and "report" in r.stdout
    return time.perf_counter() - t


@pytest.mark.parametrize(
    "args,needle",
    [
        (("nosuchcommand",), "No such command"),
        (("report", "--nosuchoption"), "No such option"),
        (("evidence", "show", "/nonexistent/x.json"), "no such file"),
        (("evidence", "verify", "/nonexistent/x.json"), "no such file"),
    ],
)
def test_bad_input(args, needle):
    assert_one_line_error(run(*args), needle)


def test_malformed_and_foreign_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert_one_line_error(run("evidence", "show", str(bad)), "malformed JSON")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": "someone.else/3", "x": 1}))
    assert_one_line_error(run("evidence", "show", str(other)), "schema_version")


def test_verify_cli_exit_codes(tmp_path):
    good = write_packet(new_packet("machine.check", params={"a": 1}), tmp_path, "good")
    r = run("evidence", "verify", str(good))
    assert r.returncode == 0, r.stderr
    data = json.loads(good.read_text())
    data["status"] = "failed"
    data["failure_class"] = "incorrect"
    good.write_text(json.dumps(data))
    r = run("evidence", "verify", str(good))
    assert r.returncode == 1 and "does not match content hash" in r.stderr


def test_report_runs_and_lists_skipped_sections(tmp_path):
    from floorline.gpu.probe import cuda_available

    r = run("report", "--json", "--results", str(tmp_path / "results"), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    by = {s["section"]: s for s in out["sections"]}
    if cuda_available():
        assert by["device"]["status"] == "passed" and by["device"]["packets"]
    else:
        assert by["device"]["status"] == "skipped" and "GPU" in by["device"]["reason"]
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html or "<table" in html
    import re

    # self-contained: no script, stylesheet, image or font fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", html)


def test_evidence_table_markdown(tmp_path):
    d = tmp_path / "results" / "nvidia-h200"
    write_packet(new_packet("bench.hbm", params={"op": "read", "bytes": 10}), d, "hbm")
    r = run("evidence", "table", str(tmp_path / "results"), "--markdown")
    assert r.returncode == 0, r.stderr
    assert "| nvidia-h200 | bench.hbm | op=read bytes=10 |" in r.stdout


def test_help_texts_keep_their_brackets():
    """rich reads "[word ...]" (a lowercase letter, #, / or @ after the bracket) as a style tag and drops
    it from --help, so sources like "[seed 003: 0.05]" vanished; such brackets must be escaped."""
    import re

    from typer.main import get_command

    from floorline.cli import app

    tag = re.compile(r"(?<!\\)\[[a-z#/@]")
    eaten = []

    def walk(cmd, path):
        for p in getattr(cmd, "params", []):
            if tag.search(getattr(p, "help", None) or ""):
                eaten.append((" ".join(path), p.name))
        if tag.search(cmd.help or ""):
            eaten.append((" ".join(path), "<help>"))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), ["floorline"])
    assert not eaten, eaten


@pytest.mark.parametrize("argv", [["bench", "hbm"], ["bench", "attention"], ["bench", "decode", "--no-evidence"]])
def test_gpu_commands_without_a_gpu_print_only_the_error(argv):
    """No GPU here: stdout stays empty (no progress-bar residue) and stderr is the one-line error."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run(*argv)
    assert r.stdout == "" and r.stderr.count("\n") == 1
    assert_one_line_error(r, "GPU")
