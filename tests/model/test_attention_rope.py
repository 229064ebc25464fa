"""decode_attention_rope_f32 (QK-norm + RoPE + KV append inside the attention kernel) against the
two-launch path it replaces (kernels.rope.qk_norm_rope writing the cache, then decode_attention_f32)
and against float64: many splits, the new token in a middle split, sequences of their own lengths,
shuffled pages, poisoned outputs and poisoned cache slots for this step."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from floorline.kernels.decode_attention import DecodeConfig, decode_workspace, split_plan
from floorline.kernels.kv_cache import allocate_kv_cache
from floorline.kernels.rope import qk_norm_rope
from floorline.model.attention import decode_attention_f32, decode_attention_rope_f32

HQ, HK, D, PAGE = 8, 2, 64, 16
EPS = 1e-6


def rms_rope(x, gain, pos, inv_freq):
    x = x.double()
    x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * gain.double()
    ang = pos * inv_freq
    c, s = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


# one_tile: 32-token splits of one 32-token block, no loop (DecodeConfig.one_tile); against the loop
# kernel. [33, 64, 1]: the new token first in its split with nothing cached there, last in its split,
# and alone in the sequence.
@pytest.mark.parametrize("lengths,one_tile", [([37, 5, 90], False), ([37, 5, 90], True), ([33, 64, 1], True)])
def test_rope_in_attention_matches_two_launches_and_float64(device, lengths, one_tile):
    g = torch.Generator().manual_seed(4)
    B, max_len = len(lengths), 128
    pages_per_seq = max_len // PAGE
    perm = torch.randperm(B * pages_per_seq, generator=g).to(torch.int32).view(B, pages_per_seq)
    caches = [allocate_kv_cache(B * pages_per_seq, HK, PAGE, D, "bf16", device) for _ in range(2)]
    ctx_k = torch.randn(B * pages_per_seq, HK, PAGE, D, generator=g).to(torch.bfloat16)
    ctx_v = torch.randn(B * pages_per_seq, HK, PAGE, D, generator=g).to(torch.bfloat16)
    for c in caches:
        c.k.copy_(ctx_k)
        c.v.copy_(ctx_v)
    pos = torch.tensor([n - 1 for n in lengths], dtype=torch.int32)
    for c in caches:  # poison this step's slots: each path must write them before reading
        for b, p in enumerate(pos.tolist()):
            pg = perm[b, p // PAGE]
            c.k[pg, :, p % PAGE] = float("nan")
            c.v[pg, :, p % PAGE] = float("nan")
    qkv = 4 * torch.randn(B, (HQ + 2 * HK) * D, generator=g)
    qg, kg = 1 + 0.2 * torch.randn(D, generator=g), 1 + 0.2 * torch.randn(D, generator=g)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    cfg = DecodeConfig(block_n=32, num_splits=4, one_tile=True) if one_tile else DecodeConfig(block_n=16, num_splits=4)
    ref_cfg = dataclasses.replace(cfg, one_tile=False)
    splits, _ = split_plan(B, HK, max_len, cfg, 4)
    assert splits == 4  # 32-token splits: every new token sits in a split with others before and after it
    seq_lens = (pos + 1).to(device)
    dev = {k: v.to(device) for k, v in dict(qkv=qkv, qg=qg, kg=kg, inv_freq=inv_freq, pos=pos, perm=perm).items()}
    outs = []
    for i, c in enumerate(caches):
        out = torch.full((B, 1, HQ, D), float("nan"), device=device)
        ws = decode_workspace(B, 1, HQ, D, splits, device)
        if i == 0:
            decode_attention_rope_f32(dev["qkv"], dev["pos"], dev["inv_freq"], 1.0, dev["qg"], dev["kg"], EPS, c,
                                      dev["perm"], seq_lens, q_heads=HQ, max_len=max_len, out=out, workspace=ws,
                                      sm_count=4, cfg=cfg)
        else:
            q32 = torch.empty(B, HQ, D, device=device)
            qk_norm_rope(dev["qkv"], dev["pos"], dev["inv_freq"], 1.0, dev["qg"], dev["kg"], EPS, q32, None, None,
                         HQ, HK, cache=c, page_table=dev["perm"], seq_ids=torch.arange(B, dtype=torch.int32, device=device))
            decode_attention_f32(q32, c, dev["perm"], seq_lens, max_len=max_len, out=out, workspace=ws, sm_count=4,
                                 cfg=ref_cfg)
        outs.append(out.cpu())
    # both wrote the same new k/v into the cache, up to one bf16 rounding where the fp32 values differ
    # in their last bits (the two kernels sum the norm and contract the rotation differently)
    for a, b in ((caches[0].k, caches[1].k), (caches[0].v, caches[1].v)):
        a, b = a.cpu().double(), b.cpu().double()
        assert not torch.isnan(a).any() and float((a - b).abs().max()) <= 2**-7 * float(b.abs().max())
    assert not torch.isnan(outs[0]).any()
    assert float((outs[0] - outs[1]).norm() / outs[1].norm()) < 1e-5
    # float64 over the cache as written (K/V-matched): only the attention arithmetic differs
    k_all, v_all = caches[0].k.cpu().double(), caches[0].v.cpu().double()
    want = torch.empty(B, HQ, D, dtype=torch.float64)
    for b, n in enumerate(lengths):
        qh = rms_rope(qkv[b, : HQ * D].view(HQ, D), qg, float(pos[b]), inv_freq)
        slots = [(perm[b, t // PAGE], t % PAGE) for t in range(n)]
        for h in range(HQ):
            kh = torch.stack([k_all[pg, h // (HQ // HK), s] for pg, s in slots])
            vh = torch.stack([v_all[pg, h // (HQ // HK), s] for pg, s in slots])
            w = torch.softmax(kh @ qh[h] / math.sqrt(D), 0)
            want[b, h] = w @ vh
    assert float((outs[0][:, 0].double() - want).norm() / want.norm()) < 1e-5


def _paged_cache(g, B, max_len, device):
    """A shuffled page table and a bf16 cache of random K/V for B sequences of up to max_len tokens."""
    pages_per_seq = max_len // PAGE
    perm = torch.randperm(B * pages_per_seq, generator=g).to(torch.int32).view(B, pages_per_seq).to(device)
    cache = allocate_kv_cache(B * pages_per_seq, HK, PAGE, D, "bf16", device)
    cache.k.copy_(torch.randn(cache.k.shape, generator=g).to(torch.bfloat16))
    cache.v.copy_(torch.randn(cache.v.shape, generator=g).to(torch.bfloat16))
    return perm, cache


def test_one_tile_without_rope_matches_the_loop(device):
    """decode_attention_f32 (q already normed and rotated) with one_tile against the loop kernel, on
    poisoned outputs; lengths that end mid-split, at a split's end, and past the first split only."""
    g = torch.Generator().manual_seed(9)
    lengths, max_len = [45, 64, 3], 128
    B = len(lengths)
    perm, cache = _paged_cache(g, B, max_len, device)
    q = (2 * torch.randn(B, HQ, D, generator=g)).to(device)
    seq_lens = torch.tensor(lengths, dtype=torch.int32, device=device)
    outs = []
    for one_tile in (True, False):
        cfg = DecodeConfig(block_n=32, num_splits=4, one_tile=one_tile)
        splits, split_len = split_plan(B, HK, max_len, cfg, 4)
        assert split_len == 32
        out = torch.full((B, 1, HQ, D), float("nan"), device=device)
        decode_attention_f32(q, cache, perm, seq_lens, max_len=max_len, out=out,
                             workspace=decode_workspace(B, 1, HQ, D, splits, device), sm_count=4, cfg=cfg)
        outs.append(out.cpu().double())
    assert torch.isfinite(outs[0]).all()
    assert float((outs[0] - outs[1]).norm() / outs[1].norm()) < 1e-6


def _one_tile_case(device, seed):
    """A small one-tile RoPE launch's inputs (as above, one cache): the new token mid-split, pages shuffled."""
    g = torch.Generator().manual_seed(seed)
    lengths, max_len = [37, 5, 90], 128
    B = len(lengths)
    perm, cache = _paged_cache(g, B, max_len, device)
    pos = torch.tensor([n - 1 for n in lengths], dtype=torch.int32, device=device)
    qkv = (4 * torch.randn(B, (HQ + 2 * HK) * D, generator=g)).to(device)
    qg, kg = (1 + 0.2 * torch.randn(D, generator=g)).to(device), (1 + 0.2 * torch.randn(D, generator=g)).to(device)
    inv_freq = (1.0 / (10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))).to(device)
    return dict(qkv=qkv, pos=pos, inv_freq=inv_freq, qg=qg, kg=kg, cache=cache, perm=perm, seq_lens=pos + 1, B=B,
                max_len=max_len)


def _run_one_tile(c, l2_next, pdl, device):
    cfg = DecodeConfig(block_n=32, num_splits=4, one_tile=True)
    out = torch.full((c["B"], 1, HQ, D), float("nan"), device=device)
    ws = decode_workspace(c["B"], 1, HQ, D, 4, device)
    decode_attention_rope_f32(c["qkv"], c["pos"], c["inv_freq"], 1.0, c["qg"], c["kg"], EPS, c["cache"], c["perm"],
                              c["seq_lens"], q_heads=HQ, max_len=c["max_len"], out=out, workspace=ws, sm_count=4,
                              cfg=cfg, pdl=pdl, l2_next=l2_next)
    return out


def test_l2_next_must_be_contiguous(device):
    """l2_next (LaunchConfigs.prefetch_next) is checked on every device, PDL or not."""
    from floorline.errors import InputError

    c = _one_tile_case(device, 5)
    w = torch.randn(64, 40, device=device).to(torch.bfloat16)
    with pytest.raises(InputError, match="l2_next must be a contiguous"):
        _run_one_tile(c, (w.t(), False), False, device)


@pytest.mark.gpu
@pytest.mark.parametrize("evict_last", [False, True])
def test_l2_next_prefetch_changes_no_result(evict_last):
    """Under PDL, the attention's programs ask L2 for another tensor's lines (an odd number of them, so
    the last program's share is partial): the output and the cache it writes are bit-identical to the
    launch without the prefetch, and the prefetched tensor is untouched."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    runs = []
    w = torch.randn(1237, 333, device="cuda").to(torch.bfloat16)  # 411,921 elements: 6437 lines, the last partial
    w0 = w.clone()
    for nxt in (None, (w, evict_last)):
        c = _one_tile_case("cuda", 6)
        out = _run_one_tile(c, nxt, True, "cuda")
        torch.cuda.synchronize()
        runs.append((out.cpu(), c["cache"].k.cpu(), c["cache"].v.cpu()))
    assert not torch.isnan(runs[0][0]).any()
    for a, b in zip(runs[0], runs[1], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(w, w0)
