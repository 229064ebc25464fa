"""Tensor-parallel decode: one FastDecoder per rank over its shard of the weights (model/weights.shard
or random_shard: attention heads and each expert's intermediate dimension), the residual stream
replicated, and two sums over ranks per layer, each fused with the residual add and the next RMSNorm:

    h, residual = all_reduce_residual_rmsnorm(partial, residual, next_norm_gain)

after the o projection and after the expert down projection (floorline.comm provides that op).

A rank's step is a generator that yields (partial [B, H] float32, gain [H] float32) at each of those
points; a driver performs the sum. `EmulatedGroup` is the single-process driver the CPU tests use (it
advances every rank to the same point, then adds). `CommGroup` is single-thread mode over
floorline.comm: one host thread drives every GPU; eager steps advance the ranks in lockstep (so no
GPU's queue fills up behind a collective whose peer has not been launched yet), and `capture` records
each rank's whole step, its all-reduces included, as ONE CUDA graph on that rank's GPU (its own
capture stream); a token then costs one replay per GPU. Every rank computes the same sum in the same
rank order, so h, the router's choice and the greedy token are bit-identical on every rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from floorline.errors import InputError
from floorline.kernels.gemv import gemv
from floorline.kernels.moe_gemv import moe_gemv, moe_gemv_b1
from floorline.kernels.rmsnorm import add_rmsnorm
from floorline.kernels.rope import qk_norm_rope
from floorline.kernels.router_topk import router_b1, router_topk
from floorline.kernels.sampling import greedy
from floorline.model.attention import decode_attention_f32, decode_attention_rope_f32
from floorline.model.fast import FastDecoder, LaunchConfigs
from floorline.model.weights import ModelWeights, head_split, shard


def local_config(cfg: Any, size: int) -> Any:
    """The shape one rank computes: its heads and its slice of every MLP's intermediate dimension."""
    hq, hkv, _ = head_split(cfg, 0, size)
    return replace(cfg, num_attention_heads=hq, num_key_value_heads=hkv,
                   moe_intermediate_size=cfg.moe_intermediate_size // size,
                   intermediate_size=cfg.intermediate_size // size)


class RankDecoder(FastDecoder):
    """One rank: FastDecoder's buffers and kernels at the local shape; the step yields at the sums."""

    def __init__(self, part: ModelWeights, max_batch: int, max_len: int,
                 launch: LaunchConfigs = LaunchConfigs()) -> None:
        rank, size = part.tp
        local = replace(part, cfg=local_config(part.cfg, size), tp=(0, 1))
        # a rank sums its partial rows itself before the all-reduce: no split-K partials
        launch = replace(launch, o=replace(launch.o, split_k=1), down=replace(launch.down, split_k=1))
        super().__init__(local, max_batch, max_len, kv_dtype="bf16", launch=launch, use_graph=False)
        self.rank, self.size, self.full_cfg = rank, size, part.cfg
        f32 = torch.float32
        self.gains = [(L.attn_norm.to(f32), L.mlp_norm.to(f32)) for L in local.layers]
        self.final_gain = local.norm.to(f32)
        self.partial = torch.zeros(max_batch, part.cfg.hidden_size, dtype=f32, device=self.device)

    @classmethod
    def from_full(cls, weights: ModelWeights, rank: int, size: int, max_batch: int, max_len: int,
                  launch: LaunchConfigs = LaunchConfigs(), device: Any = None) -> RankDecoder:
        """Rank `rank` of `size` over a slice of full weights (moved to `device` when given)."""
        part = shard(weights, rank, size)
        if size == 1:
            part = replace(part, tp=(0, 1))
        return cls(part if device is None else _to(part, device), max_batch, max_len, launch)

    def snapshot(self) -> tuple:
        return (self.tokens.clone(), self.positions.clone(), self.seq_lens.clone(), self.seed.clone(),
                self.step_index.clone(), None)

    def step_gen(self, B: int) -> Iterator[tuple[Any, Any]]:
        """One greedy decode step; yields (partial sum of this rank, the next norm's gain). The
        driver must leave residual += sum over ranks and h = rmsnorm(residual) * gain."""
        cfg, w, L_ = self.cfg, self.w, self.launch
        eps = cfg.rms_norm_eps
        res, h = self.residual[:B], self.h[:B]
        res.copy_(w.embed.index_select(0, self.tokens[:B]))
        add_rmsnorm(res, w.layers[0].attn_norm, eps, h)
        if B == 1 and L_.fused_b1 and self.precise_attention:
            yield from self._layers_b1()
        else:
            yield from self._layers(B)
        gemv(h, w.lm_head, self.logits[:B], None, L_.lm_head)
        greedy(self.logits[:B], self.next_tokens[:B], (self.greedy_ws[0][:B], self.greedy_ws[1][:B]))
        self.tokens[:B].copy_(self.next_tokens[:B])
        self.positions[:B].add_(1)
        self.seq_lens[:B].add_(1)

    def _layers(self, B: int) -> Iterator[tuple[Any, Any]]:
        cfg, w, L_ = self.cfg, self.w, self.launch
        eps = cfg.rms_norm_eps
        h = self.h[:B]
        moe_i = 0
        for i, L in enumerate(w.layers):
            gemv(h, L.qkv.w, self.qkv[:B], L.qkv.scale, L_.qkv)
            qk_norm_rope(self.qkv[:B], self.positions[:B], self.inv_freq, self.rope_scale, L.q_norm, L.k_norm, eps,
                         self.q32[:B], None, None, cfg.num_attention_heads, cfg.num_key_value_heads,
                         cache=self.caches[i], page_table=self.page_table, seq_ids=self.seq_ids[:B])
            decode_attention_f32(self.q32[:B], self.caches[i], self.page_table[:B], self.seq_lens[:B],
                                 max_len=self.max_len, out=self.attn32[:B].view(B, 1, -1, cfg.head_dim),
                                 workspace=self._attn_workspace(B), sm_count=self.sm_count,
                                 cfg=L_.attention)
            gemv(self.attn32[:B], L.o.w, self.partial[:B], L.o.scale, L_.o)
            yield self.partial[:B], self.gains[i][1]
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
            inter = L.gate_up.w.shape[1] // 2
            act, out = self.act[: B * k, :inter], self.mlp_out[: B * k]
            moe_gemv(h, L.gate_up.w, slot_e, act, tokens=B, scale=L.gate_up.scale, swiglu=True, order=order,
                     cfg=L_.gate_up)
            moe_gemv(act, L.down.w, slot_e, out, tokens=B, scale=L.down.scale, slot_weights=slot_w, order=order,
                     cfg=L_.down)
            torch.sum(out.view(B, k, -1), dim=1, out=self.partial[:B])
            nxt = self.gains[i + 1][0] if i + 1 < len(w.layers) else self.final_gain
            yield self.partial[:B], nxt

    def _layers_b1(self) -> Iterator[tuple[Any, Any]]:
        """Batch 1 on the single-GPU fused step's kernels (FastDecoder._step_b1), minus what the
        all-reduce already does: h arrives normed, so no GEMV folds RMSNorm in. Per layer: qkv,
        attention with QK-norm + RoPE + KV append (+ split combine), o, [sum], router + top-k in one
        launch, gate-up + SwiGLU, a memset, down with its k weighted rows added into the partial by
        float32 atomics (instead of k stored rows and a torch.sum launch), [sum]. No PDL: the
        all-reduce kernels do not take part in it."""
        cfg, w, L_ = self.cfg, self.w, self.launch
        eps = cfg.rms_norm_eps
        h, partial = self.h[:1], self.partial[:1]
        moe_i = 0
        for i, L in enumerate(w.layers):
            gemv(h, L.qkv.w, self.qkv[:1], L.qkv.scale, L_.qkv)
            attn_out, ws = self.attn32[:1].view(1, 1, -1, cfg.head_dim), self._attn_workspace(1)
            if L_.attn_rope:
                decode_attention_rope_f32(self.qkv[:1], self.positions[:1], self.inv_freq, self.rope_scale,
                                          L.q_norm, L.k_norm, eps, self.caches[i], self.page_table[:1],
                                          self.seq_lens[:1], q_heads=cfg.num_attention_heads, max_len=self.max_len,
                                          out=attn_out, workspace=ws, sm_count=self.sm_count, cfg=L_.attention)
            else:
                qk_norm_rope(self.qkv[:1], self.positions[:1], self.inv_freq, self.rope_scale, L.q_norm, L.k_norm,
                             eps, self.q32[:1], None, None, cfg.num_attention_heads, cfg.num_key_value_heads,
                             cache=self.caches[i], page_table=self.page_table, seq_ids=self.seq_ids[:1])
                decode_attention_f32(self.q32[:1], self.caches[i], self.page_table[:1], self.seq_lens[:1],
                                     max_len=self.max_len, out=attn_out, workspace=ws, sm_count=self.sm_count,
                                     cfg=L_.attention)
            gemv(self.attn32[:1], L.o.w, partial, L.o.scale, L_.o)
            yield partial, self.gains[i][1]
            if L.is_moe:
                k = cfg.num_experts_per_tok
                ids, wts = self.ids[:1], self.route_w[:1]
                split = L_.router.split_k
                logits = self.router_logits[:split] if split > 1 else self.router_logits[:1, :-1]
                router_b1(h, L.router, k, cfg.norm_topk_prob, ids, wts, logits, self.router_ticket,
                          gemv_cfg=L_.router)
                moe_i = self._log_route(moe_i, ids)
                slot_e, slot_w = ids.view(-1), wts.view(-1)
            else:
                k, slot_e, slot_w = 1, self.dense_ids[:1], None
            act = self.act[:k, : L.gate_up.w.shape[1] // 2]
            moe_gemv_b1(h, L.gate_up.w, slot_e, act, scale=L.gate_up.scale, swiglu=True, cfg=L_.gate_up)
            partial.zero_()
            moe_gemv_b1(act, L.down.w, slot_e, partial, scale=L.down.scale, slot_weights=slot_w, accumulate=True,
                        cfg=L_.down)
            nxt = self.gains[i + 1][0] if i + 1 < len(w.layers) else self.final_gain
            yield partial, nxt


def feed(group: Any, prompts: list[list[int]]) -> None:
    """Prefill by decode steps, one prompt token per step (equal-length prompts): the tensor-parallel
    path has no batched prefill yet. Leaves each rank ready to decode after the prompt."""
    lengths = {len(p) for p in prompts}
    if len(lengths) != 1:
        raise InputError("tensor-parallel prefill: prompts must have equal lengths for now")
    B = len(prompts)
    for t in range(lengths.pop()):
        tok = torch.tensor([p[t] for p in prompts])
        for r in group.ranks:
            r.tokens[:B] = tok.to(r.device)
            r.positions[:B] = t
            r.seq_lens[:B] = t + 1
        group.step(B)


class EmulatedGroup:
    """Every rank in one process on one device; the sum over ranks is a torch sum (tests, CPU)."""

    def __init__(self, ranks: list[RankDecoder]) -> None:
        self.ranks = ranks

    def step(self, B: int) -> None:
        gens = [r.step_gen(B) for r in self.ranks]
        while True:
            reqs = [next(g, None) for g in gens]
            if all(q is None for q in reqs):
                return
            if any(q is None for q in reqs):
                raise RuntimeError("ranks reached different points of the step")
            total = sum(q[0] for q in reqs)
            for r, (_, gain) in zip(self.ranks, reqs, strict=True):
                add_rmsnorm(r.residual[:B], gain, r.cfg.rms_norm_eps, r.h[:B], total)


class CommGroup:
    """Single-thread mode over floorline.comm: one host thread drives every rank's GPU."""

    def __init__(self, ranks: list[RankDecoder], comms: list[Any]) -> None:
        if len(ranks) != len(comms):
            raise InputError(f"--tp: {len(ranks)} ranks but {len(comms)} communicators")
        self.ranks, self.comms = ranks, comms
        self.graphs: dict[int, list[Any]] = {}

    def _reduce(self, r: RankDecoder, comm: Any, B: int, partial: Any, gain: Any) -> None:
        comm.all_reduce_residual_rmsnorm(partial, r.residual[:B], gain, r.cfg.rms_norm_eps,
                                         out=r.h[:B], residual_out=r.residual[:B])

    def eager_step(self, B: int) -> None:
        """Every rank advanced to the same sum, then every rank's all-reduce launched, in turn."""
        gens = [r.step_gen(B) for r in self.ranks]
        while True:
            reqs = []
            for r, g in zip(self.ranks, gens, strict=True):
                with _on(r.device):
                    reqs.append(next(g, None))
            if all(q is None for q in reqs):
                return
            if any(q is None for q in reqs):
                raise RuntimeError("ranks reached different points of the step")
            for r, comm, (partial, gain) in zip(self.ranks, self.comms, reqs, strict=True):
                with _on(r.device):
                    self._reduce(r, comm, B, partial, gain)

    def step(self, B: int) -> None:
        """One token for the first B sequences: one graph replay per GPU once captured, else eager."""
        graphs = self.graphs.get(B)
        if graphs is None:
            self.eager_step(B)
            return
        for r, g in zip(self.ranks, graphs, strict=True):
            with _on(r.device):
                g.replay()

    def synchronize(self) -> None:
        for r, comm in zip(self.ranks, self.comms, strict=True):
            with _on(r.device):
                comm.synchronize()

    def capture(self, B: int) -> list[Any]:
        """One CUDA graph per GPU holding that rank's whole step (all-reduces included). A warm-up
        step runs first, eagerly (compiles every kernel outside capture); the state it advanced is
        restored, so capturing does not move the sequences."""
        snaps = [r.snapshot() for r in self.ranks]
        self.eager_step(B)
        self.synchronize()
        for r, snap in zip(self.ranks, snaps, strict=True):
            r._restore(snap)
        graphs = []
        for r, comm in zip(self.ranks, self.comms, strict=True):
            g = torch.cuda.CUDAGraph()
            # each GPU its own capture stream (torch's default capture stream belongs to one device)
            with torch.cuda.device(r.device), torch.cuda.graph(g, stream=torch.cuda.Stream(r.device)):
                for partial, gain in r.step_gen(B):
                    self._reduce(r, comm, B, partial, gain)
            graphs.append(g)
        for r, snap in zip(self.ranks, snaps, strict=True):
            r._restore(snap)
        self.synchronize()
        self.graphs[B] = graphs
        return graphs

    def release(self) -> None:
        """Drop the graphs (their memory pools go with them)."""
        self.graphs.clear()


def _on(device: Any) -> Any:
    """The device guard for a rank's launches (Triton and floorline.comm launch on the current device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _to(w: ModelWeights, device: Any) -> ModelWeights:
    from floorline.model.weights import Linear

    def mv(t: Any) -> Any:
        if t is None:
            return None
        if isinstance(t, Linear):
            return Linear(mv(t.w), mv(t.scale))
        return t.to(device)

    layers = [replace(L, **{f: mv(getattr(L, f)) for f in ("attn_norm", "qkv", "q_norm", "k_norm", "o", "mlp_norm",
                                                           "gate_up", "down", "router")}) for L in w.layers]
    embed = mv(w.embed)
    head = embed if w.lm_head is w.embed else mv(w.lm_head)
    return replace(w, embed=embed, layers=layers, norm=mv(w.norm), lm_head=head)

