"""Model weights in floorline's own layout, seeded random initialisation, FP8 and TP sharding.

Layout (one place; checkpoint.py translates Hugging Face names into it):
- qkv:     [q_size + 2*kv_size, H]   rows are q heads, then k heads, then v heads
- o:       [H, q_size]
- gate_up: [E, 2*I, H]               rows 0..I are the gate, I..2I the up projection
- down:    [E, H, I]
A dense MLP layer is stored the same way with E = 1 and no router, so one kernel serves both.
Quantised tensors keep a per-output-channel scale beside them (`Linear.scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from floorline.errors import InputError
from floorline.model.config import ModelConfig

WEIGHT_DTYPES = ("float64", "float32", "bf16", "fp8")
FP8_MAX = 448.0  # largest finite float8_e4m3fn value (OCP FP8 spec)


@dataclass
class Linear:
    """A weight tensor, and its per-output-channel scale when quantised (w_real = w * scale[..., None])."""

    w: Any
    scale: Any = None

    def real(self, dtype: Any) -> Any:
        """The weight as the math sees it, in dtype (the reference upcasts here, at the point of use)."""
        w = self.w.to(dtype)
        return w if self.scale is None else w * self.scale.to(dtype).unsqueeze(-1)

    @property
    def nbytes(self) -> int:
        n = self.w.numel() * self.w.element_size()
        return n + (0 if self.scale is None else self.scale.numel() * self.scale.element_size())


@dataclass
class LayerWeights:
    attn_norm: Any
    qkv: Linear
    q_norm: Any
    k_norm: Any
    o: Linear
    mlp_norm: Any
    gate_up: Linear
    down: Linear
    router: Any = None  # [E, H]; None for a dense MLP layer

    @property
    def is_moe(self) -> bool:
        return self.router is not None


@dataclass
class ModelWeights:
    cfg: ModelConfig
    dtype: str
    embed: Any
    layers: list[LayerWeights]
    norm: Any
    lm_head: Any  # the embed tensor itself when tied
    tp: tuple[int, int] = (0, 1)  # (rank, size)
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> Any:
        return self.embed.device


def torch_dtype(name: str) -> Any:
    import torch

    table = {"float64": torch.float64, "float32": torch.float32, "bf16": torch.bfloat16, "fp8": torch.bfloat16}
    if name not in table:
        raise InputError(f"--dtype: must be one of {', '.join(WEIGHT_DTYPES)}, got {name!r}")
    return table[name]


def quantize_fp8(w: Any) -> Linear:
    """Per-output-channel e4m3: scale = amax(row) / 448, so each row uses the whole FP8 range."""
    import torch

    wf = w.float()
    amax = wf.abs().amax(dim=-1).clamp_min(1e-12)
    scale = amax / FP8_MAX
    q = (wf / scale.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return Linear(q, scale.float())


def random_weights(cfg: ModelConfig, dtype: str = "bf16", device: str = "cpu", seed: int = 0) -> ModelWeights:
    """Seeded random weights, scaled like a trained model's so activations stay in range.

    Projections use std 1/sqrt(fan_in), which keeps each matmul's output at unit RMS after the
    RMSNorm in front of it; norm gains are 1 + 0.1*N(0,1) rather than exactly 1 so a missing or
    misplaced gain shows in the tests; the LM head uses std 3/sqrt(H) so the logits spread like a
    trained model's (a few units), which keeps greedy argmaxes well separated.
    """
    import torch

    store = torch_dtype(dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    H, I_moe, I_dense = cfg.hidden_size, cfg.moe_intermediate_size, cfg.intermediate_size

    def randn(*shape: int, std: float) -> Any:
        t = torch.randn(*shape, generator=gen, device=device, dtype=torch.float32 if store == torch.float64 else store)
        t = t.to(store) if t.dtype != store else t
        return t.mul_(std)

    def gain(n: int) -> Any:
        return (1.0 + 0.1 * torch.randn(n, generator=gen, device=device, dtype=torch.float32)).to(store)

    def lin(t: Any) -> Linear:
        return quantize_fp8(t) if dtype == "fp8" else Linear(t)

    layers = []
    for i in range(cfg.num_hidden_layers):
        moe = cfg.is_moe_layer(i)
        E, inter = (cfg.num_experts, I_moe) if moe else (1, I_dense)
        layers.append(
            LayerWeights(
                attn_norm=gain(H),
                qkv=lin(randn(cfg.q_size + 2 * cfg.kv_size, H, std=1 / math.sqrt(H))),
                q_norm=gain(cfg.head_dim),
                k_norm=gain(cfg.head_dim),
                o=lin(randn(H, cfg.q_size, std=1 / math.sqrt(cfg.q_size))),
                mlp_norm=gain(H),
                gate_up=lin(randn(E, 2 * inter, H, std=1 / math.sqrt(H))),
                down=lin(randn(E, H, inter, std=1 / math.sqrt(inter))),
                router=randn(E, H, std=1 / math.sqrt(H)) if moe else None,
            )
        )
    embed = randn(cfg.vocab_size, H, std=1.0)
    lm_head = embed if cfg.tie_word_embeddings else randn(cfg.vocab_size, H, std=3 / math.sqrt(H))
    return ModelWeights(cfg, dtype, embed, layers, gain(H), lm_head)


def active_weight_bytes(w: ModelWeights, experts_hit: int | None = None) -> dict[str, int]:
    """Bytes a decode step must read for the weights: every dense tensor, plus the experts the batch
    routes to (experts_hit per MoE layer; default num_experts_per_tok, i.e. batch 1)."""
    cfg = w.cfg
    k = experts_hit if experts_hit is not None else cfg.num_experts_per_tok
    attn = mlp = router = norms = 0
    for L in w.layers:
        attn += L.qkv.nbytes + L.o.nbytes
        norms += sum(t.numel() * t.element_size() for t in (L.attn_norm, L.mlp_norm, L.q_norm, L.k_norm))
        E = L.gate_up.w.shape[0]
        per_expert = (L.gate_up.nbytes + L.down.nbytes) // E
        mlp += per_expert * (min(k, E) if L.is_moe else 1)
        if L.is_moe:
            router += L.router.numel() * L.router.element_size()
    head = w.lm_head.numel() * w.lm_head.element_size()
    return {"attention": attn, "mlp": mlp, "router": router, "norms": norms, "lm_head": head,
            "total": attn + mlp + router + norms + head}


def head_split(cfg: ModelConfig, rank: int, size: int) -> tuple[int, int, int]:
    """(q heads, kv heads, first kv head) of one rank. size must divide the q heads; it divides the kv
    heads (each rank a disjoint group), or is a multiple of them (size / kv ranks share one kv head,
    replicated: TP 8 of a 4-kv-head model)."""
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    if nq % size or (nkv % size and size % nkv):
        raise InputError(f"--tp: must divide num_attention_heads ({nq}) and divide or be a multiple of "
                         f"num_key_value_heads ({nkv}), got {size}")
    hq = nq // size
    if nkv % size == 0:
        return hq, nkv // size, rank * (nkv // size)
    return hq, 1, rank * hq // (nq // nkv)  # the kv head this rank's q heads attend with


def shard(w: ModelWeights, rank: int, size: int) -> ModelWeights:
    """Tensor-parallel slice for one rank: attention heads and each expert's intermediate dimension.

    q/k/v heads and the matching columns of o are split by head (kv heads whole, so GQA groups stay on
    one rank; with more ranks than kv heads each rank holds the one kv head its q heads use, see
    head_split); gate/up rows and down columns are split along the intermediate dimension, so every rank
    reads 1/size of every selected expert and the per-rank partial outputs sum (one all-reduce after
    attention, one after the MLP). Embedding, norms, router and LM head are replicated.
    """
    cfg = w.cfg
    if size == 1:
        return w
    if not 0 <= rank < size:
        raise InputError(f"tp rank: must be in 0..{size - 1}, got {rank}")
    d = cfg.head_dim
    hq, hkv, kv0 = head_split(cfg, rank, size)

    def rows(lin: Linear, lo: int, hi: int) -> Linear:
        return Linear(lin.w[..., lo:hi, :], None if lin.scale is None else lin.scale[..., lo:hi])

    def cat_rows(parts: list[Linear]) -> Linear:
        import torch

        w_ = torch.cat([p.w for p in parts], dim=-2).contiguous()
        s_ = None if parts[0].scale is None else torch.cat([p.scale for p in parts], dim=-1).contiguous()
        return Linear(w_, s_)

    layers = []
    for L in w.layers:
        qs, ks = cfg.q_size, cfg.kv_size
        q = rows(L.qkv, rank * hq * d, (rank + 1) * hq * d)
        k = rows(L.qkv, qs + kv0 * d, qs + (kv0 + hkv) * d)
        v = rows(L.qkv, qs + ks + kv0 * d, qs + ks + (kv0 + hkv) * d)
        o = Linear(L.o.w[:, rank * hq * d : (rank + 1) * hq * d].contiguous(), L.o.scale)
        inter = L.gate_up.w.shape[1] // 2
        if inter % size:
            raise InputError(f"--tp: must divide the MLP intermediate size {inter}, got {size}")
        c = inter // size
        gate = rows(L.gate_up, rank * c, (rank + 1) * c)
        up = rows(L.gate_up, inter + rank * c, inter + (rank + 1) * c)
        down = Linear(L.down.w[:, :, rank * c : (rank + 1) * c].contiguous(), L.down.scale)
        layers.append(replace(L, qkv=cat_rows([q, k, v]), o=o, gate_up=cat_rows([gate, up]), down=down))
    return replace(w, layers=layers, tp=(rank, size))


def random_shard(cfg: ModelConfig, rank: int, size: int, dtype: str = "fp8", device: Any = "cpu",
                 seed: int = 0, chunk_elems: int = 1 << 26) -> ModelWeights:
    """One rank's tensor-parallel shard, generated directly where it will live (its GPU): the full
    model is never materialised anywhere, so a 235B-shape run needs only its own shard's memory.

    Same layout and scaling as `shard(random_weights(...))` (std from the FULL fan-in, so activations
    keep the full model's scale), but the values differ: replicated tensors (embedding, norms, router,
    LM head) come from a generator seeded with `seed` on every rank, so they are identical on all
    ranks; sharded tensors come from a per-rank generator, and an FP8 tensor's per-channel scale is
    taken over this rank's part of the row (what a checkpoint quantised per shard would hold). The
    ranks' shards together are one valid model; they are not slices of `random_weights(cfg, seed)`.
    FP8 tensors are generated and quantised `chunk_elems` at a time (bounded scratch memory).
    """
    import torch

    if dtype not in ("bf16", "fp8"):
        raise InputError(f"--weight-dtype: a generated shard is bf16 or fp8, got {dtype!r}")
    if size < 1 or not 0 <= rank < size:
        raise InputError(f"tp rank: must be in 0..{size - 1}, got {rank}")
    for name, n in (("moe_intermediate_size", cfg.moe_intermediate_size), ("intermediate_size", cfg.intermediate_size)):
        if n % size:
            raise InputError(f"--tp: must divide {name} ({n}), got {size}")
    H, d = cfg.hidden_size, cfg.head_dim
    hq, hkv, kv0 = head_split(cfg, rank, size)
    shared = torch.Generator(device=device)
    shared.manual_seed(seed)
    own = torch.Generator(device=device)
    own.manual_seed(seed * 7919 + 1 + rank)  # distinct per rank, never equal to `seed`'s stream

    def randn(gen: Any, shape: tuple[int, ...], std: float, store: Any) -> Any:
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).mul_(std).to(store)

    def gain(n: int) -> Any:
        return (1.0 + 0.1 * torch.randn(n, generator=shared, device=device, dtype=torch.float32)).to(torch.bfloat16)

    # k/v heads from a generator of their own kv-head group: ranks that share a replicated kv head
    # (more ranks than kv heads) must hold the very same k/v rows
    kv_gen = torch.Generator(device=device)
    kv_gen.manual_seed(seed * 7919 + 1 + size + kv0)

    def lin(shape: tuple[int, ...], std: float, gen: Any = own) -> Linear:
        if dtype == "bf16":
            return Linear(randn(gen, shape, std, torch.bfloat16))
        # [..., rows, cols] quantised per row, a block of leading rows at a time
        rows = math.prod(shape[:-1])
        q = torch.empty(rows, shape[-1], dtype=torch.float8_e4m3fn, device=device)
        s = torch.empty(rows, dtype=torch.float32, device=device)
        step = max(1, chunk_elems // shape[-1])
        for lo in range(0, rows, step):
            hi = min(rows, lo + step)
            part = quantize_fp8(randn(gen, (hi - lo, shape[-1]), std, torch.float32))
            q[lo:hi].copy_(part.w)
            s[lo:hi].copy_(part.scale)
            del part
        return Linear(q.view(shape), s.view(shape[:-1]))

    layers = []
    for i in range(cfg.num_hidden_layers):
        moe = cfg.is_moe_layer(i)
        E, inter = (cfg.num_experts, cfg.moe_intermediate_size) if moe else (1, cfg.intermediate_size)
        c = inter // size
        layers.append(LayerWeights(
            attn_norm=gain(H),
            qkv=_cat_rows([lin((hq * d, H), 1 / math.sqrt(H)), lin((2 * hkv * d, H), 1 / math.sqrt(H), kv_gen)]),
            q_norm=gain(d),
            k_norm=gain(d),
            o=lin((H, hq * d), 1 / math.sqrt(cfg.q_size)),
            mlp_norm=gain(H),
            gate_up=lin((E, 2 * c, H), 1 / math.sqrt(H)),
            down=lin((E, H, c), 1 / math.sqrt(inter)),
            router=randn(shared, (E, H), 1 / math.sqrt(H), torch.bfloat16) if moe else None,
        ))
    embed = randn(shared, (cfg.vocab_size, H), 1.0, torch.bfloat16)
    lm_head = embed if cfg.tie_word_embeddings else randn(shared, (cfg.vocab_size, H), 3 / math.sqrt(H), torch.bfloat16)
    return ModelWeights(cfg, dtype, embed, layers, gain(H), lm_head, tp=(rank, size),
                        notes=[f"random shard {rank} of {size}, generated on {device} (seed {seed})"])


def _cat_rows(parts: list[Linear]) -> Linear:
    import torch

    w = torch.cat([p.w for p in parts], dim=-2)
    return Linear(w, None if parts[0].scale is None else torch.cat([p.scale for p in parts], dim=-1))
