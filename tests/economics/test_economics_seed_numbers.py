"""Seed 003's training table, seed 002's capacity block and the read-time example, through the CLI."""

from __future__ import annotations

import json

import pytest

from floorline.cli import main


def run_json(capsys, *argv: str) -> dict:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--json"])
    assert e.value.code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("params,racks,cost_text", [
    ("2T", 191, "$148M"), ("4T", 762, "$593M"), ("10T", 4763, "$3.7B"),
])
def test_training_table_b200_bf16(capsys, params, racks, cost_text):
    r = run_json(capsys, "cost", "training", "--total-params", params, "--gpu", "b200", "--precision", "bf16")
    assert round(r["racks"]) == racks
    if cost_text.endswith("B"):
        assert f"${r['cost_usd'] / 1e9:.1f}B" == cost_text
    else:
        assert f"${r['cost_usd'] / 1e6:.0f}M" == cost_text
    n = float(params[:-1]) * 1e12
    assert r["compute_flops"] == pytest.approx(12 * n * n, rel=1e-12)  # 6 * 0.05 N * 40 N = 12 N^2
    assert r["tokens"] == pytest.approx(40 * n)
    assert r["gpus"] == pytest.approx(r["gpu_hours"] / 2160)


def test_data_need_and_synthetic_top_up(capsys):
    rows = run_json(capsys, "cost", "training")["rows"]  # default: 2T,4T,10T on b200 bf16
    assert [r["tokens"] for r in rows] == [80e12, 160e12, 400e12]
    assert [r["synthetic_tokens"] for r in rows] == [0.0, 60e12, 300e12]
    ten = rows[2]["synthetic_cost_usd"]
    # seed 003: (30T / 1M x $3) + (300T / 1M x $15) = $90M + $4,500M = $4.6B; batch $2.3B
    assert ten["standard"] == pytest.approx(4.59e9)
    assert f"{ten['standard'] / 1e9:.1f}" == "4.6"
    assert f"{ten['batch'] / 1e9:.1f}" == "2.3"


def test_b300_same_bf16_rate_at_six_dollars(capsys):
    b200 = run_json(capsys, "cost", "training", "--total-params", "10T", "--gpu", "b200")
    b300 = run_json(capsys, "cost", "training", "--total-params", "10T", "--gpu", "b300")
    assert b300["inputs"]["usd_per_gpu_hour"] == 6.0
    assert b300["gpu_hours"] == pytest.approx(b200["gpu_hours"])
    assert b300["cost_usd"] / b200["cost_usd"] == pytest.approx(1.2)


def test_fp4_rows_use_catalog_fp4_peaks(capsys):
    from floorline.economics.catalog import device

    bf16 = run_json(capsys, "cost", "training", "--total-params", "4T", "--gpu", "b300", "--precision", "bf16")
    fp4 = run_json(capsys, "cost", "training", "--total-params", "4T", "--gpu", "b300", "--precision", "fp4")
    d = device("b300")
    assert bf16["gpu_hours"] / fp4["gpu_hours"] == pytest.approx(d.si("fp4_dense") / d.si("bf16_dense"))


def test_capacity_block_exact(capsys):
    r = run_json(capsys, "cost", "capacity", "--before", "2173", "--after", "12576")
    assert round(r["capacity_ratio"], 2) == 5.79
    assert round(r["before_gpu_equiv"], 1) == 127.8
    assert round(r["after_gpu_equiv"], 1) == 22.1
    assert round(r["freed_gpu_equiv"], 1) == 105.7
    assert round(r["freed_racks"], 2) == 1.47
    assert round(r["facility_kw_freed"], 1) == 232.6
    assert round(r["kwh_per_day"]) == 5583
    assert round(r["usd_per_day"]) == 558


def test_capacity_text_prints_the_seed_figures(capsys):
    with pytest.raises(SystemExit):
        main(["cost", "capacity"])
    out = capsys.readouterr().out
    for text in ("5.79x", "127.8", "22.1", "105.7", "1.47", "232.6", "5,583", "$558"):
        assert text in out


def test_read_time_70b_fp16_h100(capsys):
    r = run_json(capsys, "hw", "read-time", "--params", "70e9", "--dtype", "fp16", "--gpu", "h100")
    assert f"{r['read_time_ms']:.1f}" == "41.8"
    with pytest.raises(SystemExit):
        main(["hw", "read-time", "--params", "70B", "--dtype", "fp16", "--gpu", "h100"])
    assert "41.8 ms" in capsys.readouterr().out
