"""cfg.fuse_combine in model.attention: the split merge done by the last program of each (sequence, KV
head) instead of a second launch, for both entry points. Against the two-launch path and float64, with
poisoned outputs, workspace and cache slots past each sequence's end; splits with the new token in
the middle, a one-split plan, plans (fixed by max_len) with splits past the sequence, two steps in a
row on the same counters, which must be back at 0 after every launch."""

from __future__ import annotations

import math

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.decode_attention import DecodeConfig, decode_workspace, split_plan
from floorline.kernels.kv_cache import allocate_kv_cache
from floorline.model.attention import decode_attention_f32, decode_attention_rope_f32

PAGE, EPS = 16, 1e-6


def _cfg(fuse: bool, **kw) -> DecodeConfig:
    # DecodeConfig accepts fuse_combine only with variant "v2"; model.attention ignores the variant
    return DecodeConfig(variant="v2", fuse_combine=True, **kw) if fuse else DecodeConfig(**kw)


def rms_rope(x, gain, pos, inv_freq):
    d = x.shape[-1]
    x = x.double()
    x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * gain.double()
    ang = pos * inv_freq
    c, s = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def reference(q, cache, perm, lengths, hq, hk):
    """float64 attention of q [B, hq, D] (float64) over each sequence's first lengths[b] cached tokens."""
    k_all, v_all = cache.k.cpu().double(), cache.v.cpu().double()
    want = torch.empty(q.shape, dtype=torch.float64)
    for b, n in enumerate(lengths):
        slots = [(perm[b, t // PAGE], t % PAGE) for t in range(n)]
        for h in range(hq):
            kh = torch.stack([k_all[pg, h // (hq // hk), s] for pg, s in slots])
            vh = torch.stack([v_all[pg, h // (hq // hk), s] for pg, s in slots])
            want[b, h] = torch.softmax(kh @ q[b, h] / math.sqrt(q.shape[-1]), 0) @ vh
    return want


def make_caches(g, B, hk, d, max_len, lengths, device, n=2):
    """n identical bf16 caches over shuffled pages, NaN in every slot at or past each sequence's length
    (for the rope path, the slot this step writes is one of them)."""
    per_seq = max_len // PAGE
    perm = torch.randperm(B * per_seq, generator=g).to(torch.int32).view(B, per_seq)
    k = torch.randn(B * per_seq, hk, PAGE, d, generator=g).to(torch.bfloat16)
    v = torch.randn(B * per_seq, hk, PAGE, d, generator=g).to(torch.bfloat16)
    for b, m in enumerate(lengths):
        for t in range(m, max_len):
            k[perm[b, t // PAGE], :, t % PAGE] = float("nan")
            v[perm[b, t // PAGE], :, t % PAGE] = float("nan")
    caches = [allocate_kv_cache(B * per_seq, hk, PAGE, d, "bf16", device) for _ in range(n)]
    for c in caches:
        c.k.copy_(k)
        c.v.copy_(v)
    return caches, perm


def poisoned_workspace(B, hq, d, splits, device, fused):
    ws = decode_workspace(B, 1, hq, d, splits, device, fused=fused)
    ws[0].fill_(float("nan"))
    ws[1].fill_(float("nan"))
    return ws


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# (lengths, max_len, DecodeConfig kwargs, expected splits): heads are odd (G = 3 query heads per KV head)
CASES = {
    # 32-token splits: the new tokens (positions 36 and 89) sit in middle splits, split 3 is past both
    "middle": ([37, 90], 128, dict(block_n=16, num_splits=4), 4),
    "one-split": ([5, 23], 32, dict(block_n=16, num_splits=1), 1),
    # 64-token splits of a 512 plan: sequence 0 has one live split (the output written without a
    # merge), sequence 1 three; the rest start past the sequence
    "past-len": ([37, 150], 512, dict(block_n=16, num_splits=8), 8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fused_rope_two_steps(device, case):
    lengths, max_len, kw, want_splits = CASES[case]
    hq, hk, d = 6, 2, 64
    g = torch.Generator().manual_seed(11)
    B = len(lengths)
    steps = 2
    caches, perm = make_caches(g, B, hk, d, max_len, lengths, device)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    qg, kg = 1 + 0.2 * torch.randn(d, generator=g), 1 + 0.2 * torch.randn(d, generator=g)
    cfgs = [_cfg(True, **kw), _cfg(False, **kw)]
    splits, _ = split_plan(B, hk, max_len, cfgs[0], 4)
    assert splits == want_splits
    wss = [poisoned_workspace(B, hq, d, splits, device, fused) for fused in (True, False)]
    dev = {k: v.to(device) for k, v in dict(qg=qg, kg=kg, inv_freq=inv_freq, perm=perm).items()}
    for step in range(steps):  # the second step appends one more token on the same counters
        pos = torch.tensor([n - 1 + step for n in lengths], dtype=torch.int32)
        qkv = 4 * torch.randn(B, (hq + 2 * hk) * d, generator=g)
        outs = []
        for c, ws, cfg in zip(caches, wss, cfgs, strict=True):
            out = torch.full((B, 1, hq, d), float("nan"), device=device)
            decode_attention_rope_f32(qkv.to(device), pos.to(device), dev["inv_freq"], 1.0, dev["qg"], dev["kg"], EPS,
                                      c, dev["perm"], (pos + 1).to(device), q_heads=hq, max_len=max_len, out=out,
                                      workspace=ws, sm_count=4, cfg=cfg)
            outs.append(out.cpu())
        assert int(wss[0][2].abs().sum()) == 0, "the fused path must leave its counters at 0"
        assert not torch.isnan(outs[0]).any()
        assert rel(outs[0], outs[1]) < 1e-6  # same partials, same merge formula
        for a, b in ((caches[0].k, caches[1].k), (caches[0].v, caches[1].v)):  # the same new k, v (NaN past the end)
            assert torch.allclose(a.cpu().float(), b.cpu().float(), rtol=0, atol=0, equal_nan=True)
        q = torch.stack([rms_rope(qkv[b, : hq * d].view(hq, d), qg, float(pos[b]), inv_freq) for b in range(B)])
        want = reference(q, caches[0], perm, (pos + 1).tolist(), hq, hk)
        assert rel(outs[0][:, 0], want) < 1e-5


@pytest.mark.parametrize("case", list(CASES))
def test_fused_plain_two_calls(device, case):
    lengths, max_len, kw, want_splits = CASES[case]
    hq, hk, d = 6, 2, 64
    g = torch.Generator().manual_seed(12)
    B = len(lengths)
    (cache,), perm = make_caches(g, B, hk, d, max_len, lengths, device, n=1)
    cfgs = [_cfg(True, **kw), _cfg(False, **kw)]
    splits, _ = split_plan(B, hk, max_len, cfgs[0], 4)
    assert splits == want_splits
    wss = [poisoned_workspace(B, hq, d, splits, device, fused) for fused in (True, False)]
    seq_lens = torch.tensor(lengths, dtype=torch.int32, device=device)
    for _ in range(2):  # fresh queries, the same counters
        q = 4 * torch.randn(B, hq, d, generator=g)
        outs = []
        for ws, cfg in zip(wss, cfgs, strict=True):
            out = torch.full((B, 1, hq, d), float("nan"), device=device)
            decode_attention_f32(q.to(device), cache, perm.to(device), seq_lens, max_len=max_len, out=out,
                                 workspace=ws, sm_count=4, cfg=cfg)
            outs.append(out.cpu())
        assert int(wss[0][2].abs().sum()) == 0
        assert not torch.isnan(outs[0]).any()
        assert rel(outs[0], outs[1]) < 1e-6
        assert rel(outs[0][:, 0], reference(q.double(), cache, perm, lengths, hq, hk)) < 1e-5


@pytest.mark.parametrize("rope", [True, False])
def test_fused_production_shape(device, rope):
    """Batch 1 at the decoder's shape (head_dim 128, 8 query heads per KV head, 64-token blocks,
    4 warps, 3 stages): the launch the sm_90 compile check must see. 3 splits, the new token in the
    middle one. On a GPU the rope case runs with PDL, as the batch-1 step launches it (the interpreter
    has no PDL, so the sm_90 check adds that launch to its records by hand)."""
    hq, hk, d, max_len = 8, 1, 128, 192
    lengths = [150]
    g = torch.Generator().manual_seed(13)
    (cache,), perm = make_caches(g, 1, hk, d, max_len, lengths, device, n=1)
    cfg = _cfg(True, block_n=64, num_warps=4, num_stages=3, num_splits=3)
    splits, _ = split_plan(1, hk, max_len, cfg, 4)
    assert splits == 3
    ws = poisoned_workspace(1, hq, d, splits, device, True)
    out = torch.full((1, 1, hq, d), float("nan"), device=device)
    dperm = perm.to(device)
    if rope:
        pos = torch.tensor([lengths[0] - 1], dtype=torch.int32)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        qg, kg = 1 + 0.2 * torch.randn(d, generator=g), 1 + 0.2 * torch.randn(d, generator=g)
        qkv = 4 * torch.randn(1, (hq + 2 * hk) * d, generator=g)
        decode_attention_rope_f32(qkv.to(device), pos.to(device), inv_freq.to(device), 1.0, qg.to(device),
                                  kg.to(device), EPS, cache, dperm, (pos + 1).to(device), q_heads=hq, max_len=max_len,
                                  out=out, workspace=ws, sm_count=4, cfg=cfg, pdl=torch.device(device).type == "cuda")
        q = rms_rope(qkv[0, : hq * d].view(hq, d), qg, float(pos[0]), inv_freq)[None]
    else:
        q = 4 * torch.randn(1, hq, d, generator=g)
        decode_attention_f32(q.to(device), cache, dperm, torch.tensor(lengths, dtype=torch.int32, device=device),
                             max_len=max_len, out=out, workspace=ws, sm_count=4, cfg=cfg)
        q = q.double()
    assert int(ws[2].abs().sum()) == 0
    assert rel(out.cpu()[:, 0], reference(q, cache, perm, lengths, hq, hk)) < 1e-5


def test_fused_without_counters_is_refused(device):
    hq, hk, d, max_len = 4, 2, 64, 64
    cache = allocate_kv_cache(4, hk, PAGE, d, "bf16", device)
    cfg = _cfg(True, block_n=16, num_splits=2)
    splits, _ = split_plan(1, hk, max_len, cfg, 4)
    q = torch.zeros(1, hq, d, device=device)
    out = torch.zeros(1, 1, hq, d, device=device)
    pt = torch.arange(4, dtype=torch.int32, device=device).view(1, 4)
    lens = torch.tensor([40], dtype=torch.int32, device=device)
    ws = decode_workspace(1, 1, hq, d, splits, device)
    with pytest.raises(InputError, match="fuse_combine needs .*fused=True"):
        decode_attention_f32(q, cache, pt, lens, max_len=max_len, out=out, workspace=ws, sm_count=4, cfg=cfg)
    with pytest.raises(InputError, match="int32 ticket counters"):  # one that is too small for the batch
        decode_attention_f32(q, cache, pt, lens, max_len=max_len, out=out, sm_count=4, cfg=cfg,
                             workspace=(*ws, torch.zeros(1, dtype=torch.int32, device=device)))
