"""`floorline decode --check --tp N`: tensor-parallel decode against the float64 reference, every step.

The ranks (model/tp.py) run over shards of one set of weights: on N GPUs through floorline.comm in
single-thread mode (the prompt as eager lockstep steps, then one CUDA graph per GPU), or on the CPU
with the sums emulated (`--device cpu`). The reference runs the unsharded weights in float64 and uses
the ranks' expert choices (shared routing, as `decode --check` does); it is reported twice: with exact
float64 K/V, and with K/V rounded as the bf16 cache stores them (the datapath's arithmetic alone).
Every rank must hold bit-identical logits (each computes the same sum in the same order).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from floorline.errors import InputError


@dataclass
class TpCheckResult:
    steps: int
    tp: int
    per_step: list[float]  # shared routing, exact float64 K/V
    per_step_kv_matched: list[float]
    greedy_match: bool
    first_mismatch: int | None
    ranks_identical: bool
    graph_steps: int
    seconds: float

    @property
    def max_rel_l2(self) -> float:
        return max(self.per_step)


def tp_check(w: Any, prompts: list[list[int]], steps: int, tp: int, device: str,
             progress: Any = lambda s: None) -> TpCheckResult:
    """w: full weights on the CPU. device 'cuda': rank r on cuda:r; 'cpu': every rank on the CPU."""
    import torch

    from floorline.model.reference import ReferenceModel
    from floorline.model.tp import CommGroup, EmulatedGroup, RankDecoder

    if steps < 1:
        raise InputError(f"--steps: must be >= 1, got {steps}")
    if len({len(p) for p in prompts}) != 1:
        raise InputError("--prompt-ids: with --tp the prompts must have equal lengths (token-by-token prefill)")
    B, n = len(prompts), len(prompts[0])
    cfg = w.cfg
    t0 = time.perf_counter()
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.num_hidden_layers))
    comms: list[Any] = []
    if device == "cuda":
        if torch.cuda.device_count() < tp:
            raise InputError(f"--tp: needs {tp} GPUs, this machine has {torch.cuda.device_count()}")
        from floorline.comm import CommConfig, init_threads

        comms = init_threads(list(range(tp)), CommConfig(max_bytes=2 << 20, oneshot_max_bytes=2 << 20), nccl=False)
        ranks = [RankDecoder.from_full(w, r, tp, B, n + steps + 2, device=f"cuda:{r}") for r in range(tp)]
        group: Any = CommGroup(ranks, comms)
        ref_w = _on_device(w, "cuda:0")  # float64 math on the GPU (no TF32 in float64)
    else:
        ranks = [RankDecoder.from_full(w, r, tp, B, n + steps + 2) for r in range(tp)]
        group = EmulatedGroup(ranks)
        ref_w = w
    try:
        for r in ranks:
            r.route_log = torch.zeros(max(n_moe, 1), B, max(cfg.num_experts_per_tok, 1), dtype=torch.int32,
                                      device=r.device)
        ref = ReferenceModel(ref_w)
        interp = os.environ.get("TRITON_INTERPRET") == "1"

        def store(t: Any) -> Any:  # as the bf16 cache holds K/V (the CPU interpreter truncates)
            if interp:
                return (t.float().view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.float64)
            return t.to(torch.bfloat16).to(torch.float64)

        exact = [ref.new_cache() for _ in prompts]
        matched = [ref.new_cache(store) for _ in prompts]
        per, per_m, identical, match, first, graph_steps = [], [], True, True, None, 0
        for s in range(n + steps):
            if s < n:
                tok = [p[s] for p in prompts]
                for r in ranks:
                    r.tokens[:B] = torch.tensor(tok, device=r.device)
                    r.positions[:B] = s
                    r.seq_lens[:B] = s + 1
            else:
                tok = ranks[0].tokens[:B].tolist()
                if device == "cuda" and B not in group.graphs:
                    group.capture(B)
                graph_steps += device == "cuda"
            for r in ranks:
                r.logits.fill_(float("nan"))
            group.step(B)
            if device == "cuda":
                group.synchronize()
            got = ranks[0].logits[:B].double().cpu()
            identical &= all(torch.equal(r.logits[:B].cpu(), ranks[0].logits[:B].cpu()) for r in ranks[1:])
            e_s, e_m, ours, theirs = [], [], [], []
            for b in range(B):
                routes = (list(ranks[0].route_log[:, b].unsqueeze(1).to(ref_w.device).unbind(0)) if n_moe else None)
                want = ref.forward([tok[b]], exact[b], routes)[-1].cpu()
                want_m = ref.forward([tok[b]], matched[b], routes)[-1].cpu()
                e_s.append(float((got[b] - want).norm() / want.norm()))
                e_m.append(float((got[b] - want_m).norm() / want_m.norm()))
                ours.append(int(got[b].argmax()))
                theirs.append(int(want.argmax()))
            if s >= n - 1:  # the last prompt step's logits are the first prediction
                per.append(max(e_s))
                per_m.append(max(e_m))
                if ours != theirs and match:
                    match, first = False, s - (n - 1)
            progress(s)
    finally:
        if device == "cuda":
            group.release()
            for c in comms:
                c.close()
    return TpCheckResult(steps, tp, per, per_m, match, first, identical, graph_steps, time.perf_counter() - t0)


def _on_device(w: Any, device: str) -> Any:
    from floorline.model.tp import _to

    return _to(w, device)


def run_tp_check(model: str | None, checkpoint: Any, layers: int | None, experts: int | None, prompt_ids: str | None,
                 batch: int, prompt_len: int, steps: int, dtype: str, device: str, tp: int, seed: int,
                 tolerance: float, results: Any, no_evidence: bool, as_json: bool) -> None:
    """The CLI's `decode --check --tp N` (parses nothing itself: model/cli.py hands the options over)."""
    from pathlib import Path

    import torch

    from floorline.model.run import build_weights, parse_prompts, pick_device

    if dtype not in ("bf16", "fp8"):
        raise InputError(f"--dtype: must be bf16 or fp8 (the fast path), got {dtype!r}")
    device = pick_device(device, dtype)  # on the CPU: our Triton kernels through the interpreter
    if not 1 <= batch <= 64 or prompt_len < 1:
        raise InputError(f"--batch/--prompt-len: need batch in 1..64 and prompt-len >= 1, got {batch}, {prompt_len}")
    w = build_weights(checkpoint, model, layers, experts, dtype, "cpu", seed)
    if prompt_ids:
        prompts = parse_prompts(prompt_ids)
    else:
        g = torch.Generator().manual_seed(seed + 1)
        prompts = [torch.randint(0, w.cfg.vocab_size, (prompt_len,), generator=g).tolist() for _ in range(batch)]
    r = tp_check(w, prompts, steps, tp, device)
    passed = r.max_rel_l2 <= tolerance and r.greedy_match and r.ranks_identical
    cfg = w.cfg
    out = {"model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts, "tp": tp,
           "batch": len(prompts), "steps": steps, "dtype": dtype, "device": device, "max_rel_l2": r.max_rel_l2,
           "max_rel_l2_kv_matched": max(r.per_step_kv_matched), "greedy_match": r.greedy_match,
           "first_mismatch": r.first_mismatch, "ranks_identical": r.ranks_identical, "graph_steps": r.graph_steps,
           "tolerance": tolerance, "passed": passed, "per_step_rel_l2": r.per_step,
           "cut_down": list(cfg.cut_down), "seconds": r.seconds}
    if not no_evidence:
        from floorline.evidence.schema import Correctness
        from floorline.evidence.store import new_packet, write_packet
        from floorline.gpu.probe import device_slug

        notes = [
            "correctness.value: max over steps (step 0 = the prompt's last token) and sequences of rel-L2(rank 0's "
            "logits, float64 reference logits), the reference on the unsharded weights with the ranks' expert "
            "choices (shared routing) and exact float64 K/V",
            f"same with K/V rounded as the bf16 cache stores them: {max(r.per_step_kv_matched):.3e}",
            f"tensor parallel {tp} ({'floorline.comm single-thread mode; prompt eagerly, then ' + str(r.graph_steps) + ' steps as one CUDA graph per GPU' if device == 'cuda' else 'sums emulated on the CPU'}); "
            f"every rank's logits bit-identical: {r.ranks_identical}",
            f"greedy tokens identical: {r.greedy_match}",
        ]
        if cfg.cut_down:
            notes.append("cut down: " + ", ".join(cfg.cut_down))
        packet = new_packet(
            "decode.check", status="passed" if passed else "failed",
            failure_class=None if passed else ("greedy_mismatch" if not r.greedy_match else "tolerance"),
            params={"model": cfg.name, "steps": steps, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts,
                    "batch": len(prompts), "prompt_lens": [len(p) for p in prompts], "weight_dtype": dtype,
                    "kv_dtype": "bf16", "seed": seed, "tp": tp, "mode": "thread" if device == "cuda" else "emulated",
                    "cut_down": list(cfg.cut_down)},
            correctness=Correctness(reference="floorline.model.reference (float64, shared routing)",
                                    metric="max per-step logits rel-L2", value=r.max_rel_l2, tolerance=tolerance,
                                    passed=passed, trials=len(prompts), seeds=[seed]),
            notes=notes,
        )
        directory = Path(results) if results else Path("results") / device_slug()
        out["packet"] = str(write_packet(packet, directory, f"decode-check-{cfg.name}-L{cfg.num_hidden_layers}"
                                         f"-E{cfg.num_experts}-{dtype}-b{len(prompts)}-tp{tp}"))
    if as_json:
        from floorline.render import print_json

        print_json(out)
    else:
        from floorline.render import console

        console.print(f"{cfg.name}, {dtype}, tp {tp}, batch {len(prompts)}, {steps} steps on {device}")
        console.print(f"  max per-step logits rel-L2 vs float64: {r.max_rel_l2:.3e} (tolerance {tolerance:g}); "
                      f"K/V matched {max(r.per_step_kv_matched):.3e}; greedy identical {r.greedy_match}; "
                      f"ranks identical {r.ranks_identical}")
        console.print(f"  {'PASSED' if passed else 'FAILED'}" + (f"  packet: {out['packet']}" if "packet" in out else ""))
    if not passed:
        raise SystemExit(1)
