"""What `floorline generate` and `floorline decode --check` do, without the CLI: build weights,
run the reference or the fast path, compare them step by step."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floorline.errors import InputError
from floorline.model.config import builtin

REFERENCE_DTYPES = ("float64", "float32")
CHECK_KV_DTYPES = ("bf16", "fp16")  # the fast decoder's caches decode --check can validate


def parse_prompts(text: str) -> list[list[int]]:
    """'1,2,3' is one prompt; ';' separates the prompts of a batch ('1,2,3;4,5')."""
    prompts = []
    for part in text.split(";"):
        try:
            ids = [int(t) for t in part.replace(" ", "").split(",") if t != ""]
        except ValueError:
            raise InputError(f"--prompt-ids: must be comma-separated integers (';' between prompts), got {text!r}") from None
        if not ids:
            raise InputError(f"--prompt-ids: empty prompt in {text!r}")
        prompts.append(ids)
    if len(prompts) > 64:
        raise InputError(f"--prompt-ids: at most 64 prompts, got {len(prompts)}")
    return prompts


def pick_device(device: str, dtype: str) -> str:
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device: must be cpu or cuda, got {device!r}")
    if device == "cuda":
        from floorline.gpu.probe import cuda_available

        if not cuda_available():
            raise InputError("--device cuda: no CUDA GPU here (use --device cpu)")
    elif dtype in ("bf16", "fp8"):
        os.environ.setdefault("TRITON_INTERPRET", "1")  # our Triton kernels on CPU tensors
    return device


def build_weights(checkpoint: Path | None, model: str | None, layers: int | None, experts: int | None,
                  dtype: str, device: str, seed: int = 0) -> Any:
    from floorline.model.weights import WEIGHT_DTYPES, random_weights

    if dtype not in WEIGHT_DTYPES:
        raise InputError(f"--dtype: must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    if (checkpoint is None) == (model is None):
        raise InputError("--checkpoint / --model: give exactly one")
    if checkpoint is not None:
        from floorline.model.checkpoint import load_checkpoint

        w = load_checkpoint(checkpoint, dtype=dtype, device=device)
        return cut_weights(w, layers, experts)
    return random_weights(builtin(model).cut(layers, experts), dtype=dtype, device=device, seed=seed)


def cut_weights(w: Any, layers: int | None, experts: int | None) -> Any:
    """The first `layers` layers and the first `experts` experts of loaded weights."""
    from dataclasses import replace

    cfg = w.cfg.cut(layers, experts)
    if cfg is w.cfg:
        return w
    new_layers = []
    for L in w.layers[: cfg.num_hidden_layers]:
        if L.is_moe and cfg.num_experts < L.gate_up.w.shape[0]:
            E = cfg.num_experts

            def head(lin: Any, E: int = E) -> Any:
                return type(lin)(lin.w[:E], None if lin.scale is None else lin.scale[:E])

            L = replace(L, gate_up=head(L.gate_up), down=head(L.down), router=L.router[:E])
        new_layers.append(L)
    return replace(w, cfg=cfg, layers=new_layers)


def choose(logits: Any, greedy: bool, temperature: float, top_p: float, gen: Any) -> int:
    """Next token on the reference path (torch, float64): argmax, or top-p sampling."""
    import torch

    if greedy:
        return int(torch.argmax(logits))
    p = torch.softmax(logits.double() / temperature, dim=-1)
    srt, idx = torch.sort(p, descending=True)
    keep = int((torch.cumsum(srt, 0) < top_p).sum()) + 1
    pick = torch.multinomial((srt[:keep] / srt[:keep].sum()).cpu(), 1, generator=gen)
    return int(idx[int(pick)])


@dataclass
class Generation:
    tokens: list[list[int]]
    ms_per_token: float
    prefill_ms: float
    path: str
    logits: list[Any] = field(default_factory=list)  # per generated token: [B, V] float32/64 on the CPU


def generate(w: Any, prompts: list[list[int]], max_new: int, greedy: bool = True, temperature: float = 1.0,
             top_p: float = 1.0, seed: int = 0, keep_logits: bool = False) -> Generation:
    import torch

    if max_new < 1:
        raise InputError(f"--max-new-tokens: must be >= 1, got {max_new}")
    if not greedy and (temperature <= 0 or not 0 < top_p <= 1):
        raise InputError(f"--temperature/--top-p: need temperature > 0 and 0 < top-p <= 1, got {temperature}, {top_p}")
    for b, p in enumerate(prompts):
        bad = [t for t in p if not 0 <= t < w.cfg.vocab_size]
        if bad:
            raise InputError(f"--prompt-ids: token {bad[0]} (prompt {b}) is outside the vocabulary 0..{w.cfg.vocab_size - 1}")
    if w.dtype in REFERENCE_DTYPES:
        return _generate_reference(w, prompts, max_new, greedy, temperature, top_p, seed, keep_logits)
    from floorline.kernels.sampling import greedy as greedy_kernel
    from floorline.kernels.sampling import sample
    from floorline.model.fast import FastDecoder, Sampling

    B = len(prompts)
    dec = FastDecoder(w, max_batch=B, max_len=max(len(p) for p in prompts) + max_new + 1)
    sampling = Sampling(greedy, temperature, top_p, seed)
    dec.seed.fill_(seed)
    sync = torch.cuda.synchronize if dec.device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    dec.prefill(prompts)
    if greedy:
        greedy_kernel(dec.logits[:B], dec.tokens[:B])
    else:
        sample(dec.logits[:B], dec.tokens[:B], dec.seed, temperature, top_p)
        dec.seed.add_(1)
    sync()
    prefill_ms = (time.perf_counter() - t0) * 1e3
    logits = [dec.logits[:B].cpu().clone()] if keep_logits else []
    dec.history = torch.zeros(B, max_new, dtype=torch.int64, device=dec.device)
    dec.history[:, 0] = dec.tokens[:B]
    dec.step_index.fill_(1)
    if max_new > 1 and dec.use_graph:
        dec.graphs[(B, sampling)] = dec._capture(B, sampling)  # capture before the clock starts
    t1 = time.perf_counter()
    for _ in range(max_new - 1):
        dec.step(B, sampling)
        if keep_logits:
            logits.append(dec.logits[:B].cpu().clone())
    sync()
    ms = (time.perf_counter() - t1) * 1e3 / max(1, max_new - 1)
    path = "fast (CUDA graph)" if dec.use_graph else "fast (Triton interpreter, CPU)"
    return Generation(dec.history.cpu().tolist(), ms, prefill_ms, path, logits)


def _generate_reference(w: Any, prompts: list[list[int]], max_new: int, greedy: bool, temperature: float,
                        top_p: float, seed: int, keep_logits: bool) -> Generation:
    import torch

    from floorline.model.reference import ReferenceModel

    dt = torch.float64 if w.dtype == "float64" else torch.float32
    ref = ReferenceModel(w, dtype=dt)
    gen = torch.Generator().manual_seed(seed)
    caches = [ref.new_cache() for _ in prompts]
    t0 = time.perf_counter()
    last = [ref.forward(p, c)[-1] for p, c in zip(prompts, caches, strict=True)]
    prefill_ms = (time.perf_counter() - t0) * 1e3
    out: list[list[int]] = [[] for _ in prompts]
    logits = []
    t1 = time.perf_counter()
    for step in range(max_new):
        if keep_logits:
            logits.append(torch.stack(last).cpu())
        for b in range(len(prompts)):
            out[b].append(choose(last[b], greedy, temperature, top_p, gen))
        if step + 1 < max_new:
            last = [ref.forward([out[b][-1]], caches[b])[-1] for b in range(len(prompts))]
    ms = (time.perf_counter() - t1) * 1e3 / max(1, max_new - 1)
    return Generation(out, ms, prefill_ms, f"reference ({w.dtype}, {w.device.type})", logits)


@dataclass
class CheckResult:
    """Per step (0 = prefill), max over the batch of logits rel-L2 against three float64 references:
    shared routing (the primary: same expert choices as the fast path, exact K/V), shared routing with
    K/V rounded as the fast path's cache stores them (arithmetic alone), and free routing (the reference
    picks its own experts: near-tie router decisions may flip, and a flip changes the token's MoE
    output by a whole expert)."""

    steps: int
    batch: int
    per_step: list[float]
    per_step_kv_matched: list[float]
    per_step_free: list[float]
    greedy_match: bool
    first_mismatch: int | None
    greedy_match_free: bool
    routing_decisions: int
    routing_differences: int
    max_tie_gap: float  # largest relative prob gap (k-th vs k+1-th) among the decisions that differed
    seconds: float
    kv_dtype: str = "fp16"
    # per step, min over the batch of the shared-routing reference's top-1 minus top-2 logit (the
    # greedy margin), and of |fast - reference| on that same pair of logits (how far the fast path
    # moved the margin): greedy identity needs the second below the first at every step.
    margins: list[float] = field(default_factory=list)
    margin_errors: list[float] = field(default_factory=list)
    mismatches: list[int] = field(default_factory=list)  # every step whose greedy tokens differ (shared routing)

    @property
    def max_rel_l2(self) -> float:
        return max(self.per_step)


def check(w: Any, prompts: list[list[int]], steps: int, progress: Any = None, launch: Any = None,
          kv_dtype: str = "fp16") -> CheckResult:
    """Fast path and float64 reference side by side on the same weights, every step; every reference
    is fed the fast path's greedy token so all stay on one trajectory. kv_dtype: the fast path's
    cache, fp16 (the default, and what `bench decode` runs) or bf16 (same bytes, coarser rounding: docs/model.md)."""
    import torch

    from floorline.model.fast import FastDecoder, LaunchConfigs, Sampling
    from floorline.model.reference import ReferenceModel

    if steps < 1:
        raise InputError(f"--steps: must be >= 1, got {steps}")
    if kv_dtype not in CHECK_KV_DTYPES:
        raise InputError(f"--kv-dtype: must be one of {', '.join(CHECK_KV_DTYPES)}, got {kv_dtype!r}")
    if w.dtype not in ("bf16", "fp8"):
        raise InputError(f"--dtype: decode --check compares the fast path (bf16 or fp8) with float64, got {w.dtype}")
    B = len(prompts)
    cfg = w.cfg
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.num_hidden_layers))
    t0 = time.perf_counter()
    dec = FastDecoder(w, max_batch=B, max_len=max(len(p) for p in prompts) + steps + 2, kv_dtype=kv_dtype,
                      launch=launch or LaunchConfigs())
    dec.prefill_routes = {}
    if n_moe:
        dec.route_log = torch.zeros(n_moe, B, cfg.num_experts_per_tok, dtype=torch.int32, device=dec.device)
    ref = ReferenceModel(w)
    interp = os.environ.get("TRITON_INTERPRET") == "1"

    def store(t: Any) -> Any:
        if kv_dtype == "fp16":  # round-to-nearest-even on the GPU and in the interpreter (numpy) alike
            return t.float().to(torch.float16).to(torch.float64)
        if interp:  # the CPU interpreter converts fp32 -> bf16 by truncation, not round-to-nearest
            bits = t.float().view(torch.int32) & ~0xFFFF
            return bits.view(torch.float32).to(torch.float64)
        return t.float().to(torch.bfloat16).to(torch.float64)

    shared = [ref.new_cache() for _ in prompts]
    matched = [ref.new_cache(store) for _ in prompts]
    free = [ref.new_cache() for _ in prompts]
    gaps: list[float] = []

    def rel(a: Any, b: Any) -> float:
        return float((a.double() - b).norm() / b.norm())

    fast = dec.prefill(prompts).clone()
    r_s = [ref.forward(p, shared[b], dec.prefill_routes.get(b) if n_moe else None, gaps)[-1] for b, p in enumerate(prompts)]
    r_m = [ref.forward(p, matched[b], dec.prefill_routes.get(b) if n_moe else None)[-1] for b, p in enumerate(prompts)]
    r_f = [ref.forward(p, free[b])[-1] for b, p in enumerate(prompts)]
    decisions = sum(len(p) for p in prompts) * n_moe
    per, per_m, per_f = [], [], []
    margins, margin_err, mismatches = [], [], []
    match, first, match_free = True, None, True
    tokens = torch.argmax(fast, dim=-1)
    for s in range(steps + 1):
        if s > 0:
            dec.step(B, Sampling())
            fast = dec.logits[:B].clone()
            toks = tokens.tolist()
            routes = [dec.route_log[:, b].unsqueeze(1) for b in range(B)] if n_moe else [None] * B
            r_s = [ref.forward([toks[b]], shared[b], _split(routes[b]), gaps)[-1] for b in range(B)]
            r_m = [ref.forward([toks[b]], matched[b], _split(routes[b]))[-1] for b in range(B)]
            r_f = [ref.forward([toks[b]], free[b])[-1] for b in range(B)]
            decisions += B * n_moe
            tokens = dec.next_tokens[:B].clone()
        per.append(max(rel(fast[b], r_s[b]) for b in range(B)))
        per_m.append(max(rel(fast[b], r_m[b]) for b in range(B)))
        per_f.append(max(rel(fast[b], r_f[b]) for b in range(B)))
        ours = torch.argmax(fast, dim=-1).tolist()
        if ours != [int(torch.argmax(r)) for r in r_s]:
            mismatches.append(s)
            if match:
                match, first = False, s
        m, e = zip(*(_margin(fast[b], r_s[b]) for b in range(B)), strict=True)
        margins.append(min(m))
        margin_err.append(max(e))
        if ours != [int(torch.argmax(r)) for r in r_f]:
            match_free = False
        if s == 0:
            dec.tokens[:B] = tokens
        if progress:
            progress(s)
    return CheckResult(steps, B, per, per_m, per_f, match, first, match_free, decisions, len(gaps),
                       max(gaps, default=0.0), time.perf_counter() - t0, kv_dtype, margins, margin_err, mismatches)


def _margin(fast: Any, ref: Any) -> tuple[float, float]:
    """The reference's top-1 minus top-2 logit, and how much the fast path's logits change that same
    difference (a greedy flip needs the change to exceed the margin)."""
    import torch

    top = torch.topk(ref, 2).indices
    margin = float(ref[top[0]] - ref[top[1]])
    moved = float((fast[top[0]].double() - fast[top[1]].double()) - margin)
    return margin, abs(moved)


def _split(route: Any) -> Any:
    """[moe_layers, 1, k] -> one [1, k] tensor per MoE layer."""
    return None if route is None else list(route.unbind(0))
