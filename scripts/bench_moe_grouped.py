"""GPU benchmark: the MoE expert path at batch > 1, old (moe_gemv's grouped mode) vs new
(kernels/moe_grouped.py), on qwen3-30b-a3b expert shapes (hidden 2048, moe_intermediate 768, 128
experts, top-8, random routing), bf16.

The floor is the distinct experts' bytes (every expert any token chose, read once) over the HBM
read ceiling. Each timing replays a CUDA graph holding gate-up+SwiGLU and down for LAYERS layers,
each with its own weights (1.2 GB a layer, far beyond the 50 MB L2) and routing, as the decode step
does. Also sweeps a few tile configs for the new kernel and checks old and new agree.
Usage (device): python3 scripts/bench_moe_grouped.py [--batches 64,8] [--layers 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from floorline.kernels.gemv import GemvConfig
from floorline.kernels.moe_gemv import moe_gemv
from floorline.kernels.moe_grouped import DOWN, GATE_UP, GroupedConfig, moe_grouped

H, INTER, E, TOPK = 2048, 768, 128, 8
# round-0 launch configs (tuned at batch 1) that the old grouped path ran with in bench decode
OLD_GATE_UP = GemvConfig(block_n=4, block_k=512, num_warps=4, num_stages=4)
OLD_DOWN = GemvConfig(block_n=16, block_k=128, num_warps=4, num_stages=3, split_k=2)
SWEEP_GATE_UP = [GATE_UP, GroupedConfig(32, 128, 8, 4, 3), GroupedConfig(64, 128, 8, 8, 3),
                 GroupedConfig(64, 64, 8, 4, 4), GroupedConfig(32, 256, 8, 8, 3)]
SWEEP_DOWN = [DOWN, GroupedConfig(32, 64, 8, 4, 4), GroupedConfig(32, 128, 8, 4, 3),
              GroupedConfig(64, 64, 8, 4, 3), GroupedConfig(64, 128, 8, 8, 3)]


def make_layers(B: int, L: int, dev: torch.device, g: torch.Generator) -> list[dict]:
    layers = []
    for _ in range(L):
        gu = (torch.randn(E, 2 * INTER, H, device=dev, generator=g) / H**0.5).to(torch.bfloat16)
        dn = (torch.randn(E, H, INTER, device=dev, generator=g) / INTER**0.5).to(torch.bfloat16)
        ids = torch.rand(B, E, device=dev, generator=g).topk(TOPK, dim=1).indices.to(torch.int32)
        slot_e = ids.flatten().contiguous()
        layers.append(dict(gu=gu, dn=dn, slot_e=slot_e, order=torch.argsort(slot_e, stable=True).to(torch.int32),
                           wts=torch.rand(B * TOPK, device=dev, generator=g), distinct=int(slot_e.unique().numel())))
    return layers


def run_old(x, lay, act, out, B):
    moe_gemv(x, lay["gu"], lay["slot_e"], act, tokens=B, swiglu=True, order=lay["order"], cfg=OLD_GATE_UP,
             grouped=False)
    moe_gemv(act, lay["dn"], lay["slot_e"], out, tokens=B, slot_weights=lay["wts"], order=lay["order"],
             cfg=OLD_DOWN, grouped=False)


def run_new(x, lay, act, out, gu_cfg=GATE_UP, dn_cfg=DOWN):
    # the decode step's down output keeps the batch-1 tuning's split-K layout (OLD_DOWN.split_k rows
    # per slot); moe_grouped fills row 0 with the sum and the others with zeros
    moe_grouped(x, lay["gu"], lay["slot_e"], lay["order"], act, swiglu=True, cfg=gu_cfg)
    moe_grouped(act, lay["dn"], lay["slot_e"], lay["order"], out, slot_weights=lay["wts"], split_k=OLD_DOWN.split_k,
                cfg=dn_cfg)


def graph_us(fn, reps: int = 20, trials: int = 7) -> float:
    """Median us per fn() call, fn replayed reps times inside one CUDA graph."""
    fn()  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(trials):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / reps)
    return statistics.median(times)


def bench_batch(B: int, L: int, ceiling: float, dev: torch.device) -> dict:
    g = torch.Generator(device=dev).manual_seed(B)
    layers = make_layers(B, L, dev, g)
    x = torch.randn(B, H, device=dev, generator=g)
    act = torch.empty(B * TOPK, INTER, device=dev)
    act_old = torch.empty_like(act)
    out = torch.empty(B * TOPK * OLD_DOWN.split_k, H, device=dev)
    out_old = torch.empty_like(out)
    per_expert = (2 * INTER * H + H * INTER) * 2
    nbytes = sum(lay["distinct"] for lay in layers) * per_expert
    # agreement: both paths must give the same rows (the old path's split-K partials summed)
    run_old(x, layers[0], act_old, out_old, B)
    run_new(x, layers[0], act, out)
    new_sum = out.view(B * TOPK, OLD_DOWN.split_k, H).sum(1)
    rel = float((out_old.view(B * TOPK, OLD_DOWN.split_k, H).sum(1) - new_sum).norm() / new_sum.norm())

    def all_layers(f):
        return lambda: [f(lay) for lay in layers]

    old_us = graph_us(all_layers(lambda lay: run_old(x, lay, act_old, out_old, B)))
    new_us = graph_us(all_layers(lambda lay: run_new(x, lay, act, out)))
    row = dict(batch=B, layers=L, distinct_experts_per_layer=nbytes / per_expert / L, bytes_per_layer=nbytes / L,
               floor_us_per_layer=nbytes / L / ceiling / 1e6, old_us_per_layer=old_us / L, new_us_per_layer=new_us / L,
               old_tbps=nbytes / old_us / 1e6, new_tbps=nbytes / new_us / 1e6, speedup=old_us / new_us,
               fraction_of_ceiling=nbytes / new_us / 1e6 / ceiling, old_vs_new_rel_l2=rel)
    # tile sweep, one matrix at a time (the other fixed at its default)
    gu_bytes = sum(lay["distinct"] for lay in layers) * 2 * INTER * H * 2
    dn_bytes = nbytes - gu_bytes
    sweep = []
    for c in SWEEP_GATE_UP:
        us = graph_us(all_layers(lambda lay, c=c: moe_grouped(x, lay["gu"], lay["slot_e"], lay["order"], act,
                                                               swiglu=True, cfg=c)))
        sweep.append(dict(op="gate_up", cfg=c.__dict__, us_per_layer=us / L, tbps=gu_bytes / us / 1e6))
    for c in SWEEP_DOWN:
        us = graph_us(all_layers(lambda lay, c=c: moe_grouped(act, lay["dn"], lay["slot_e"], lay["order"], out,
                                                               slot_weights=lay["wts"], split_k=OLD_DOWN.split_k,
                                                               cfg=c)))
        sweep.append(dict(op="down", cfg=c.__dict__, us_per_layer=us / L, tbps=dn_bytes / us / 1e6))
    row["sweep"] = sweep
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="64,8")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_moe_grouped: needs a CUDA GPU", file=sys.stderr)
        return 2
    from floorline.bench.hbm import read_ceiling

    dev = torch.device("cuda")
    ceiling = read_ceiling(quick=True).tbps
    res = dict(device=torch.cuda.get_device_name(), hbm_read_ceiling_tbps=ceiling, rows=[])
    for B in [int(b) for b in a.batches.split(",")]:
        row = bench_batch(B, a.layers, ceiling, dev)
        res["rows"].append(row)
        print(f"batch {B}: {row['distinct_experts_per_layer']:.1f} experts/layer, {row['bytes_per_layer'] / 1e6:.0f} MB; "
              f"old {row['old_us_per_layer']:.1f} us ({row['old_tbps']:.2f} TB/s), new {row['new_us_per_layer']:.1f} us "
              f"({row['new_tbps']:.2f} TB/s, {100 * row['fraction_of_ceiling']:.1f}% of {ceiling:.2f}), "
              f"x{row['speedup']:.2f}, old-vs-new rel {row['old_vs_new_rel_l2']:.1e}")
        for s in row["sweep"]:
            c = s["cfg"]
            print(f"  sweep {s['op']:8s} bn={c['block_n']:3d} bk={c['block_k']:3d} T={c['tokens']} w={c['num_warps']} "
                  f"st={c['num_stages']}: {s['us_per_layer']:7.1f} us {s['tbps']:.2f} TB/s")
        if a.json:  # after each batch: a time limit mid-run still leaves the finished rows
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
