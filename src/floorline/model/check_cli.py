"""The body of `floorline decode --check`: run model/run.check, print, write a decode.check packet."""

from __future__ import annotations

from pathlib import Path

from floorline.errors import InputError


def run_check(checkpoint: Path | None, model: str | None, layers: int | None, experts: int | None,
              prompt_ids: str | None, batch: int, prompt_len: int, steps: int, dtype: str, device: str, seed: int,
              tolerance: float, results: Path | None, no_evidence: bool, as_json: bool, kv_dtype: str = "fp16") -> None:
    import torch

    from floorline.model.run import CHECK_KV_DTYPES, build_weights, parse_prompts, pick_device

    kv_dtypes = kv_dtype.split(",")  # several: one run each on the same weights and prompts, one packet each
    for kv in kv_dtypes:
        if kv not in CHECK_KV_DTYPES:
            raise InputError(f"--kv-dtype: must be one of {', '.join(CHECK_KV_DTYPES)} (comma-separated), got {kv_dtype!r}")
    if dtype not in ("bf16", "fp8"):
        raise InputError(f"--dtype: must be bf16 or fp8 (the fast path), got {dtype!r}")
    if not 1 <= batch <= 64 or prompt_len < 1:
        raise InputError(f"--batch/--prompt-len: need batch in 1..64 and prompt-len >= 1, got {batch}, {prompt_len}")
    dev = pick_device(device, dtype)
    w = build_weights(checkpoint, model, layers, experts, dtype, dev, seed)
    if prompt_ids:
        prompts = parse_prompts(prompt_ids)
    else:
        g = torch.Generator().manual_seed(seed + 1)
        # own lengths per sequence: prompt_len, prompt_len + 3, ...
        prompts = [torch.randint(0, w.cfg.vocab_size, (prompt_len + 3 * b,), generator=g).tolist() for b in range(batch)]
    outs = [_one(w, prompts, steps, dtype, dev, seed, tolerance, results, no_evidence, as_json, kv) for kv in kv_dtypes]
    if as_json:
        from floorline.render import print_json

        print_json(outs[0] if len(outs) == 1 else {"runs": outs, "passed": all(o["passed"] for o in outs)})
    if not all(o["passed"] for o in outs):
        raise SystemExit(1)


def _one(w, prompts, steps, dtype, dev, seed, tolerance, results, no_evidence, as_json, kv_dtype) -> dict:
    import gc

    from floorline.render import progress

    gc.collect()  # the previous run's decoder and its CUDA graphs

    from floorline.model.run import check

    with progress(disable=as_json) as bar:
        task = bar.add_task("decode --check", total=steps + 1)
        r = check(w, prompts, steps, progress=lambda s: bar.update(task, completed=s + 1), kv_dtype=kv_dtype)
    passed = r.max_rel_l2 <= tolerance and r.greedy_match
    cfg = w.cfg
    low = min(range(len(r.margins)), key=lambda s: r.margins[s])
    worst = max(range(len(r.margins)), key=lambda s: r.margin_errors[s] / max(r.margins[s], 1e-30))
    notes = [
        f"datapath validated: {dtype} weights, {kv_dtype} KV cache (fp32 activations and residual, fp32-query "
        "attention); `bench decode` stores K/V in fp16 by default" + ("" if kv_dtype == "fp16" else
                                                                        f"; {kv_dtype} costs the same bytes"),
        "correctness.value: max over steps (step 0 = prefill) and sequences of rel-L2(fast logits, float64 "
        "reference logits) on the same weights, the reference using the fast path's expert choices (shared "
        "routing) and exact float64 K/V; every reference is fed the fast path's greedy token.",
        f"shared routing, reference K/V rounded as the {kv_dtype} cache stores them: max rel-L2 "
        f"{max(r.per_step_kv_matched):.3e} (the datapath's arithmetic alone).",
        f"free routing (the reference picks its own experts): max rel-L2 {max(r.per_step_free):.3e}, greedy "
        f"identical {r.greedy_match_free}; router decisions that differed: {r.routing_differences} of "
        f"{r.routing_decisions}, the largest k-th/(k+1)-th probability gap among them {r.max_tie_gap:.2e} (near-ties).",
        f"greedy tokens identical (shared routing): {r.greedy_match}"
        + ("" if r.first_mismatch is None else f", first difference at step {r.first_mismatch}")
        + (f"; steps that differ: {r.mismatches}" if r.mismatches else ""),
        f"greedy margins (reference top-1 minus top-2 logit, min over the batch): smallest {r.margins[low]:.2e} at "
        f"step {low}, median {sorted(r.margins)[len(r.margins) // 2]:.2e}; the fast path moved that difference by "
        f"at most {max(r.margin_errors):.2e} (worst ratio {r.margin_errors[worst] / max(r.margins[worst], 1e-30):.2f} "
        f"at step {worst}; a ratio above 1 flips the token).",
    ]
    if cfg.cut_down:
        notes.append("cut down: " + ", ".join(cfg.cut_down))
    out = {
        "model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts, "batch": len(prompts),
        "steps": steps, "dtype": dtype, "device": dev, "max_rel_l2": r.max_rel_l2,
        "max_rel_l2_kv_matched": max(r.per_step_kv_matched), "max_rel_l2_free_routing": max(r.per_step_free),
        "greedy_match_free_routing": r.greedy_match_free, "routing_decisions": r.routing_decisions,
        "routing_differences": r.routing_differences, "max_tie_gap": r.max_tie_gap,
        "greedy_match": r.greedy_match, "kv_dtype": kv_dtype,
        "first_mismatch": r.first_mismatch, "mismatch_steps": r.mismatches,
        "min_margin": r.margins[low], "min_margin_step": low, "max_margin_error": max(r.margin_errors),
        "per_step_margin": r.margins, "per_step_margin_error": r.margin_errors, "tolerance": tolerance, "passed": passed,
        "per_step_rel_l2": r.per_step, "per_step_kv_matched": r.per_step_kv_matched,
        "per_step_free_routing": r.per_step_free, "cut_down": list(cfg.cut_down), "seconds": r.seconds,
    }
    if not no_evidence:
        out["packet"] = str(_write_packet(w, r, prompts, dtype, seed, tolerance, passed, notes, results, kv_dtype))
    if not as_json:
        from floorline.render import console

        cut = f" (cut down: {', '.join(cfg.cut_down)})" if cfg.cut_down else ""
        console.print(f"{cfg.name}{cut}, {dtype} weights, {kv_dtype} KV, batch {len(prompts)}, {steps} steps on {dev}")
        console.print(f"  max per-step logits rel-L2 vs float64: {r.max_rel_l2:.3e} (tolerance {tolerance:g})")
        console.print(f"  same, K/V storage rounding matched:    {max(r.per_step_kv_matched):.3e}")
        console.print(f"  free routing (reference's own experts): {max(r.per_step_free):.3e}; router decisions "
                      f"differing {r.routing_differences}/{r.routing_decisions} (largest gap {r.max_tie_gap:.1e})")
        console.print(f"  greedy tokens identical: {r.greedy_match}"
                      + (f" (steps that differ: {r.mismatches})" if r.mismatches else ""))
        console.print(f"  greedy margin: smallest {r.margins[low]:.2e} (step {low}); fast path moved it by at most "
                      f"{max(r.margin_errors):.2e}")
        console.print(f"  {'PASSED' if passed else 'FAILED'}" + (f"  packet: {out['packet']}" if "packet" in out else ""))
    return out


def _write_packet(w, r, prompts, dtype, seed, tolerance, passed, notes, results, kv_dtype):
    from floorline.evidence.schema import Correctness
    from floorline.evidence.store import new_packet, write_packet
    from floorline.gpu.probe import device_slug

    cfg = w.cfg
    packet = new_packet(
        "decode.check",
        status="passed" if passed else "failed",
        failure_class=None if passed else ("greedy_mismatch" if not r.greedy_match else "tolerance"),
        params={"model": cfg.name, "steps": r.steps, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts,
                "batch": len(prompts), "prompt_lens": [len(p) for p in prompts], "weight_dtype": dtype,
                "kv_dtype": kv_dtype, "seed": seed, "tp": 1, "cut_down": list(cfg.cut_down)},
        correctness=Correctness(reference=f"floorline.model.reference (float64, shared routing); fast path with {kv_dtype} KV",
                                metric="max per-step logits rel-L2",
                                value=r.max_rel_l2, tolerance=tolerance, passed=passed, trials=len(prompts),
                                seeds=[seed]),
        notes=notes,
    )
    directory = results or Path("results") / device_slug()
    kv = "" if kv_dtype == "bf16" else f"-kv{kv_dtype}"  # bf16 keeps the name earlier packets used
    return write_packet(packet, directory,
                        f"decode-check-{cfg.name}-L{cfg.num_hidden_layers}-E{cfg.num_experts}-{dtype}{kv}-b{len(prompts)}")
