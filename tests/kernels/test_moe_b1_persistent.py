"""The persistent batch-1 expert kernel (kernels/moe_b1_persistent.py): gate-up + SwiGLU with RMSNorm
folded in, then down weighted and added into the residual.

CPU (interpreter): the two-launch mode (PHASE 1 then PHASE 2; a grid barrier cannot open when programs
run one at a time) against float64 and against the two moe_gemv_b1 calls it replaces, on odd sizes that
leave partial row blocks and K tiles, with grids smaller than the tile count (each program loops, the
down lookahead crosses tile boundaries) and larger (idle programs), FP8 scales, and NaN-poisoned
outputs and unselected experts. GPU (-m gpu, not yet run): the one-launch mode (grid barrier) against the
two-launch mode, eagerly, under PDL and in a CUDA graph replayed 100 times with new inputs each time
(the barrier's counter is never reset: its arrival word must be back at 0 and no spin may time out).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.gemv import GemvConfig
from floorline.kernels.moe_b1_persistent import (
    ARRIVE,
    GEN,
    TIMEOUT,
    MoePersistentConfig,
    barrier_counter,
    moe_b1_persistent,
    moe_b1_persistent_timed_out,
    resident_per_sm,
)
from floorline.kernels.moe_gemv import moe_gemv_b1
from tests.kernels.test_fused_b1 import EPS, err, real, rms, setup

ROOT = Path(__file__).resolve().parents[2]
TOL = 2e-6


def reference(x, gain, gu, gus, dn, dns, ids, wts):
    """float64 (act, res after the adds) for one token."""
    inter = gu.shape[1] // 2
    h = rms(x, gain)[0]
    gw, uw = real(gu, gus)[ids.long(), :inter], real(gu, gus)[ids.long(), inter:]
    gate, up = gw @ h, uw @ h
    act = gate / (1 + torch.exp(-gate)) * up
    rows = torch.einsum("knh,kh->kn", real(dn, dns)[ids.long()], act)
    if wts is not None:
        rows = rows * wts.double()[:, None]
    return act, x.double() + rows.sum(0, keepdim=True)


def run_persistent(d, x, gain, gu, gus, dn, dns, ids, wts, cfg, sm_count, act_stride=None, **kw):
    inter = gu.shape[1] // 2
    k = ids.numel()
    # act as a strided view, like model/fast.py's self.act[:k, :I] (rows as wide as the widest MLP)
    buf = torch.full((k, act_stride or inter), float("nan"), device=d)
    act = buf[:, :inter]
    res = x.clone().to(d)
    moe_b1_persistent(res, gu.to(d), dn.to(d), ids.to(d), None if wts is None else wts.to(d), act,
                      scale_gu=None if gus is None else gus.to(d), scale_down=None if dns is None else dns.to(d),
                      norm=(gain.to(d), EPS), counter=barrier_counter(d), cfg=cfg, sm_count=sm_count, **kw)
    return act, res


CASES = [
    # k, E, H, inter, dtype, gate-up tile, down tile, SMs x programs per SM (grid), double buffer
    (8, 20, 96, 40, "bf16", (16, 32), (16, 16), (2, 3), True),   # 24 gate-up / 48 down tiles over 6 programs
    (2, 6, 130, 33, "fp8", (16, 64), (32, 16), (1, 2), True),    # partial row blocks and K tiles, FP8 scales
    (3, 7, 70, 24, "bf16", (8, 16), (16, 64), (4, 16), False),   # 64 programs > tiles: idle programs
    (1, 1, 50, 36, "bf16", (16, 16), (8, 8), (3, 1), True),      # a dense MLP: one expert, no routing weight
]


@pytest.mark.parametrize("k,E,H,inter,wdtype,gu_tile,dn_tile,grid,dbuf", CASES)
def test_two_launch_mode_matches_float64(device, k, E, H, inter, wdtype, gu_tile, dn_tile, grid, dbuf):
    x, gain, gu, gus, dn, dns, ids, wts = setup(k, E, H, inter, wdtype, 11 * k + H)
    if E == 1:
        wts = None
    cfg = MoePersistentConfig(programs_per_sm=grid[1], gate_up_block_n=gu_tile[0], gate_up_block_k=gu_tile[1],
                              down_block_n=dn_tile[0], down_block_k=dn_tile[1], double_buffer=dbuf)
    act, res = run_persistent(device, x, gain, gu, gus, dn, dns, ids, wts, cfg, grid[0], act_stride=inter + 5,
                              split_phases=True)
    want_act, want_res = reference(x, gain, gu, gus, dn, dns, ids, wts)
    assert err(act, want_act) < TOL
    assert err(res, want_res) < TOL


@pytest.mark.parametrize("k,E,H,inter,wdtype,gu_tile,dn_tile,grid,dbuf", CASES[:2])
def test_matches_the_two_moe_gemv_b1_calls(device, k, E, H, inter, wdtype, gu_tile, dn_tile, grid, dbuf):
    """Same tiles through the kernels it replaces (model/fast.py's _step_b1): act equal (same K loop order
    and epilogue; bit-identical in the interpreter, which has no FMA contraction to differ between two
    compiled kernels), the residual equal up to the order of the fp32 atomic adds."""
    x, gain, gu, gus, dn, dns, ids, wts = setup(k, E, H, inter, wdtype, 5 * k + H)
    d = device
    cfg = MoePersistentConfig(programs_per_sm=grid[1], gate_up_block_n=gu_tile[0], gate_up_block_k=gu_tile[1],
                              down_block_n=dn_tile[0], down_block_k=dn_tile[1], double_buffer=dbuf)
    act, res = run_persistent(d, x, gain, gu, gus, dn, dns, ids, wts, cfg, grid[0], split_phases=True)
    act2 = torch.full((k, inter), float("nan"), device=d)
    res2 = x.clone().to(d)
    gus_d, dns_d = (None, None) if gus is None else (gus.to(d), dns.to(d))
    moe_gemv_b1(res2, gu.to(d), ids.to(d), act2, scale=gus_d, swiglu=True, norm=(gain.to(d), EPS),
                cfg=GemvConfig(block_n=gu_tile[0], block_k=gu_tile[1], double_buffer=dbuf))
    moe_gemv_b1(act2, dn.to(d), ids.to(d), res2, scale=dns_d, slot_weights=wts.to(d), accumulate=True,
                cfg=GemvConfig(block_n=dn_tile[0], block_k=dn_tile[1], double_buffer=dbuf))
    if device == "cpu":
        assert torch.equal(act, act2)
    assert float((act - act2).abs().max()) <= 1e-6 * float(act2.abs().max())
    scale = float(res2.abs().max())
    assert float((res - res2).abs().max()) <= 1e-6 * scale


def test_counter_untouched_in_two_launch_mode(device):
    x, gain, gu, gus, dn, dns, ids, wts = setup(2, 4, 40, 24, "bf16", 3)
    counter = barrier_counter(device)
    counter[GEN] = 12345  # any generation: the two-launch mode never reads it
    res = x.clone().to(device)
    act = torch.empty(2, 24, device=device)
    moe_b1_persistent(res, gu.to(device), dn.to(device), ids.to(device), wts.to(device), act,
                      norm=(gain.to(device), EPS), counter=counter, split_phases=True, sm_count=1,
                      cfg=MoePersistentConfig(gate_up_block_k=32, down_block_k=16))
    assert counter[ARRIVE] == 0 and counter[GEN] == 12345 and not moe_b1_persistent_timed_out(counter)


@pytest.mark.parametrize("field,kw", [
    ("programs_per_sm", {"programs_per_sm": 5, "num_warps": 16}),  # 80 warps > 64 per SM
    ("programs_per_sm", {"programs_per_sm": 0}),
    ("down_block_k", {"down_block_k": 96}),                        # tl.arange needs a power of two
    ("num_warps", {"num_warps": 64}),
    ("spin_limit", {"spin_limit": 0}),
])
def test_config_refuses_in_one_line(field, kw):
    with pytest.raises(InputError, match=f"moe_persistent.{field}") as e:
        MoePersistentConfig(**kw)
    assert "\n" not in str(e.value)


def test_launcher_refuses_bad_shapes_and_the_barrier_in_the_interpreter(device, triton_interpret):
    x, gain, gu, gus, dn, dns, ids, wts = setup(2, 4, 40, 24, "bf16", 4)
    d = device
    args = (x.to(d), gu.to(d), dn.to(d), ids.to(d), wts.to(d))
    with pytest.raises(InputError, match="act must be float32"):
        moe_b1_persistent(*args, torch.empty(3, 24, device=d), norm=(gain.to(d), EPS), counter=barrier_counter(d))
    with pytest.raises(InputError, match="w_down"):
        moe_b1_persistent(x.to(d), gu.to(d), dn[:, :, :20].to(d), ids.to(d), wts.to(d), torch.empty(2, 24, device=d),
                          norm=(gain.to(d), EPS), counter=barrier_counter(d))
    with pytest.raises(InputError, match="counter"):
        moe_b1_persistent(*args, torch.empty(2, 24, device=d), norm=(gain.to(d), EPS),
                          counter=torch.zeros(4, dtype=torch.int32, device=d))
    with pytest.raises(InputError, match="scale_gu and scale_down"):
        moe_b1_persistent(*args, torch.empty(2, 24, device=d), norm=(gain.to(d), EPS), counter=barrier_counter(d),
                          scale_gu=torch.ones(4, 48, device=d))
    if triton_interpret:
        with pytest.raises(InputError, match="deadlock"):
            moe_b1_persistent(*args, torch.empty(2, 24, device=d), norm=(gain.to(d), EPS), counter=barrier_counter(d),
                              split_phases=False)


@pytest.mark.parametrize("regs,warps,shared,want", [
    (167, 4, 0, 3),    # session 5's double-buffered 16 x 256 gate-up build: 3 programs per SM
    (168, 4, 0, 3),    # 168 x 32 = 5376 registers per warp, 3 warps per 16K partition
    (170, 4, 0, 2),    # 176 after rounding: 2 warps per partition
    (40, 8, 0, 6),     # 1280 registers per warp: 12 warps per partition, 6 programs of 8 warps
    (32, 16, 0, 4),    # 64 warps per SM is the limit
    (32, 1, 0, 32),    # 32 blocks per SM
    (64, 4, 100 * 1024, 2),  # shared memory: 2 x (100 + 1) KiB of 228
    (255, 32, 0, 0),   # does not fit at all
])
def test_resident_per_sm(regs, warps, shared, want):
    assert resident_per_sm(regs, warps, shared) == want


def test_launch_configs_round_trip_with_persistent():
    from floorline.model.fast import LaunchConfigs

    on = LaunchConfigs(moe_persistent=MoePersistentConfig(programs_per_sm=2, down_block_k=256))
    assert LaunchConfigs().moe_persistent is None
    assert LaunchConfigs.from_dict(on.as_dict()) == on
    assert LaunchConfigs.from_dict(LaunchConfigs().as_dict()) == LaunchConfigs()
    with pytest.raises(InputError, match="launch.moe_persistent"):
        LaunchConfigs.from_dict({**on.as_dict(), "moe_persistent": {"programs_per_sm": 2, "tile": 1}})
    with pytest.raises(InputError, match="moe_persistent.programs_per_sm"):
        LaunchConfigs.from_dict({**on.as_dict(), "moe_persistent": {"programs_per_sm": 40}})


def test_sm90_compiles_the_barrier_build():
    """The one-launch build (PHASE=0: grid barrier, inline-asm acquire loads) at the bench's shapes compiles
    for sm_90, without spilling a tile, and fits the programs per SM its default config asks for; its PTX has the
    gpu-scope acq_rel arrival, the release generation bump and the acquire spin. Runs the compile in a
    subprocess (this process interprets the kernels)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "regs_moe_b1_persistent.py"), "--json", "--quick"],
                       capture_output=True, text=True, env=env, timeout=900)
    if p.returncode == 3:
        pytest.skip(p.stderr.strip()[:200])
    assert p.returncode == 0, p.stderr[-2000:]
    import json

    rows = json.loads(p.stdout)["builds"]
    bar = [r for r in rows if r["phase"] == 0]
    # a few bytes of stack: one word kept around the gate-up tile loop (SASS read in session 7); a spilled
    # weight tile would be hundreds of bytes
    assert bar and all(r["spills"] <= 32 and r["per_sm"] >= r["config"]["programs_per_sm"] for r in bar)
    assert all(r["ptx_arrive"] and r["ptx_release"] and r["ptx_acquire"] for r in bar)


# ---- GPU only (not yet run) ----

def _bench_inputs(seed, E=128, H=2048, inter=768, k=8, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(1, H, generator=g)
    gain = (1 + 0.3 * torch.randn(H, generator=g)).to(torch.bfloat16)
    ids = torch.randperm(E, generator=g)[:k].to(torch.int32)
    wts = torch.rand(k, generator=g)
    return x.cuda(), gain.cuda(), ids.cuda(), wts.cuda()


@pytest.mark.gpu
@pytest.mark.parametrize("pdl", [False, True])
def test_gpu_one_launch_matches_two_launches(pdl):
    if pdl and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("PDL needs sm_90")
    E, H, inter, k = 128, 2048, 768, 8
    g = torch.Generator().manual_seed(0)
    gu = (torch.randn(E, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16).cuda()
    dn = (torch.randn(E, H, inter, generator=g) / inter**0.5).to(torch.bfloat16).cuda()
    counter = barrier_counter("cuda")
    for seed in range(5):
        x, gain, ids, wts = _bench_inputs(seed)
        outs = []
        for split in (True, False):
            res, act = x.clone(), torch.full((k, inter), float("nan"), device="cuda")
            moe_b1_persistent(res, gu, dn, ids, wts, act, norm=(gain, EPS), counter=counter, split_phases=split, pdl=pdl)
            outs.append((res, act))
        torch.cuda.synchronize()
        # two compiled builds (PHASE 1 and PHASE 0) may contract FMAs differently: near, not bitwise, equal
        assert float((outs[0][1] - outs[1][1]).abs().max()) <= 1e-6 * float(outs[0][1].abs().max())
        assert float((outs[0][0] - outs[1][0]).abs().max()) <= 1e-5 * float(outs[0][0].abs().max())
    assert int(counter[ARRIVE]) == 0 and not moe_b1_persistent_timed_out(counter)


@pytest.mark.gpu
def test_gpu_graph_replays_keep_the_barrier_consistent():
    """100 replays of one captured one-launch call, new residual / experts / weights copied in before each:
    each replay equals the two-launch result, the arrival word is back at 0, the generation moved once per
    call, and no spin timed out."""
    E, H, inter, k = 128, 2048, 768, 8
    g = torch.Generator().manual_seed(1)
    gu = (torch.randn(E, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16).cuda()
    dn = (torch.randn(E, H, inter, generator=g) / inter**0.5).to(torch.bfloat16).cuda()
    counter = barrier_counter("cuda")
    x, gain, ids, wts = _bench_inputs(100)
    res, act = x.clone(), torch.zeros(k, inter, device="cuda")
    run = lambda: moe_b1_persistent(res, gu, dn, ids, wts, act, norm=(gain, EPS), counter=counter)  # noqa: E731
    run()  # compile (and the residency query) outside the capture
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        run()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    torch.cuda.synchronize()
    gen0 = int(counter[GEN])
    for i in range(100):
        x1, _, ids1, wts1 = _bench_inputs(200 + i)
        res.copy_(x1)
        ids.copy_(ids1)
        wts.copy_(wts1)
        graph.replay()
        want, want_act = x1.clone(), torch.zeros(k, inter, device="cuda")
        moe_b1_persistent(want, gu, dn, ids, wts, want_act, norm=(gain, EPS), counter=counter, split_phases=True)
        torch.cuda.synchronize()
        assert float((act - want_act).abs().max()) <= 1e-6 * float(want_act.abs().max()), i
        assert float((res - want).abs().max()) <= 1e-5 * float(want.abs().max()), i
    assert int(counter[ARRIVE]) == 0
    assert (int(counter[GEN]) - gen0) % 2**32 == 100
    assert int(counter[TIMEOUT]) == 0


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_fast_decoder_batch1_with_persistent_matches_float64(dtype, monkeypatch, triton_interpret):
    """The decoder's batch-1 step with LaunchConfigs.moe_persistent set (tiny-moe: two MoE layers and one
    dense MLP layer, which runs as one unweighted expert with act rows narrower than the buffer's)."""
    if not triton_interpret:  # random_weights builds CPU tensors: compiled kernels cannot take them
        pytest.skip("CPU interpreter only (the decoder is built on CPU tensors)")
    import floorline.model.fast as fast
    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs
    from floorline.model.run import check
    from floorline.model.weights import random_weights

    def refuse(*a, **k):
        raise AssertionError("moe_gemv_b1 called: the persistent path was not taken")

    monkeypatch.setattr(fast, "moe_gemv_b1", refuse)  # batch 1 must not touch the two-launch path
    launch = LaunchConfigs(moe_persistent=MoePersistentConfig(programs_per_sm=2, gate_up_block_k=32, down_block_k=16))
    w = random_weights(builtin("tiny-moe"), dtype=dtype, seed=13)
    r = check(w, [[3, 4, 5, 6, 7]], steps=3, launch=launch)
    assert max(r.per_step_kv_matched) < 1e-3 and r.max_rel_l2 < 2e-2 and r.greedy_match
