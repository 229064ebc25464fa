"""Unbounded-cache token hit ratio against a hand computation written as plainly as possible.

Mooncake hash_ids are prefix hashes (an id at position i is only ever preceded by one parent id;
test_ids_are_prefix_hashes checks that on the data), so with an unbounded cache a request's hit is
simply: how many of its leading ids were seen in any earlier request. Reused tokens are that many
blocks times 512, capped at the prompt length. Nothing from floorline.replay is used here.
"""

from __future__ import annotations

import json

import pytest

from floorline.cli import main


def hand_hit_ratio(path) -> tuple[float, float]:
    seen = set()
    reused_tokens = total_tokens = hit_blocks = total_blocks = 0
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            ids = r["hash_ids"]
            k = 0
            while k < len(ids) and ids[k] in seen:
                k += 1
            reused_tokens += min(k * 512, r["input_length"])
            total_tokens += r["input_length"]
            hit_blocks += k
            total_blocks += len(ids)
            seen.update(ids)
    return reused_tokens / total_tokens, hit_blocks / total_blocks


def test_ids_are_prefix_hashes(trace_slice):
    parent = {}
    with open(trace_slice) as f:
        for line in f:
            ids = json.loads(line)["hash_ids"]
            for i, h in enumerate(ids):
                assert parent.setdefault(h, ids[i - 1] if i else None) == (ids[i - 1] if i else None)


def replay_json(capsys, path, *extra) -> dict:
    with pytest.raises(SystemExit) as e:
        main(["replay", str(path), "--cache-blocks", "0", "--json", *extra])
    assert e.value.code == 0
    return json.loads(capsys.readouterr().out)


def test_slice_matches_hand(capsys, trace_slice):
    tokens, blocks = hand_hit_ratio(trace_slice)
    r = replay_json(capsys, trace_slice)
    assert r["hit_ratio_tokens"] == pytest.approx(tokens, abs=1e-12)
    assert r["hit_ratio_blocks"] == pytest.approx(blocks, abs=1e-12)
    assert 0.1 < tokens < 0.9  # the slice really exercises reuse


def test_full_trace_matches_hand(capsys, full_trace):
    tokens, blocks = hand_hit_ratio(full_trace)
    r = replay_json(capsys, full_trace)
    assert r["requests"] == 12031
    assert r["hit_ratio_tokens"] == pytest.approx(tokens, abs=1e-12)
    assert r["hit_ratio_blocks"] == pytest.approx(blocks, abs=1e-12)
    assert f"{tokens:.4f}" == "0.3736"
