"""The fast decoder: bf16 (or FP8 + per-channel scale) weights, a float32 residual stream, our Triton
kernels, a paged KV cache, and the whole decode step captured as one CUDA graph.

One decode step for a batch of B sequences (each at its own position), per layer:
  add_rmsnorm -> qkv gemv -> qk_norm_rope -> kv_append -> decode_attention (+ split combine)
  -> o gemv -> add_rmsnorm -> router_topk -> expert gate-up+SwiGLU gemv -> expert down gemv
and after the last layer: add_rmsnorm -> LM-head gemv -> greedy or top-p token. The graph also
advances positions and writes the token into a device-side history, so generating a token costs the
host exactly one call (graph.replay()). Prefill runs whole prompts through batched matmuls.
Attention and KV append come from floorline.kernels.decode_attention / kv_cache.

Batch 1 takes a shorter step (_step_b1, 7 launches per MoE layer, programmatic dependent launch
between them): qkv gemv (RMSNorm folded in) -> attention with QK-norm + RoPE + KV append (+ combine)
-> o gemv adding into the residual -> router gemv + top-k in one launch -> gate-up (RMSNorm folded
in) -> down adding the weighted expert rows into the residual. Subclasses that need the residual
sums elsewhere (tensor parallel) must run with LaunchConfigs(fused_b1=False) or their own step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from floorline.errors import InputError
from floorline.kernels.decode_attention import DecodeConfig, decode_attention, decode_workspace, split_plan
from floorline.kernels.gemv import GemvConfig, gemv
from floorline.kernels.kv_cache import allocate_kv_cache, kv_append
from floorline.kernels.moe_b1_persistent import MoePersistentConfig, barrier_counter, moe_b1_persistent
from floorline.kernels.moe_gemv import moe_gemv, moe_gemv_b1
from floorline.kernels.rmsnorm import add_rmsnorm
from floorline.kernels.rope import qk_norm_rope
from floorline.kernels.router_topk import router_b1, router_topk, topk
from floorline.kernels.sampling import greedy, greedy_workspace, sample
from floorline.model.attention import decode_attention_f32, decode_attention_rope_f32
from floorline.model.reference import rope_inv_freq
from floorline.model.weights import ModelWeights

MAX_BATCH = 64
# The K/V cache the fast path stores by default. fp16 and bf16 cost the same 2 bytes a value; fp16's 3
# more mantissa bits are what keep `decode --check` under 1e-3 over 64 steps at the full 48-layer shape
# (bf16 K/V measured 2.9e-3 on an H200, fp16 3.7e-4; docs/notes/decode.md), so the default datapath is
# the validated one. K is QK-normed and V is a projection of a normed row: both sit far inside fp16's range.
DEFAULT_KV_DTYPE = "fp16"
PAGE_SIZE = 64


@dataclass(frozen=True)
class Sampling:
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


PREFETCH_NEXT = ("off", "l2", "evict-last")


@dataclass(frozen=True)
class LaunchConfigs:
    """GEMV launch shapes per weight class (tuned on the device: model/tune.py)."""

    qkv: GemvConfig = GemvConfig(block_n=16, block_k=256)
    o: GemvConfig = GemvConfig(block_n=8, block_k=512)
    # expert GEMVs and router: the tuner's picks on an H200 in session 5 (results/nvidia-h200, bench
    # decode b1 1K): two K tiles in flight per program; the router split over K in 4 slices, one warp
    gate_up: GemvConfig = GemvConfig(block_n=16, block_k=256, double_buffer=True)
    down: GemvConfig = GemvConfig(block_n=16, block_k=128, double_buffer=True)
    lm_head: GemvConfig = GemvConfig(block_n=32, block_k=256)
    router: GemvConfig = GemvConfig(block_n=2, block_k=512, num_warps=1, num_stages=4, split_k=4)
    # one_tile: a split of one block (1K contexts) loads its K/V before the PDL wait and q's prologue
    # (session 8); bench.decode.choose_step measures the step with it flipped and keeps the faster
    attention: DecodeConfig = DecodeConfig(one_tile=True)
    # batch 1: RMSNorm folded into the next GEMV, o-proj and expert outputs added into the residual
    # with atomics (no add_rmsnorm kernels); see FastDecoder._step_b1
    fused_b1: bool = True
    # programmatic dependent launch between our kernels (CUDA sm_90+ only; ignored elsewhere)
    pdl: bool = True
    # fused batch-1 step: QK-norm + RoPE + KV append inside the attention kernel (one launch fewer)
    attn_rope: bool = True
    # fused batch-1 step: router GEMV and top-k in one launch (the last program does the top-k)
    router_one_launch: bool = True
    # under PDL: dense GEMVs and attention prefetch their weights / K-V lines into L2 before waiting
    prefetch: bool = True
    # PDL for the two expert GEMVs too; off, each launches only once the kernel before it has finished.
    # The session 5 timeline on an H200 (docs/notes/decode.md) put the expert GEMVs at 1400 us of step
    # time with every kernel under PDL and 1156 us with none, so the bench chooses this on the whole
    # step (bench.decode.choose_step)
    pdl_experts: bool = True
    # under PDL: expert-down launches while gate-up streams and pulls its rows into L2 before waiting
    # (gate-up then waits first, see _step_b1). In session 5's all-PDL timeline gate-up took 21.3 us
    # per layer against 15-16 without PDL while down gained 0.6 us: the prefetch competes with, and
    # is likely evicted by, gate-up's 50 MB stream. Off: both expert GEMVs use the plain PDL handshake.
    expert_down_prefetch: bool = True
    # fused batch-1 step: gate-up + down in one persistent launch with a grid barrier
    # (kernels/moe_b1_persistent.py; not yet run on a GPU). None: the two moe_gemv_b1 launches.
    moe_persistent: MoePersistentConfig | None = None
    # fused batch-1 step under PDL: the attention's programs, once the qkv GEMV has finished, ask L2 for
    # the next layer's qkv weight, which HBM would otherwise idle through (attention, combine and the
    # router are latency-bound); "evict-last" marks the lines to outlive the evict-first expert streams
    # before their reader. "off", "l2" or "evict-last"; bench.decode.choose_step keeps it only if faster
    prefetch_next: str = "off"

    def __post_init__(self) -> None:
        if self.prefetch_next not in PREFETCH_NEXT:
            raise InputError(f"launch.prefetch_next: must be one of {', '.join(PREFETCH_NEXT)}, got {self.prefetch_next!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for evidence packets (nested configs become dicts, flags stay bools)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LaunchConfigs:
        """Inverse of as_dict (a packet's params.launch): reuse a tuned launch without re-tuning.
        Keys this version does not know are refused; keys it added since keep their defaults."""
        nested = {"qkv": GemvConfig, "o": GemvConfig, "gate_up": GemvConfig, "down": GemvConfig,
                  "lm_head": GemvConfig, "router": GemvConfig, "attention": DecodeConfig,
                  "moe_persistent": MoePersistentConfig}
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"launch: unknown field {bad[0]!r} (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k in nested and v is not None:
                sub = nested[k]
                extra = sorted(set(v) - set(sub.__dataclass_fields__))
                if extra:
                    raise InputError(f"launch.{k}: unknown field {extra[0]!r}")
                kw[k] = sub(**v)
            else:
                kw[k] = v
        return cls(**kw)


class FastDecoder:
    """Decode for up to max_batch sequences of up to max_len tokens each, on weights' device."""

    def __init__(self, weights: ModelWeights, max_batch: int, max_len: int, kv_dtype: str = DEFAULT_KV_DTYPE,
                 launch: LaunchConfigs = LaunchConfigs(), use_graph: bool | None = None,
                 attention: str = "precise") -> None:
        cfg = weights.cfg
        if not 1 <= max_batch <= MAX_BATCH:
            raise InputError(f"batch: must be 1..{MAX_BATCH}, got {max_batch}")
        if weights.dtype not in ("bf16", "fp8"):
            raise InputError(f"--dtype: the fast path runs bf16 or fp8 weights, got {weights.dtype}")
        if weights.tp[1] != 1:
            raise InputError("--tp: tensor parallel decode is not built yet (the weights shard; the step does not)")
        self.w, self.cfg, self.launch, self.kv_dtype = weights, cfg, launch, kv_dtype
        self.device = weights.device
        self.use_graph = (self.device.type == "cuda") if use_graph is None else use_graph
        self.max_batch, self.max_len = max_batch, max_len
        dev, f32, i32 = self.device, torch.float32, torch.int32
        pages_per_seq = -(-max_len // PAGE_SIZE)
        self.caches = [
            allocate_kv_cache(max_batch * pages_per_seq, cfg.num_key_value_heads, PAGE_SIZE, cfg.head_dim, kv_dtype, dev)
            for _ in range(cfg.num_hidden_layers)
        ]
        self.page_table = torch.arange(max_batch * pages_per_seq, dtype=i32, device=dev).view(max_batch, pages_per_seq)
        inv_freq, self.rope_scale = rope_inv_freq(cfg)
        self.inv_freq = inv_freq.to(dev)
        B, H, k = max_batch, cfg.hidden_size, max(cfg.num_experts_per_tok, 1)
        inter = max(cfg.moe_intermediate_size, cfg.intermediate_size)
        # Static buffers: a captured graph reads and writes these addresses on every replay.
        self.tokens = torch.zeros(B, dtype=torch.int64, device=dev)
        self.positions = torch.zeros(B, dtype=i32, device=dev)  # where this step's token goes
        self.seq_lens = torch.ones(B, dtype=i32, device=dev)  # positions + 1
        self.seq_ids = torch.arange(B, dtype=i32, device=dev)
        self.residual = torch.zeros(B, H, dtype=f32, device=dev)
        self.h = torch.zeros(B, H, dtype=f32, device=dev)
        self.qkv = torch.zeros(B, cfg.q_size + 2 * cfg.kv_size, dtype=f32, device=dev)
        self.q = torch.zeros(B, cfg.num_attention_heads, cfg.head_dim, dtype=torch.bfloat16, device=dev)
        self.k = torch.zeros(B, cfg.num_key_value_heads, cfg.head_dim, dtype=f32, device=dev)
        self.v = torch.zeros_like(self.k)
        # "precise": model/attention.py (fp32 q, p, out); "bf16": floorline.kernels.decode_attention
        if attention not in ("precise", "bf16"):
            raise InputError(f"attention: must be precise or bf16, got {attention!r}")
        self.precise_attention = attention == "precise" and kv_dtype in ("bf16", "fp16")
        self.sm_count = _sm_count(dev)
        self.pdl = launch.pdl and dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] >= 9
        self.q32 = torch.zeros(B, cfg.num_attention_heads, cfg.head_dim, dtype=f32, device=dev)
        self.attn = torch.zeros(B, 1, cfg.num_attention_heads, cfg.head_dim, dtype=torch.bfloat16, device=dev)
        self.attn32 = torch.zeros(B, cfg.q_size, dtype=f32, device=dev)
        self.o = torch.zeros(B, launch.o.split_k, H, dtype=f32, device=dev)  # split-K partials
        # [B, E] for batch > 1 and split-K 1; router_b1 at split-K S takes [S, E + 1] (per-split
        # partial logits plus each split's sum of squares in column E)
        self.router_logits = torch.zeros(max(B, launch.router.split_k), max(cfg.num_experts, 1) + 1, dtype=f32,
                                         device=dev)
        self.router_ticket = torch.zeros(1, dtype=i32, device=dev)  # router_b1's counter (stays 0 between launches)
        self.moe_barrier = barrier_counter(dev)  # moe_b1_persistent's grid barrier (never reset)
        self.ids = torch.zeros(B, k, dtype=i32, device=dev)
        self.route_w = torch.zeros(B, k, dtype=f32, device=dev)
        self.dense_ids = torch.zeros(B, dtype=i32, device=dev)
        self.dense_order = torch.arange(B, dtype=i32, device=dev)
        self.act = torch.zeros(B * k, inter, dtype=f32, device=dev)
        self.mlp_out = torch.zeros(B * k * launch.down.split_k, H, dtype=f32, device=dev)
        self.logits = torch.zeros(B, cfg.vocab_size, dtype=f32, device=dev)
        self.next_tokens = torch.zeros(B, dtype=torch.int64, device=dev)
        self.greedy_ws = greedy_workspace(B, cfg.vocab_size, dev)
        self.seed = torch.zeros(1, dtype=torch.int64, device=dev)
        self.step_index = torch.zeros(1, dtype=torch.int64, device=dev)
        self.history: torch.Tensor | None = None
        splits, _ = split_plan(B, cfg.num_key_value_heads, max_len, launch.attention, _sm_count(dev))
        # fuse_combine (the precise attention's in-kernel split merge) adds the ticket counters
        self.attn_ws = decode_workspace(B, 1, cfg.num_attention_heads, cfg.head_dim, splits, dev,
                                        fused=launch.attention.fuse_combine)
        self.graphs: dict[tuple[int, Sampling], Any] = {}
        self.record: list[Any] | None = None  # eager steps append each MoE layer's expert ids here
        # route_log [moe layers, B, k]: when set before capture, the graph copies each MoE layer's
        # expert ids here (decode --check hands them to the reference); prefill_routes likewise.
        self.route_log: torch.Tensor | None = None
        self.prefill_routes: dict[int, list[Any]] | None = None
        self.lengths = [0] * B

    def _log_route(self, moe_i: int, ids: Any) -> int:
        """An MoE layer's expert ids [B, k]: into `record` (eager steps) and `route_log` (captured steps,
        for decode --check's reference) when those are set. Returns the next MoE layer's index."""
        if self.record is not None:
            self.record.append(ids.clone())
        if self.route_log is not None:
            self.route_log[moe_i, : ids.shape[0]].copy_(ids)
        return moe_i + 1

    def _attn_workspace(self, B: int) -> tuple[Any, ...]:
        """The first B sequences' split partials and lse, plus the fused merge's ticket counters (shared
        by every launch: each leaves them at 0) when launch.attention.fuse_combine."""
        return (self.attn_ws[0][:B], self.attn_ws[1][:B], *self.attn_ws[2:])

    # ---- one decode step (the body the graph captures) -------------------------------------------
    def _step(self, B: int, sampling: Sampling) -> None:
        if B == 1 and self.launch.fused_b1 and self.precise_attention:
            self._step_b1(sampling)
            return
        cfg, w, L_ = self.cfg, self.w, self.launch
        eps = cfg.rms_norm_eps
        res, h = self.residual[:B], self.h[:B]
        res.copy_(w.embed.index_select(0, self.tokens[:B]))
        delta = None
        moe_i = 0
        for i, L in enumerate(w.layers):
            add_rmsnorm(res, L.attn_norm, eps, h, delta)
            gemv(h, L.qkv.w, self.qkv[:B], L.qkv.scale, L_.qkv)
            q_out = self.q32[:B] if self.precise_attention else self.q[:B]
            if self.kv_dtype in ("bf16", "fp16"):  # k and v go straight into their cache slots
                qk_norm_rope(self.qkv[:B], self.positions[:B], self.inv_freq, self.rope_scale, L.q_norm, L.k_norm,
                             eps, q_out, None, None, cfg.num_attention_heads, cfg.num_key_value_heads,
                             cache=self.caches[i], page_table=self.page_table, seq_ids=self.seq_ids[:B])
            else:
                qk_norm_rope(self.qkv[:B], self.positions[:B], self.inv_freq, self.rope_scale, L.q_norm, L.k_norm,
                             eps, q_out, self.k[:B], self.v[:B], cfg.num_attention_heads, cfg.num_key_value_heads)
                kv_append(self.caches[i], self.k[:B], self.v[:B], self.page_table[:B], self.seq_ids[:B],
                          self.positions[:B])
            if self.precise_attention:
                decode_attention_f32(self.q32[:B], self.caches[i], self.page_table[:B], self.seq_lens[:B],
                                     max_len=self.max_len, out=self.attn32[:B].view(B, 1, -1, cfg.head_dim),
                                     workspace=self._attn_workspace(B), sm_count=self.sm_count,
                                     cfg=L_.attention)
            else:
                decode_attention(self.q[:B].unsqueeze(1), self.caches[i], self.page_table[:B], self.seq_lens[:B],
                                 max_len=self.max_len, cfg=L_.attention, out=self.attn[:B],
                                 workspace=self._attn_workspace(B))
                self.attn32[:B].copy_(self.attn[:B].view(B, cfg.q_size))
            o = self.o[:B] if L_.o.split_k > 1 else self.o[:B, 0]
            gemv(self.attn32[:B], L.o.w, o, L.o.scale, L_.o)
            add_rmsnorm(res, L.mlp_norm, eps, h, o)
            if L.is_moe:
                k = cfg.num_experts_per_tok
                ids, wts = self.ids[:B], self.route_w[:B]
                router_topk(h, L.router, k, cfg.norm_topk_prob, ids, wts, self.router_logits[:B, :-1],
                            replace(L_.router, split_k=1))
                moe_i = self._log_route(moe_i, ids)
                slot_e, slot_w = ids.view(-1), wts.view(-1)
                order = torch.argsort(slot_e, stable=True).to(torch.int32) if B > 1 else None
            else:
                k, slot_e, slot_w = 1, self.dense_ids[:B], None
                order = self.dense_order[:B] if B > 1 else None
            split = L_.down.split_k
            act, out = self.act[: B * k], self.mlp_out[: B * k * split]
            moe_gemv(h, L.gate_up.w, slot_e, act[:, : L.gate_up.w.shape[1] // 2], tokens=B, scale=L.gate_up.scale,
                     swiglu=True, order=order, cfg=L_.gate_up)
            moe_gemv(act[:, : L.gate_up.w.shape[1] // 2], L.down.w, slot_e, out, tokens=B, scale=L.down.scale,
                     slot_weights=slot_w, order=order, cfg=L_.down)
            delta = out.view(B, k * split, cfg.hidden_size)
        add_rmsnorm(res, w.norm, eps, h, delta)
        gemv(h, w.lm_head, self.logits[:B], None, L_.lm_head)
        if sampling.greedy:
            greedy(self.logits[:B], self.next_tokens[:B], (self.greedy_ws[0][:B], self.greedy_ws[1][:B]))
        else:
            sample(self.logits[:B], self.next_tokens[:B], self.seed, sampling.temperature, sampling.top_p)
            self.seed.add_(1)
        self._advance(B)

    def _step_b1(self, sampling: Sampling) -> None:
        """Batch 1, 7 kernels per MoE layer instead of 11: each GEMV that consumes a normed row
        (qkv, router, gate-up, LM head) reads the raw residual and applies RMSNorm * gain on the fly,
        and o-proj / expert-down add their rows (split-K slices, the k weighted experts) straight into
        the residual with float32 atomics; the attention kernel does QK-norm + RoPE + KV append
        itself (LaunchConfigs.attn_rope); router GEMV and top-k are one launch (router_one_launch).
        Kernels launch with PDL where the device has it."""
        cfg, w, L_, pdl = self.cfg, self.w, self.launch, self.pdl
        pf = L_.prefetch
        eps = cfg.rms_norm_eps
        res = self.residual[:1]
        res.copy_(w.embed.index_select(0, self.tokens[:1]))
        moe_i = 0
        for i, L in enumerate(w.layers):
            gemv(res, L.qkv.w, self.qkv[:1], L.qkv.scale, L_.qkv, norm=(L.attn_norm, eps), pdl=pdl, prefetch=pf)
            attn_out, ws = self.attn32[:1].view(1, 1, -1, cfg.head_dim), self._attn_workspace(1)
            nxt = None  # the last layer's successor is the LM head, far larger than L2
            if L_.prefetch_next != "off" and i + 1 < len(w.layers) and w.layers[i + 1].qkv.w.is_contiguous():
                nxt = (w.layers[i + 1].qkv.w, L_.prefetch_next == "evict-last")
            if L_.attn_rope:
                decode_attention_rope_f32(self.qkv[:1], self.positions[:1], self.inv_freq, self.rope_scale, L.q_norm,
                                          L.k_norm, eps, self.caches[i], self.page_table[:1], self.seq_lens[:1],
                                          q_heads=cfg.num_attention_heads, max_len=self.max_len, out=attn_out,
                                          workspace=ws, sm_count=self.sm_count, cfg=L_.attention, pdl=pdl,
                                          prefetch=pf, l2_next=nxt)
            else:
                qk_norm_rope(self.qkv[:1], self.positions[:1], self.inv_freq, self.rope_scale, L.q_norm, L.k_norm,
                             eps, self.q32[:1], None, None, cfg.num_attention_heads, cfg.num_key_value_heads,
                             cache=self.caches[i], page_table=self.page_table, seq_ids=self.seq_ids[:1], pdl=pdl)
                decode_attention_f32(self.q32[:1], self.caches[i], self.page_table[:1], self.seq_lens[:1],
                                     max_len=self.max_len, out=attn_out, workspace=ws, sm_count=self.sm_count,
                                     cfg=L_.attention, pdl=pdl, prefetch=pf, l2_next=nxt)
            gemv(self.attn32[:1], L.o.w, res, L.o.scale, L_.o, accumulate=True, pdl=pdl, prefetch=pf)
            if L.is_moe:
                k = cfg.num_experts_per_tok
                ids, wts = self.ids[:1], self.route_w[:1]
                split = L_.router.split_k
                if L_.router_one_launch:
                    logits = self.router_logits[:split] if split > 1 else self.router_logits[:1, :-1]
                    router_b1(res, L.router, k, cfg.norm_topk_prob, ids, wts, logits, self.router_ticket,
                              norm=(L.mlp_norm, eps), pdl=pdl, prefetch=pf, gemv_cfg=L_.router)
                else:
                    logits = self.router_logits[:1, :-1]
                    gemv(res, L.router, logits, None, replace(L_.router, split_k=1), norm=(L.mlp_norm, eps), pdl=pdl,
                         prefetch=pf)
                    topk(logits, k, cfg.norm_topk_prob, ids, wts, pdl=pdl)
                moe_i = self._log_route(moe_i, ids)
                slot_e, slot_w = ids.view(-1), wts.view(-1)
            else:
                k, slot_e, slot_w = 1, self.dense_ids[:1], None
            act = self.act[:k, : L.gate_up.w.shape[1] // 2]
            # gate-up waits before it lets down launch, so down may read the ids (written by the router,
            # which finished before gate-up's wait returned) before its own wait and prefetch its
            # expert rows while gate-up runs
            # down's weight preload (GemvConfig.preload) reads the ids early, as the prefetch does
            pe, dpf = pdl and L_.pdl_experts, (pf and L_.expert_down_prefetch) or L_.down.preload
            if L_.moe_persistent is not None:
                moe_b1_persistent(res, L.gate_up.w, L.down.w, slot_e, slot_w, act, scale_gu=L.gate_up.scale,
                                  scale_down=L.down.scale, norm=(L.mlp_norm, eps), counter=self.moe_barrier,
                                  cfg=L_.moe_persistent, pdl=pe)
                continue
            moe_gemv_b1(res, L.gate_up.w, slot_e, act, scale=L.gate_up.scale, swiglu=True, norm=(L.mlp_norm, eps),
                        pdl=pe, wait_first=dpf, cfg=L_.gate_up)
            moe_gemv_b1(act, L.down.w, slot_e, res, scale=L.down.scale, slot_weights=slot_w, accumulate=True,
                        pdl=pe, prefetch_after_wait_first=dpf, cfg=L_.down)
        gemv(res, w.lm_head, self.logits[:1], None, L_.lm_head, norm=(w.norm, eps), pdl=pdl, prefetch=pf)
        if sampling.greedy:
            greedy(self.logits[:1], self.next_tokens[:1], (self.greedy_ws[0][:1], self.greedy_ws[1][:1]), pdl=pdl)
        else:
            sample(self.logits[:1], self.next_tokens[:1], self.seed, sampling.temperature, sampling.top_p)
            self.seed.add_(1)
        self._advance(1)

    def _advance(self, B: int) -> None:
        """The next step reads these: token, position, length, history."""
        self.tokens[:B].copy_(self.next_tokens[:B])
        self.positions[:B].add_(1)
        self.seq_lens[:B].add_(1)
        if self.history is not None:
            self.history[:B].index_copy_(1, self.step_index, self.next_tokens[:B].unsqueeze(1))
            self.step_index.add_(1)

    def _capture(self, B: int, sampling: Sampling) -> Any:
        """Warm up (compiles every Triton kernel) outside capture, then record one step."""
        snapshot = (self.tokens.clone(), self.positions.clone(), self.seq_lens.clone(), self.seed.clone(),
                    self.step_index.clone(), None if self.history is None else self.history.clone())
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self._step(B, sampling)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._restore(snapshot)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step(B, sampling)
        self._restore(snapshot)
        return graph

    def _restore(self, snap: tuple) -> None:
        self.tokens.copy_(snap[0])
        self.positions.copy_(snap[1])
        self.seq_lens.copy_(snap[2])
        self.seed.copy_(snap[3])
        self.step_index.copy_(snap[4])
        if snap[5] is not None:
            self.history.copy_(snap[5])

    def step(self, B: int, sampling: Sampling = Sampling()) -> None:
        """One token for each of the first B sequences: one graph replay on CUDA."""
        for b in range(B):
            if self.lengths[b] + 1 > self.max_len:
                raise InputError(f"sequence {b}: would exceed max_len {self.max_len}")
            self.lengths[b] += 1
        if not self.use_graph:
            self._step(B, sampling)
            return
        key = (B, sampling)
        if key not in self.graphs:
            for b in range(B):
                self.lengths[b] -= 1
            self.graphs[key] = self._capture(B, sampling)
            for b in range(B):
                self.lengths[b] += 1
        self.graphs[key].replay()

    # ---- prefill ---------------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """Run each prompt through batched matmuls (float32 math on the stored weights), fill the
        KV cache, and leave each sequence's last logits in self.logits; returns them [B, V]."""
        if not 1 <= len(prompts) <= self.max_batch:
            raise InputError(f"batch: must be 1..{self.max_batch} prompts, got {len(prompts)}")
        for b, p in enumerate(prompts):
            if not p:
                raise InputError(f"--prompt-ids: prompt {b} is empty")
            if len(p) >= self.max_len:
                raise InputError(f"--prompt-ids: prompt {b} has {len(p)} tokens, max_len is {self.max_len}")
            bad = [t for t in p if not 0 <= t < self.cfg.vocab_size]
            if bad:
                raise InputError(f"--prompt-ids: token {bad[0]} is outside the vocabulary 0..{self.cfg.vocab_size - 1}")
            self.logits[b] = self._prefill_one(b, p)
            self.lengths[b] = len(p)
        B = len(prompts)
        self.positions[:B] = torch.tensor([len(p) for p in prompts], dtype=torch.int32, device=self.device)
        self.seq_lens[:B] = self.positions[:B] + 1
        return self.logits[:B]

    def _prefill_one(self, b: int, tokens: list[int]) -> torch.Tensor:
        from floorline.model.prefill import prefill_sequence

        return prefill_sequence(self, b, tokens)

    def set_context(self, lengths: list[int], seed: int = 0) -> None:
        """Synthetic context for benchmarks: fill each sequence's first lengths[b] cache slots with
        random keys/values (what a prefill would have written), so decode reads a full-size cache."""
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        for b, n in enumerate(lengths):
            if n >= self.max_len:
                raise InputError(f"context: {n} must be < max_len {self.max_len}")
            self.lengths[b] = n
        pages = -(-max(lengths) // PAGE_SIZE)
        for c in self.caches:
            for t in (c.k, c.v):
                view = t.view(self.max_batch, -1, *t.shape[1:])[: len(lengths), :pages]
                view.copy_(torch.randn(view.shape, generator=g, device=self.device, dtype=torch.float32).to(t.dtype))
        B = len(lengths)
        self.positions[:B] = torch.tensor(lengths, dtype=torch.int32, device=self.device)
        self.seq_lens[:B] = self.positions[:B] + 1
        self.tokens[:B] = torch.randint(0, self.cfg.vocab_size, (B,), generator=g, device=self.device)


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(device).multi_processor_count
