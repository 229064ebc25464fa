"""The float64 reference decoder: the spec every fast path is checked against.

Written for clarity, not speed: one sequence at a time, plain tensor math with shapes in comments,
every weight upcast to float64 at the point of use (so the reference runs on the very weights the
fast path reads, bf16 or FP8-with-scales, on whatever device holds them).
Agrees with transformers' Qwen3MoeForCausalLM in float64 (tests/model/test_oracle_hf.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from floorline.model.config import ModelConfig
from floorline.model.weights import LayerWeights, ModelWeights

F64 = torch.float64


def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    # x: [..., n]  ->  x / rms(x) * gain
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain.to(x.dtype)


def rope_inv_freq(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies [head_dim/2] and the cos/sin scale, for default, linear and YaRN RoPE."""
    d, base, rs = cfg.head_dim, cfg.rope_theta, cfg.rope_scaling
    exponent = torch.arange(0, d, 2, dtype=F64) / d
    inv_freq = 1.0 / base**exponent
    if rs.rope_type == "linear":
        return inv_freq / rs.factor, 1.0
    if rs.rope_type != "yarn":
        return inv_freq, 1.0
    # YaRN (arXiv 2309.00071): interpolate the low frequencies, keep the high ones, ramp between.
    factor, orig = rs.factor, rs.original_max_position_embeddings

    def correction_dim(rotations: float) -> float:
        return d * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(rs.beta_fast), correction_dim(rs.beta_slow)
    if rs.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(d // 2, dtype=F64) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: extrapolate (keep the frequency), 0: interpolate (divide by factor)
    inv_freq = (inv_freq / factor) * (1 - keep) + inv_freq * keep
    scale = rs.attention_factor if rs.attention_factor is not None else (
        1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
    )
    return inv_freq, float(scale)


def rope_cos_sin(cfg: ModelConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: [T, head_dim], the half-split layout (rotate_half pairs i with i + d/2)."""
    inv_freq, scale = rope_inv_freq(cfg)
    angles = positions.to(F64).unsqueeze(-1) * inv_freq.to(positions.device)  # [T, d/2]
    angles = torch.cat([angles, angles], dim=-1)  # [T, d]
    return angles.cos() * scale, angles.sin() * scale


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [T, heads, d]; cos/sin: [T, d]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)


def route(cfg: ModelConfig, x: torch.Tensor, router: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts, keep the top k, optionally renormalise. -> weights [T,k], ids [T,k]."""
    probs = torch.softmax(x @ router.to(x.dtype).T, dim=-1)  # [T, E]
    weights, ids = torch.topk(probs, cfg.num_experts_per_tok, dim=-1)
    if cfg.norm_topk_prob:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights, ids


def expert(L: LayerWeights, e: int, x: torch.Tensor) -> torch.Tensor:
    """SwiGLU MLP of expert e (e = 0 for a dense layer). x: [H] -> [H]."""
    gate_up, down = _expert_real(L.gate_up, e, x.dtype), _expert_real(L.down, e, x.dtype)  # [2I, H], [H, I]
    inter = gate_up.shape[0] // 2
    g, u = gate_up[:inter] @ x, gate_up[inter:] @ x  # [I], [I]
    return down @ (torch.nn.functional.silu(g) * u)  # [H]


def _expert_real(lin: Any, e: int, dtype: torch.dtype) -> torch.Tensor:
    # Index before upcasting: only the selected expert's weights become float64.
    w = lin.w[e].to(dtype)
    return w if lin.scale is None else w * lin.scale[e].to(dtype).unsqueeze(-1)


def mlp(cfg: ModelConfig, L: LayerWeights, x: torch.Tensor, forced: torch.Tensor | None = None,
        stats: list[float] | None = None) -> torch.Tensor:
    """x: [T, H]. forced [T, k] makes the layer use those experts (weighted by this model's own
    probabilities) instead of its own top-k: how `decode --check` compares two datapaths whose
    routers disagree only on near-ties. Each token whose own choice differs appends to stats the
    relative gap between its k-th and (k+1)-th probability (how near the tie was)."""
    if not L.is_moe:
        return torch.stack([expert(L, 0, x[t]) for t in range(x.shape[0])])
    weights, ids = route(cfg, x, L.router)
    if forced is not None:
        probs = torch.softmax(x @ L.router.to(x.dtype).T, dim=-1)  # [T, E]
        forced = forced.to(device=x.device, dtype=torch.long)
        for t in range(x.shape[0]):
            if set(ids[t].tolist()) != set(forced[t].tolist()) and stats is not None:
                top = torch.topk(probs[t], cfg.num_experts_per_tok + 1).values
                stats.append(float((top[-2] - top[-1]) / top[-2]))
        ids, weights = forced, probs.gather(1, forced)
        if cfg.norm_topk_prob:
            weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(ids.shape[1]):
            out[t] += weights[t, j] * expert(L, int(ids[t, j]), x[t])
    return out


@dataclass
class Cache:
    """Keys and values seen so far, per layer: [S, kv_heads, d] in float64 (post-norm, post-RoPE keys).

    store (None: exact) rounds each key and value as the fast path's cache stores them (e.g. to bf16)
    before it is kept, which separates cache-storage rounding from arithmetic error in `decode --check`."""

    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    store: Any = None

    @property
    def length(self) -> int:
        return 0 if not self.k else self.k[0].shape[0]


def attention(cfg: ModelConfig, L: LayerWeights, i: int, x: torch.Tensor, pos: torch.Tensor, cache: Cache) -> torch.Tensor:
    T, d = x.shape[0], cfg.head_dim
    qkv = x @ L.qkv.real(x.dtype).T  # [T, q_size + 2 kv_size]
    q = qkv[:, : cfg.q_size].view(T, cfg.num_attention_heads, d)
    k = qkv[:, cfg.q_size : cfg.q_size + cfg.kv_size].view(T, cfg.num_key_value_heads, d)
    v = qkv[:, cfg.q_size + cfg.kv_size :].view(T, cfg.num_key_value_heads, d)
    q, k = rms_norm(q, L.q_norm, cfg.rms_norm_eps), rms_norm(k, L.k_norm, cfg.rms_norm_eps)
    cos, sin = rope_cos_sin(cfg, pos)
    q, k = apply_rope(q, cos.to(x.dtype), sin.to(x.dtype)), apply_rope(k, cos.to(x.dtype), sin.to(x.dtype))
    if cache.store is not None:
        k, v = cache.store(k), cache.store(v)
    if len(cache.k) <= i:
        cache.k.append(k)
        cache.v.append(v)
    else:
        cache.k[i] = torch.cat([cache.k[i], k])
        cache.v[i] = torch.cat([cache.v[i], v])
    K, V = cache.k[i], cache.v[i]  # [S, kv_heads, d]
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    K, V = K.repeat_interleave(group, dim=1), V.repeat_interleave(group, dim=1)  # [S, heads, d]
    scores = torch.einsum("thd,shd->hts", q, K) / math.sqrt(d)  # [heads, T, S]
    key_pos = torch.arange(K.shape[0], device=x.device)
    scores = scores.masked_fill(key_pos[None, None, :] > pos[None, :, None], float("-inf"))  # causal
    out = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), V)  # [T, heads, d]
    return out.reshape(T, cfg.q_size) @ L.o.real(x.dtype).T  # [T, H]


class ReferenceModel:
    """forward(tokens, cache) -> float64 logits for each new token; the cache grows in place."""

    def __init__(self, weights: ModelWeights, dtype: torch.dtype = F64) -> None:
        if weights.tp[1] != 1:
            raise ValueError("the reference runs the unsharded model")
        self.w, self.cfg, self.dtype = weights, weights.cfg, dtype  # float64 is the spec

    def new_cache(self, store: Any = None) -> Cache:
        return Cache(store=store)

    @torch.no_grad()
    def forward(self, tokens: list[int] | torch.Tensor, cache: Cache, routes: list[torch.Tensor] | None = None,
                stats: list[float] | None = None) -> torch.Tensor:
        """routes: one [T, k] expert-id tensor per MoE layer to use instead of this model's own
        choice (see mlp); stats collects the near-tie gaps where the choices differed."""
        cfg, w = self.cfg, self.w
        ids = torch.as_tensor(tokens, device=w.device).long().view(-1)
        pos = torch.arange(cache.length, cache.length + ids.numel(), device=w.device)
        x = w.embed[ids].to(self.dtype)  # [T, H]
        moe_i = 0
        for i, L in enumerate(w.layers):
            x = x + attention(cfg, L, i, rms_norm(x, L.attn_norm, cfg.rms_norm_eps), pos, cache)
            forced = None
            if routes is not None and L.is_moe:
                forced, moe_i = routes[moe_i], moe_i + 1
            x = x + mlp(cfg, L, rms_norm(x, L.mlp_norm, cfg.rms_norm_eps), forced, stats)
        x = rms_norm(x, w.norm, cfg.rms_norm_eps)
        return x @ w.lm_head.to(self.dtype).T  # [T, V]
