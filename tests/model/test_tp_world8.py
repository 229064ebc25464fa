"""World sizes 2..8 on the CPU (issue 9's code path; no 8-GPU machine is lent): head splits with kv
heads replicated when ranks outnumber them, per-rank shard generation (weights.random_shard), and a
TP-8 decode over generated shards against the float64 reference of the model those shards form."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.reference import ReferenceModel
from floorline.model.tp import EmulatedGroup, RankDecoder, local_config
from floorline.model.weights import LayerWeights, Linear, ModelWeights, head_split, random_shard

F64 = torch.float64


def _store(t: torch.Tensor) -> torch.Tensor:
    """K/V as the fast path's bf16 cache holds them (the CPU interpreter truncates fp32 -> bf16)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return (t.float().view(torch.int32) & ~0xFFFF).view(torch.float32).to(F64)
    return t.to(torch.bfloat16).to(F64)


def assemble(parts: list[ModelWeights]) -> ModelWeights:
    """The float64 full model a set of shards forms (each kv head taken from a rank that holds it)."""
    cfg, size = parts[0].cfg, len(parts)
    d, hq = cfg.head_dim, cfg.num_attention_heads // size
    layers = []
    for i in range(cfg.num_hidden_layers):
        Ls = [p.layers[i] for p in parts]
        qkv = [L.qkv.real(F64) for L in Ls]
        hkv = head_split(cfg, 0, size)[1]
        q = torch.cat([x[: hq * d] for x in qkv])
        ks, vs = [], []
        for j in range(cfg.num_key_value_heads):
            r = next(r for r in range(size) if head_split(cfg, r, size)[2] <= j < head_split(cfg, r, size)[2] + hkv)
            o = j - head_split(cfg, r, size)[2]
            ks.append(qkv[r][hq * d + o * d: hq * d + (o + 1) * d])
            vs.append(qkv[r][(hq + hkv) * d + o * d: (hq + hkv) * d + (o + 1) * d])
        c = Ls[0].gate_up.w.shape[1] // 2
        gu = [L.gate_up.real(F64) for L in Ls]
        layers.append(LayerWeights(
            attn_norm=Ls[0].attn_norm.to(F64), qkv=Linear(torch.cat([q, *ks, *vs])), q_norm=Ls[0].q_norm.to(F64),
            k_norm=Ls[0].k_norm.to(F64), o=Linear(torch.cat([L.o.real(F64) for L in Ls], dim=1)),
            mlp_norm=Ls[0].mlp_norm.to(F64),
            gate_up=Linear(torch.cat([x[:, :c] for x in gu] + [x[:, c:] for x in gu], dim=1)),
            down=Linear(torch.cat([L.down.real(F64) for L in Ls], dim=2)),
            router=None if Ls[0].router is None else Ls[0].router.to(F64)))
    p = parts[0]
    embed = p.embed.to(F64)
    head = embed if p.lm_head is p.embed else p.lm_head.to(F64)
    return ModelWeights(cfg, "float64", embed, layers, p.norm.to(F64), head)


def _cfg8():
    # 8 q heads over 2 kv heads: at TP 8 each kv head is held by 4 ranks
    return dataclasses.replace(builtin("tiny-moe"), num_attention_heads=8, num_key_value_heads=2).cut(layers=2)


@pytest.mark.parametrize("size", [2, 4, 8])
def test_head_split_covers_every_head(size):
    cfg = _cfg8()
    seen = set()
    for r in range(size):
        hq, hkv, kv0 = head_split(cfg, r, size)
        group = cfg.num_attention_heads // cfg.num_key_value_heads
        for h in range(r * hq, (r + 1) * hq):  # every q head's kv head is on its rank
            assert kv0 <= h // group < kv0 + hkv
        seen.update(range(kv0, kv0 + hkv))
    assert seen == set(range(cfg.num_key_value_heads))


@pytest.mark.parametrize("size,dtype", [(2, "fp8"), (8, "bf16"), (8, "fp8")])
def test_random_shard_shapes_and_replication(size, dtype):
    cfg = _cfg8()
    parts = [random_shard(cfg, r, size, dtype, seed=4) for r in range(size)]
    loc = local_config(cfg, size)
    for rank, p in enumerate(parts):
        L = p.layers[0]
        assert p.tp == (rank, size)
        assert L.qkv.w.shape == (loc.q_size + 2 * loc.kv_size, cfg.hidden_size)
        assert L.o.w.shape == (cfg.hidden_size, loc.q_size)
        assert L.gate_up.w.shape == (cfg.num_experts, 2 * loc.moe_intermediate_size, cfg.hidden_size)
        assert L.down.w.shape == (cfg.num_experts, cfg.hidden_size, loc.moe_intermediate_size)
        for a, b in ((p.embed, parts[0].embed), (p.lm_head, parts[0].lm_head), (L.router, parts[0].layers[0].router),
                     (L.attn_norm, parts[0].layers[0].attn_norm)):
            assert torch.equal(a, b)  # replicated: identical on every rank
        if dtype == "fp8":  # per-channel scale: every row reaches the FP8 maximum
            amax = L.down.w.float().abs().amax(-1)
            assert torch.equal(amax, torch.full_like(amax, 448.0))
    assert not torch.equal(parts[0].layers[0].o.w.float(), parts[1].layers[0].o.w.float())


def test_tp8_decode_over_generated_shards_matches_float64():
    cfg = _cfg8()
    parts = [random_shard(cfg, r, 8, "bf16", seed=9) for r in range(8)]
    full = assemble(parts)
    B = 1
    ranks = [RankDecoder(p, B, 16) for p in parts]
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.num_hidden_layers))
    for r in ranks:
        r.route_log = torch.zeros(n_moe, B, cfg.num_experts_per_tok, dtype=torch.int32)
    group = EmulatedGroup(ranks)
    ref = ReferenceModel(full)
    cache = ref.new_cache(_store)
    toks = [17, 4]
    for t in range(4):
        tok = toks[t] if t < len(toks) else int(ranks[0].tokens[0])
        for r in ranks:
            r.tokens[0], r.positions[0], r.seq_lens[0] = tok, t, t + 1
            r.logits.fill_(float("nan"))
        group.step(B)
        want = ref.forward([tok], cache, list(ranks[0].route_log[:, 0].unsqueeze(1).unbind(0)))[-1]
        got = ranks[0].logits[0].double()
        assert float((got - want).norm() / want.norm()) < 1e-3
        for r in ranks[1:]:
            assert torch.allclose(r.logits[0], ranks[0].logits[0], rtol=1e-6, atol=1e-6)


def test_tp_packet_fields(tmp_path):
    """bench decode --tp's packet (written on the CPU from a made-up timing: the fields, not speed)."""
    from floorline.bench.decode import step_bytes
    from floorline.bench.decode_tp import TpPoint, replicated_bytes, write_tp_point
    from floorline.evidence.store import read_json
    from floorline.gpu.timing import TimingResult
    from floorline.model.fast import LaunchConfigs

    cfg = _cfg8()
    parts = [random_shard(cfg, r, 2, "fp8", seed=1) for r in range(2)]
    loc = local_config(cfg, 2)
    per = [step_bytes(dataclasses.replace(p, cfg=loc), [2], 1, 1024, "bf16") for p in parts]
    rep = replicated_bytes(parts[0])
    assert 0 < rep < min(per)
    p = TpPoint(1, 1024, ms=2.0, timing=TimingResult([1900.0, 2000.0, 2100.0], "cuda_events", 1), wall_ms=2.1,
                floor_bytes=max(per), ideal_bytes=(sum(per) - rep) / 2, floor_ms=1.0, experts_hit=[2])
    pk = read_json(write_tp_point(cfg, 2, p, "fp8", "bf16", 4.5, "test", LaunchConfigs(), {}, rep, tmp_path))
    assert pk["kind"] == "bench.decode"
    assert {k: pk["params"][k] for k in ("tp", "batch", "context", "weight_dtype", "layers")} == {
        "tp": 2, "batch": 1, "context": 1024, "weight_dtype": "fp8", "layers": 2}
    assert pk["timing"]["median"] == 2.0 and pk["floor"]["fraction"] == 0.5
    assert pk["baselines"][0]["name"] == "transformers" and pk["baselines"][0]["status"] == "skipped"
    assert p.ideal_bytes < p.floor_bytes
