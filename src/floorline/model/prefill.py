"""Prefill: a whole prompt through batched matmuls on the stored bf16/FP8 weights, writing its keys
and values into the fast decoder's paged cache. Not one decode step per token.

The matmuls and the causal attention run in float64 (the residual stream is handed back as float32
logits): torch's float32 GEMM and SDPA on the GPU may run on TF32 tensor cores (an environment
override or the attention backend's choice), which puts ~1e-3 into the prompt's K/V and from there
into every later step (decode --check run 2, docs/notes/decode.md). Prefill is not the measured path,
and float64 on the H200 costs a few ms per layer for a 1K prompt."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from floorline.kernels.kv_cache import kv_append
from floorline.kernels.rope import qk_norm_rope

F32 = torch.float32
DT = torch.float64  # prefill arithmetic (see the module docstring)


def _norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain.to(x.dtype)


def _expert(lin: Any, e: int) -> torch.Tensor:
    w = lin.w[e].to(DT)
    return w if lin.scale is None else w * lin.scale[e].to(DT).unsqueeze(-1)


def _mlp(dec: Any, L: Any, h: torch.Tensor, routes: list | None = None) -> torch.Tensor:
    """[T, H] -> [T, H]: tokens grouped by expert, one matmul pair per expert hit."""
    cfg = dec.cfg
    T = h.shape[0]
    if L.is_moe:
        k = cfg.num_experts_per_tok
        probs = torch.softmax(h @ L.router.to(DT).T, dim=-1)
        wts, ids = torch.topk(probs, k, dim=-1)  # [T, k]
        if cfg.norm_topk_prob:
            wts = wts / wts.sum(-1, keepdim=True)
        if routes is not None:
            routes.append(ids.clone())
    else:
        k, ids = 1, torch.zeros(T, 1, dtype=torch.long, device=h.device)
        wts = torch.ones(T, 1, device=h.device, dtype=h.dtype)
    flat = ids.flatten()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=L.gate_up.w.shape[0]).tolist()  # one host sync per layer
    out = torch.zeros_like(h)
    start = 0
    for e, n in enumerate(counts):
        if not n:
            continue
        slots = order[start : start + n]
        start += n
        tok = slots // k
        gu = h[tok] @ _expert(L.gate_up, e).T  # [n, 2I]
        inter = gu.shape[1] // 2
        a = F.silu(gu[:, :inter]) * gu[:, inter:]
        y = (a @ _expert(L.down, e).T) * wts.flatten()[slots].unsqueeze(1)
        out.index_add_(0, tok, y)
    return out


def _read_back(cache: Any, pages: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions 0..T-1 of one sequence from a bf16/fp16 paged cache, as float64 [T, kv_heads, d]."""
    n = -(-T // cache.page_size)
    idx = pages[:n].long()

    def get(t: torch.Tensor) -> torch.Tensor:
        x = t[idx].permute(0, 2, 1, 3).reshape(n * cache.page_size, t.shape[1], t.shape[3])
        return x[:T].to(DT)

    return get(cache.k), get(cache.v)


@torch.no_grad()
def prefill_sequence(dec: Any, b: int, tokens: list[int]) -> torch.Tensor:
    """Sequence b's prompt -> its last position's float32 logits [V]; cache slots 0..T-1 written."""
    cfg, w, dev = dec.cfg, dec.w, dec.device
    T, d = len(tokens), cfg.head_dim
    hq, hk = cfg.num_attention_heads, cfg.num_key_value_heads
    ids = torch.tensor(tokens, dtype=torch.long, device=dev)
    pos = torch.arange(T, dtype=torch.int32, device=dev)
    seq = torch.full((T,), b, dtype=torch.int32, device=dev)
    x = w.embed.index_select(0, ids).to(DT)  # [T, H]
    routes = None
    if dec.prefill_routes is not None:
        routes = dec.prefill_routes[b] = []
    for i, L in enumerate(w.layers):
        h = _norm(x, L.attn_norm, cfg.rms_norm_eps)
        qkv = (h @ L.qkv.real(DT).T).contiguous()  # [T, q + 2kv]
        q = torch.empty(T, hq, d, dtype=F32, device=dev)
        k, v = torch.empty(T, hk, d, dtype=F32, device=dev), torch.empty(T, hk, d, dtype=F32, device=dev)
        qk_norm_rope(qkv, pos, dec.inv_freq, dec.rope_scale, L.q_norm, L.k_norm, cfg.rms_norm_eps, q, k, v, hq, hk)
        kv_append(dec.caches[i], k, v, dec.page_table, seq, pos)
        if dec.caches[i].kv_dtype in ("bf16", "fp16"):  # attend over what decode will read: the stored keys/values
            k, v = _read_back(dec.caches[i], dec.page_table[b], T)
        g = hq // hk
        q, k, v = q.to(DT), k.to(DT), v.to(DT)
        attn = F.scaled_dot_product_attention(
            q.transpose(0, 1).unsqueeze(0), k.repeat_interleave(g, 1).transpose(0, 1).unsqueeze(0),
            v.repeat_interleave(g, 1).transpose(0, 1).unsqueeze(0), is_causal=True,
        )  # [1, hq, T, d]
        x = x + attn[0].transpose(0, 1).reshape(T, cfg.q_size) @ L.o.real(DT).T
        x = x + _mlp(dec, L, _norm(x, L.mlp_norm, cfg.rms_norm_eps), routes)
    last = _norm(x[-1:], w.norm, cfg.rms_norm_eps)
    return (last @ w.lm_head.to(DT).T)[0].to(F32)
