"""`floorline replay`: JSON keys, --compare, plain traces, and bad input (one line, exit 2)."""

from __future__ import annotations

import json

import pytest

from floorline.cli import main

KEYS = {"requests", "hit_ratio_blocks", "hit_ratio_tokens", "prefill_tokens_computed", "prefill_tokens_reused",
        "kv_bytes_created", "kv_bytes_reused", "kv_bytes_evicted", "ttft_ms", "tpot_ms", "gpu_seconds",
        "cost_per_request_usd", "cost_per_successful_task_usd", "energy_per_request_j"}


def ok_json(capsys, *argv) -> dict:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--json"])
    assert e.value.code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_json_keys(capsys, trace_slice):
    r = ok_json(capsys, "replay", str(trace_slice), "--limit", "300", "--cache-blocks", "200", "--block-size", "512")
    assert KEYS <= set(r)
    for k in ("ttft_ms", "tpot_ms"):
        assert set(r[k]) == {"p50", "p95", "p99"} and r[k]["p50"] <= r[k]["p95"] <= r[k]["p99"]
    assert r["requests"] == 300
    assert r["prefill_tokens_computed"] + r["prefill_tokens_reused"] == sum(
        json.loads(line)["input_length"] for line in trace_slice.read_text().splitlines()[:300])
    assert r["kv_bytes_evicted"] > 0


def test_compare_routing(capsys, trace_slice):
    r = ok_json(capsys, "replay", str(trace_slice), "--instances", "4", "--cache-blocks", "0",
                "--compare", "routing=round-robin")
    assert r["a"]["routing"] == "cache-aware" and r["b"]["routing"] == "round-robin"
    assert r["a"]["hit_ratio_tokens"] > r["b"]["hit_ratio_tokens"]


def test_compare_cache_sizes_text(capsys, trace_slice):
    with pytest.raises(SystemExit):
        main(["replay", str(trace_slice), "--cache-blocks", "100", "--compare", "cache-blocks=2000"])
    out = capsys.readouterr().out
    assert "cache-blocks=2000" in out and "hit ratio (tokens)" in out


def test_plain_csv_with_prefix_key_and_success(capsys, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival,input,output,prefix,success\n0,1024,10,conv1,1\n1.5,2048,10,conv1,0\n2,100,5,,1\n")
    r = ok_json(capsys, "replay", str(p), "--cache-blocks", "0", "--block-size", "256")
    assert r["prefill_tokens_reused"] == 1024  # turn two reuses turn one's four full blocks
    assert r["successful_tasks"] == 2


def test_plain_jsonl(capsys, tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"arrival_ms": 0, "input": 600, "output": 3}\n{"arrival_ms": 10, "input": 600, "output": 3}\n')
    r = ok_json(capsys, "replay", str(p), "--cache-blocks", "0")
    assert r["prefill_tokens_reused"] == 0 and r["requests"] == 2


@pytest.mark.parametrize("content,needle", [
    ('{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [1, 2]}\n{"timestamp": 5, "input_length"\n',
     "line 2: malformed JSON"),
    ('{"timestamp": 0, "input_length": -600, "output_length": 3, "hash_ids": [1, 2]}\n', "line 1: field input_length"),
    ('{"timestamp": 0, "input_length": 600, "output_length": 0, "hash_ids": [1, 2]}\n', "line 1: field output_length"),
    ('{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [1]}\n', "line 1: field hash_ids"),
    ('{"timestamp": "x", "input_length": 600, "output_length": 3, "hash_ids": [1, 2]}\n', "line 1: field timestamp"),
    ('{"input": 600, "output": 3}\n', "line 1: field arrival"),
    ("[1, 2]\n", "line 1: expected a JSON object"),
])
def test_malformed_trace_lines(capsys, tmp_path, content, needle):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    assert needle in fails(capsys, "replay", str(p))


def test_malformed_csv_line(capsys, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("arrival,input,output\n0,100,5\n1,abc,5\n")
    assert "line 3: field input" in fails(capsys, "replay", str(p))


@pytest.mark.parametrize("argv,needle", [
    (["--usd-per-gpu-hour", "-1"], "--usd-per-gpu-hour"),
    (["--pue", "0"], "--pue"),
    (["--instances", "0"], "--instances"),
    (["--routing", "random"], "--routing"),
    (["--cache-blocks", "-3"], "--cache-blocks"),
    (["--block-size", "0"], "--block-size"),
    (["--gpu", "tpu"], "--gpu"),
    (["--model", "gpt-9"], "--model"),
    (["--success-rate", "1.5"], "--success-rate"),
    (["--bandwidth-efficiency", "0"], "--bandwidth-efficiency"),
    (["--compare", "colour=blue"], "--compare"),
    (["--compare", "block-size=256"], "--compare block-size: the trace's blocks are fixed"),
    (["--compare", "cache-blocks=many"], "--compare cache-blocks: expected an integer"),
    (["--model", "llama-3.1-70b"], "--model"),  # 141 GB of bf16 weights do not fit one H100
])
def test_bad_flags(capsys, trace_slice, argv, needle):
    assert needle in fails(capsys, "replay", str(trace_slice), *argv)


def test_missing_trace(capsys, tmp_path):
    assert "no such trace file" in fails(capsys, "replay", str(tmp_path / "nope.jsonl"))


def _decode_packet(tmp_path, fraction):
    from floorline.evidence.schema import Floor, Timing
    from floorline.evidence.store import new_packet, write_packet

    timing = Timing(method="cuda_graph_replay", warmup=3, iterations=20, median=2.0, min=1.9, p10=1.95, p90=2.1,
                    max=2.2, unit="ms/token")
    floor = Floor(model="bytes / HBM ceiling", value=2.0 * fraction, fraction=fraction)
    return write_packet(new_packet("bench.decode", command=["t"], timing=timing, floor=floor,
                                   params={"model": "qwen3-30b-a3b", "batch": 1, "tp": 1}), tmp_path, "decode")


def test_calibrate_from_a_decode_packet_slows_decode(capsys, tmp_path, trace_slice):
    pk = _decode_packet(tmp_path, 0.5)
    floor = ok_json(capsys, "replay", str(trace_slice), "--limit", "200", "--cache-blocks", "0")
    cal = ok_json(capsys, "replay", str(trace_slice), "--limit", "200", "--cache-blocks", "0", "--calibrate", str(pk))
    assert cal["provenance"]["calibration"]["bandwidth_efficiency"] == 0.5
    assert cal["tpot_ms"]["p50"] > floor["tpot_ms"]["p50"] * 1.2  # prefill stalls (compute-bound) dilute the 2x
    assert cal["gpu_seconds"] > floor["gpu_seconds"]
    assert cal["hit_ratio_tokens"] == floor["hit_ratio_tokens"]  # the cache does not depend on time


def test_calibrate_rejects_other_kinds(capsys, tmp_path, trace_slice):
    from floorline.evidence.store import new_packet, write_packet

    p = write_packet(new_packet("device.probe", command=["t"]), tmp_path, "probe")
    assert "expected 'bench.decode'" in fails(capsys, "replay", str(trace_slice), "--calibrate", str(p))


def test_packet_dir_writes_a_verifying_replay_packet(capsys, tmp_path, trace_slice):
    from floorline.evidence.store import verify_packet

    r = ok_json(capsys, "replay", str(trace_slice), "--limit", "100", "--packet-dir", str(tmp_path))
    pk = verify_packet(r["packet"])
    assert pk.kind == "replay" and pk.params["result"]["requests"] == 100
