"""Where decode --check's logits error comes from, on the CPU in float64 (docs/notes/decode.md, "Error budget").

The float64 reference is run on a qwen3-30b-a3b-shaped model (full attention shape: 2048 hidden,
32 q / 4 kv heads of 128; all 48 layers) with the MoE narrowed so it fits a CPU (16 experts, top 8,
intermediate 96: each expert's output RMS does not depend on its width, since down has std
1/sqrt(I)), once with exact K/V and once per way of storing K/V (bf16, fp16, K only, V only,
one layer only). Routing is forced to the exact run's choices, as decode --check's shared routing
does. Prints the logits rel-L2 after every depth (final norm + LM head on the residual after layer
l = the l-layer model), the residual and attention statistics, and the top-1/top-2 logit margins.

    PYTHONPATH=src python3 scripts/check_error_budget.py [--layers 48] [--tokens 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import torch

from floorline.model import reference as R
from floorline.model.config import builtin
from floorline.model.weights import random_weights

F64 = torch.float64


def rne(dtype):
    return lambda t: t.to(dtype).to(F64)


def forward(w, tokens, store_k=None, store_v=None, only_layer=None, routes=None, record=None, stats=None):
    """Reference forward with separate K and V storage rounding; returns logits after every layer [L, T, V]."""
    cfg = w.cfg
    ids = torch.as_tensor(tokens).long()
    T = ids.numel()
    pos = torch.arange(T)
    x = w.embed[ids].to(F64)
    lm = w.lm_head.to(F64)
    out, moe_i = [], 0
    for i, L in enumerate(w.layers):
        h = R.rms_norm(x, L.attn_norm, cfg.rms_norm_eps)
        d = cfg.head_dim
        qkv = h @ L.qkv.real(F64).T
        q = qkv[:, : cfg.q_size].view(T, cfg.num_attention_heads, d)
        k = qkv[:, cfg.q_size : cfg.q_size + cfg.kv_size].view(T, cfg.num_key_value_heads, d)
        v = qkv[:, cfg.q_size + cfg.kv_size :].view(T, cfg.num_key_value_heads, d)
        q, k = R.rms_norm(q, L.q_norm, cfg.rms_norm_eps), R.rms_norm(k, L.k_norm, cfg.rms_norm_eps)
        cos, sin = R.rope_cos_sin(cfg, pos)
        q, k = R.apply_rope(q, cos, sin), R.apply_rope(k, cos, sin)
        if only_layer is None or only_layer == i:
            k = store_k(k) if store_k else k
            v = store_v(v) if store_v else v
        g = cfg.num_attention_heads // cfg.num_key_value_heads
        K, V = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        s = torch.einsum("thd,shd->hts", q, K) / math.sqrt(d)
        s = s.masked_fill(pos[None, None, :] > pos[None, :, None], float("-inf"))
        p = torch.softmax(s, -1)
        a = torch.einsum("hts,shd->thd", p, V).reshape(T, cfg.q_size) @ L.o.real(F64).T
        if stats is not None:
            last = s[:, -1, :]
            stats.setdefault("score_std_last", []).append(float(last.std()))
            stats.setdefault("pmax_last_mean", []).append(float(p[:, -1, :].max(-1).values.mean()))
            stats.setdefault("k_absmax", []).append(float(k.abs().max()))
            stats.setdefault("v_absmax", []).append(float(v.abs().max()))
            stats.setdefault("attn_rms", []).append(float(a.pow(2).mean().sqrt()))
        x = x + a
        forced = None
        if L.is_moe and routes is not None:
            forced, moe_i = routes[moe_i], moe_i + 1
        m = R.mlp(cfg, L, R.rms_norm(x, L.mlp_norm, cfg.rms_norm_eps), forced)
        if stats is not None:
            stats.setdefault("mlp_rms", []).append(float(m.pow(2).mean().sqrt()))
        x = x + m
        if stats is not None:
            stats.setdefault("resid_rms", []).append(float(x.pow(2).mean().sqrt()))
        out.append(R.rms_norm(x, w.norm, cfg.rms_norm_eps) @ lm.T)
    return torch.stack(out)


def rel(a, b):  # per position, over the vocabulary: [L, T]
    return (a - b).norm(dim=-1) / b.norm(dim=-1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--json")
    a = ap.parse_args()
    cfg = builtin("qwen3-30b-a3b").cut(a.layers, 16)
    cfg = replace(cfg, moe_intermediate_size=96, vocab_size=a.vocab)
    w = random_weights(cfg, "bf16", "cpu", seed=0)
    real = R._expert_real
    cache: dict = {}

    def once(lin, e, dt):  # upcast each expert once
        key = (id(lin), e)
        if key not in cache:
            cache[key] = real(lin, e, dt)
        return cache[key]

    R._expert_real = once
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, cfg.vocab_size, (a.tokens,), generator=g).tolist()
    routes: list = []
    orig_route = R.route

    def rec_route(cfg_, x, router):
        wts, ids = orig_route(cfg_, x, router)
        routes.append(ids.clone())
        return wts, ids

    R.route = rec_route
    stats: dict = {}
    exact = forward(w, tokens, stats=stats)
    R.route = orig_route
    routes = [r for r in routes]  # one [T, k] per MoE layer, the exact run's own choices
    bf, hf = rne(torch.bfloat16), rne(torch.float16)
    variants = {
        "kv_bf16": dict(store_k=bf, store_v=bf),
        "k_bf16_only": dict(store_k=bf),
        "v_bf16_only": dict(store_v=bf),
        "kv_fp16": dict(store_k=hf, store_v=hf),
        "kv_bf16_layer0_only": dict(store_k=bf, store_v=bf, only_layer=0),
        f"kv_bf16_layer{a.layers - 1}_only": dict(store_k=bf, store_v=bf, only_layer=a.layers - 1),
    }
    res = {"config": {"layers": a.layers, "tokens": a.tokens, "vocab": a.vocab, "experts": 16, "moe_inter": 96},
           "stats": stats}
    top2 = exact[-1].topk(2, -1).values
    res["logit_std"] = float(exact[-1].std())
    res["margins_last_layer"] = (top2[:, 0] - top2[:, 1]).tolist()
    for name, kw in variants.items():
        r = rel(forward(w, tokens, routes=routes, **kw), exact)  # [L, T]
        res[name] = {"max_by_depth": r.max(-1).values.tolist(), "last_pos_by_depth": r[:, -1].tolist()}
        depths = [0, 3, 11, 23, a.layers - 1]
        print(name, " ".join(f"L{d + 1}:{r[d].max():.2e}" for d in depths if d < a.layers), flush=True)
    print("resid_rms", [round(x, 1) for x in stats["resid_rms"][:: max(1, a.layers // 8)]])
    print("attn_rms", [round(x, 2) for x in stats["attn_rms"][:: max(1, a.layers // 8)]],
          "mlp_rms", [round(x, 2) for x in stats["mlp_rms"][:: max(1, a.layers // 8)]])
    print("score_std_last", [round(x, 2) for x in stats["score_std_last"][:: max(1, a.layers // 8)]],
          "pmax_last", [round(x, 3) for x in stats["pmax_last_mean"][:: max(1, a.layers // 8)]])
    print("k_absmax", max(stats["k_absmax"]), "v_absmax", max(stats["v_absmax"]))
    print("logit_std", res["logit_std"], "margins", [round(m, 3) for m in res["margins_last_layer"]])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
