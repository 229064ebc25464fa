"""Bad input: one line on stderr naming the field, exit 2, no traceback."""

from __future__ import annotations

import json

import pytest

from floorline.cli import main


def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv,field", [
    (["cost", "training", "--usd-per-gpu-hour", "-5"], "--usd-per-gpu-hour"),
    (["cost", "training", "--mfu", "1.5"], "--mfu"),
    (["cost", "training", "--total-params", "-2T"], "--total-params"),
    (["cost", "training", "--gpu", "tpu9"], "--gpu"),
    (["cost", "training", "--gpu", "h100", "--precision", "fp4"], "--precision"),
    (["cost", "capacity", "--before", "0"], "--before"),
    (["cost", "capacity", "--after", "-1"], "--after"),
    (["cost", "capacity", "--usd-per-kwh", "-0.1"], "--usd-per-kwh"),
    (["cost", "serving", "--tokens-per-s", "0"], "--tokens-per-s"),
    (["cost", "serving", "--tokens-per-s", "100", "--pue", "-1"], "--pue"),
    (["cost", "serving"], "--tokens-per-s"),
    (["hw", "show", "nope"], "name: unknown device"),  # the positional argument, not an option
    (["hw", "read-time", "--params", "70B", "--dtype", "fp3"], "--dtype"),
])
def test_bad_input_one_line_exit_2(capsys, argv, field):
    assert field in fails(capsys, *argv)


def test_serving_evidence_missing_and_wrong_kind(capsys, tmp_path):
    assert "no such file" in fails(capsys, "cost", "serving", "--evidence", str(tmp_path / "none.json"))
    from floorline.evidence.store import new_packet, write_packet

    p = write_packet(new_packet("device.probe", command=["t"]), tmp_path, "probe")
    assert "expected 'bench.decode'" in fails(capsys, "cost", "serving", "--evidence", str(p))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "malformed JSON" in fails(capsys, "cost", "serving", "--evidence", str(bad))


def test_serving_from_a_bench_decode_packet(capsys, tmp_path):
    from floorline.evidence.schema import Timing
    from floorline.evidence.store import new_packet, write_packet

    timing = Timing(method="cuda_graph_replay", warmup=3, iterations=20, median=4.0, min=3.9, p10=3.95,
                    p90=4.1, max=4.3, unit="ms/token")
    p = write_packet(new_packet("bench.decode", command=["t"], timing=timing,
                                params={"model": "qwen3-30b-a3b", "batch": 8, "context": 1024, "tp": 1}), tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["cost", "serving", "--evidence", str(p), "--json"])
    assert e.value.code == 0
    r = json.loads(capsys.readouterr().out)
    assert r["evidence"]["tokens_per_s_per_gpu"] == pytest.approx(8 * 1000 / 4.0)
    # rack-hour = 3.9M/3/8760 + 132 * 1.2 * 0.10 ; $/GPU-hour = that / 72
    rack_hour = 3.9e6 / 3 / 8760 + 132 * 1.2 * 0.10
    assert r["rack_hour_usd"] == pytest.approx(rack_hour)
    assert r["usd_per_m_output_tokens"] == pytest.approx(rack_hour / 72 * 1e6 / (2000 * 3600))
    assert r["j_per_output_token"] == pytest.approx(132e3 * 1.2 / 72 / 2000)


def test_zero_available_tokens_means_all_synthetic(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cost", "training", "--total-params", "2T", "--available-tokens", "0", "--json"])
    assert e.value.code == 0
    assert json.loads(capsys.readouterr().out)["synthetic_tokens"] == 80e12


def test_input_per_output_needs_input_throughput(capsys):
    assert "--input-tokens-per-s" in fails(capsys, "cost", "serving", "--tokens-per-s", "100", "--input-per-output", "8")
