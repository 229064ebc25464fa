"""The decode timeline's arithmetic on synthetic traces (the GPU run is in scripts/device_*), and the
launch round trip it uses to reuse a packet's tuned configuration."""

from __future__ import annotations

import random

import pytest

from floorline.bench.decode_timeline import increments, kernel_events, split_steps, summarize
from floorline.errors import InputError
from floorline.model.fast import LaunchConfigs


def _trace(steps, layer, layers, rng):
    """Chrome-trace kernel events: `steps` replays of `layers` layers of (name, dur, overlap) kernels;
    a negative overlap starts the kernel before the previous one ends (PDL), a positive one leaves a gap."""
    ev, t = [], 1000.0
    for _ in range(steps):
        for _ in range(layers):
            for name, dur, gap in layer:
                t += gap
                ev.append({"cat": "kernel", "name": name, "ts": t, "dur": dur})
                t += dur
        t += 50 + rng.random()
    rng.shuffle(ev)
    ev.append({"cat": "cpu_op", "name": "replay", "ts": 0.0, "dur": 5.0})  # not a kernel
    return {"traceEvents": ev}


def test_increments_sum_to_span_and_attribute_overlap():
    layer = [("_gemv_kernel", 7.0, 0.5), ("_attn_kernel", 9.0, -3.0), ("_combine_kernel", 1.5, 0.25),
             ("_moe_gemv_b1_kernel", 16.0, -1.0)]
    steps = split_steps(kernel_events(_trace(3, layer, 5, random.Random(1))), 3)
    s = steps[1]
    inc = increments(s)
    span = s[-1]["ts"] + s[-1]["dur"] - s[0]["ts"]
    assert sum(inc) == pytest.approx(span)
    # attention starts 3 us before qkv ends: it adds 9 - 3 = 6 us, and its 9 us duration stays visible
    assert inc[1] == pytest.approx(6.0) and s[1]["dur"] == 9.0
    assert inc[2] == pytest.approx(1.75)  # a gap counts against the kernel after it
    out = summarize(steps)
    by = {k["kernel"]: k for k in out["kernels"]}
    assert by["_moe_gemv_b1_kernel"]["launches_per_step"] == 5
    assert by["_attn_kernel"]["increment_us"] == pytest.approx(5 * 6.0)
    assert by["_attn_kernel"]["duration_us"] == pytest.approx(5 * 9.0)
    assert out["span_us"] == pytest.approx(sum(k["increment_us"] for k in out["kernels"]))
    assert [k["kernel"] for k in out["one_layer"]] == [n for n, _, _ in layer]
    assert out["one_layer"][0]["start_us"] == 0.0


def test_split_steps_refuses_uneven_or_different_replays():
    ev = kernel_events(_trace(2, [("a", 1.0, 0.0), ("b", 2.0, 0.0)], 3, random.Random(2)))
    with pytest.raises(InputError, match="split"):
        split_steps(ev[:-1], 2)
    ev[0]["name"] = "c"
    with pytest.raises(InputError, match="different"):
        split_steps(ev, 2)


def test_launch_round_trip_and_unknown_field():
    base = LaunchConfigs()
    assert LaunchConfigs.from_dict(base.as_dict()) == base
    d = base.as_dict()
    d["router"]["split_k"] = 4
    d["attention"]["min_split_tokens"] = 256
    got = LaunchConfigs.from_dict(d)
    assert got.router.split_k == 4 and got.attention.min_split_tokens == 256
    with pytest.raises(InputError, match="'warp'"):
        LaunchConfigs.from_dict({**base.as_dict(), "warp": 1})
    with pytest.raises(InputError, match="launch.qkv"):
        LaunchConfigs.from_dict({**base.as_dict(), "qkv": {"block_n": 4, "tile": 2}})


def test_cli_refuses_bad_input_in_one_line(tmp_path):
    """Exit 2, one line naming the field, before any weights are built."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "floorline", "bench", "decode-timeline", *args],
                              capture_output=True, text=True, timeout=120)

    bad_packet = tmp_path / "p.json"
    bad_packet.write_text("{}")
    for args, field in ((["--variants", "tuned,bogus"], "--variants"), (["--context", "1k,2k"], "--context"),
                        (["--launch-from", str(bad_packet)], "--launch-from")):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert field in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_step_flips_toggle_one_switch_each_and_round_trip():
    """bench decode's step choice (session 8 switches): each flip changes exactly its own fields, flipping
    twice gives the launch back, and a launch carrying them survives the packet round trip."""
    from dataclasses import replace

    from floorline.bench.decode import step_flips

    base = LaunchConfigs()
    (l1, a), (l2, b), (l3, c), (l6, f), (l7, h) = step_flips(base)
    assert c.down.preload != base.down.preload and replace(c, down=base.down) == base and "down" in l3
    assert a.attention.one_tile != base.attention.one_tile and replace(a, attention=base.attention) == base
    dense = ("qkv", "o", "lm_head", "router")
    assert all(getattr(b, k).preload != getattr(base, k).preload for k in dense)
    assert replace(b, **{k: getattr(base, k) for k in dense}) == base
    assert step_flips(a)[0][1] == base and step_flips(b)[1][1] == base
    assert "one tile" in l1 and "preloaded" in l2
    assert LaunchConfigs.from_dict(b.as_dict()) == b
    assert all(x.prefetch_next == "off" for _, x in step_flips(base))  # lost in session 10: no longer a flip
    assert f.attention.num_warps == 8 and replace(f, attention=base.attention) == base and "8 warps" in l6
    assert step_flips(f)[3][1] == base
    assert h.attention.block_n == 128 and replace(h, attention=base.attention) == base and "128-token" in l7
    assert step_flips(h)[4][1] == base and LaunchConfigs.from_dict(h.as_dict()) == h


def test_single_gemv_preload_variants_flip_only_their_gemv():
    """Session 11's timeline variants: o's preload alone, qkv's alone (the suspects for the attention's
    slower post-wait path in the step); each differs from the base launch in that one field."""
    from dataclasses import replace

    from floorline.bench.decode_timeline import launch_variants

    base = replace(LaunchConfigs(), o=replace(LaunchConfigs().o, preload=True))
    v = launch_variants(base)
    assert v["o-preload"].o.preload is False and replace(v["o-preload"], o=base.o) == base
    assert v["qkv-preload"].qkv.preload is True and replace(v["qkv-preload"], qkv=base.qkv) == base


def test_prefetch_next_refuses_unknown_values():
    """A packet's launch with a prefetch_next this version does not know is a one-line InputError."""
    from floorline.errors import InputError

    with pytest.raises(InputError, match="prefetch_next.*off, l2, evict-last"):
        LaunchConfigs(prefetch_next="evict_last")
    with pytest.raises(InputError, match="prefetch_next"):
        LaunchConfigs.from_dict({**LaunchConfigs().as_dict(), "prefetch_next": "on"})
