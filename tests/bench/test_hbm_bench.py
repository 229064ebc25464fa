"""bench hbm without a GPU: datasheet lookup with its source, one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys

from floorline.bench.hbm import SEARCH_SPACE, datasheet_peak_tbps


def test_datasheet_peak_has_a_source():
    peak, source = datasheet_peak_tbps("NVIDIA H200")
    assert peak == 4.8 and "datasheet" in source
    assert datasheet_peak_tbps("Some Other GPU") == (None, None)


def test_search_space_covers_the_knobs():
    assert set(SEARCH_SPACE) == {"block", "num_warps", "unroll", "ctas_per_sm", "cache"}


def test_bad_op_is_one_line_exit_2():
    p = subprocess.run([sys.executable, "-m", "floorline", "bench", "hbm", "--op", "sideways"], capture_output=True, text=True)
    assert p.returncode == 2 and "--op" in p.stderr and "Traceback" not in p.stderr
