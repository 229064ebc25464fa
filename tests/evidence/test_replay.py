import json
import subprocess
import sys

from floorline.evidence.schema import Timing
from floorline.evidence.store import new_packet, write_packet

# A command that measures something and writes a packet, as every floorline bench does.
_SCRIPT = """
import sys, time
from pathlib import Path
from floorline.evidence.schema import Timing
from floorline.evidence.store import new_packet, write_packet
t0 = time.perf_counter(); sum(range(200000)); us = (time.perf_counter() - t0) * 1e6
t = Timing(method="wall_clock_cpu", warmup=0, iterations=1, median=us, min=us, p10=us, p90=us, max=us, unit="us")
write_packet(new_packet("bench.toy", params={"n": 200000}, timing=t, command=sys.argv), Path(sys.argv[1]), "new")
"""


def test_replay_reruns_and_compares(tmp_path):
    out = tmp_path / "new"
    cmd = [sys.executable, "-c", _SCRIPT, str(out)]
    old_t = Timing(method="wall_clock_cpu", warmup=0, iterations=1, median=1e9, min=1e9, p10=1e9, p90=1e9,
                   max=1e9, unit="us")
    old = write_packet(new_packet("bench.toy", params={"n": 200000}, timing=old_t, command=cmd), tmp_path, "old")
    r = subprocess.run([sys.executable, "-m", "floorline", "evidence", "replay", str(old), "--json"],
                       capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout[r.stdout.index("{"):])
    assert res["old_median"] == 1e9 and 0 < res["new_median"] < 1e9
    assert res["new_over_old"] == res["new_median"] / 1e9
    assert (out / "new.json").exists()
