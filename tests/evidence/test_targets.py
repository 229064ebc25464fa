from pathlib import Path

import pytest

from floorline.errors import InputError
from floorline.evidence.schema import Baseline, Floor, Timing
from floorline.evidence.store import new_packet, write_packet
from floorline.evidence.targets import evaluate, load_targets, markdown

ROOT = Path(__file__).resolve().parents[2]


def _timing(us: float) -> Timing:
    return Timing(method="cuda_events", warmup=1, iterations=1, median=us, min=us, p10=us, p90=us, max=us, unit="us")


def test_targets_pick_matching_packet_and_compare(tmp_path):
    d = tmp_path / "nvidia-h200"
    write_packet(new_packet("bench.attention", params={"context": 32768, "batch": 1}, timing=_timing(18.0),
                            floor=Floor(model="bytes/ceiling", fraction=0.81),
                            baselines=[Baseline(name="torch_sdpa", ratio=1.4)]), d, "a")
    write_packet(new_packet("bench.attention", params={"context": 4096, "batch": 1}, timing=_timing(9.0)), d, "b")
    tfile = tmp_path / "t.toml"
    tfile.write_text("""
[[target]]
issue = 4
title = "32K in a graph <= 20 us"
kind = "bench.attention"
match = { context = 32768, batch = 1 }
metric = "timing.median"
op = "<="
value = 20

[[target]]
issue = 4
title = "32K >= 90% of ceiling"
kind = "bench.attention"
match = { context = 32768 }
metric = "floor.fraction"
op = ">="
value = 0.9

[[target]]
issue = 4
title = "beats sdpa"
kind = "bench.attention"
match = { context = 32768 }
metric = "baseline:torch_sdpa"
op = ">="
value = 1.0

[[target]]
issue = 5
title = "not measured yet"
kind = "bench.allreduce"
metric = "timing.median"
op = "<="
value = 4
""")
    res = evaluate(load_targets(tfile), tmp_path)
    assert [r.met for r in res] == [True, False, True, None]
    assert res[0].measured == 18.0 and res[0].file == "nvidia-h200/a.json"
    assert "**no**" in markdown(res) and "not run" in markdown(res)


def test_bad_targets_file(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("[[target]]\nissue=1\ntitle='x'\nkind='k'\nmetric='timing.median'\nop='=='\nvalue=1\n")
    with pytest.raises(InputError, match="op must be one of"):
        load_targets(f)


def test_shipped_targets_file_parses():
    assert load_targets(ROOT / "docs" / "targets.toml")


def test_failed_packet_counts_as_a_miss_and_errored_is_ignored(tmp_path):
    d = tmp_path / "nvidia-h200"
    from floorline.evidence.schema import Correctness
    write_packet(new_packet("decode.check", status="failed", failure_class="tolerance", params={"steps": 64},
                            correctness=Correctness(reference="f64", metric="rel-L2", value=2.9e-3,
                                                    tolerance=1e-3, passed=False)), d, "check")
    write_packet(new_packet("bench.decode", status="error", failure_class="crash", params={"batch": 1},
                            timing=_timing(1.0)), d, "err")
    tfile = tmp_path / "t.toml"
    tfile.write_text("""
[[target]]
issue = 6
title = "check"
kind = "decode.check"
metric = "correctness.value"
op = "<="
value = 0.001

[[target]]
issue = 6
title = "errored run measured nothing"
kind = "bench.decode"
metric = "timing.median"
op = "<="
value = 2
""")
    res = evaluate(load_targets(tfile), tmp_path)
    assert res[0].met is False and res[0].measured == 2.9e-3
    assert res[1].met is None
