"""Provenance: the commit and dirty flag a packet records. The device runs a copy of the working tree
whose .git may be stale, so FLOORLINE_GIT_COMMIT / FLOORLINE_GIT_DIRTY, when set, win over git."""

from __future__ import annotations

from floorline.evidence import collect


def _fresh(monkeypatch, **env):
    for k in ("FLOORLINE_GIT_COMMIT", "FLOORLINE_GIT_DIRTY"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    collect.git_info.cache_clear()


def test_environment_wins_over_git(monkeypatch):
    _fresh(monkeypatch, FLOORLINE_GIT_COMMIT="7563fad", FLOORLINE_GIT_DIRTY="0")
    try:
        info = collect.git_info()
        assert info.commit == "7563fad" and info.dirty is False
        _fresh(monkeypatch, FLOORLINE_GIT_COMMIT="abc1234", FLOORLINE_GIT_DIRTY="1")
        assert collect.git_info().dirty is True
    finally:
        _fresh(monkeypatch)


def test_git_when_no_environment(monkeypatch):
    _fresh(monkeypatch)
    calls = []

    def fake_run(cmd, cwd=None):
        calls.append(cmd[1])
        return {"rev-parse": "f" * 40, "status": " M src/x.py"}[cmd[1]]

    monkeypatch.setattr(collect, "_run", fake_run)
    try:
        info = collect.git_info()
        assert info.commit == "f" * 40 and info.dirty is True and calls == ["rev-parse", "status"]
    finally:
        _fresh(monkeypatch)
